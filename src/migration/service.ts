// What a Service is now, and what it becomes next for a plan's target: pure functions over plain objects.
//
// The API server's rules decide the paths (see test/integration/service-api.test.ts):
// - the primary family (ipFamilies[0], clusterIPs[0]) of a Service with a ClusterIP never changes in place;
//   only the secondary family is added or removed, by ipFamilyPolicy alone;
// - a headless Service changes family in one update;
// - anything else with a ClusterIP changes primary family only through ExternalName and back (same UID),
//   re-requesting the ClusterIP and nodePorts it should keep.
import ipaddr from "ipaddr.js";
import type { KubeObject, ManagedFieldsEntry } from "../runtime/object.js";
import {
  APPLIED_ANNOTATION,
  CUTOVER_ANNOTATION,
  CUTOVER_TIME_ANNOTATION,
  HOLD_ANNOTATION,
  ORIGINAL_ANNOTATION,
  PLAN_ANNOTATION,
  STATE_LABEL,
  type TargetPhase,
} from "./api.js";

export type IPFamily = "IPv4" | "IPv6";
export type IPFamilyPolicy = "SingleStack" | "PreferDualStack" | "RequireDualStack";

export interface ServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
  nodePort?: number;
  appProtocol?: string;
}

export interface ServiceSpec {
  type?: string;
  selector?: Record<string, string>;
  clusterIP?: string;
  clusterIPs?: string[];
  ipFamilies?: IPFamily[];
  ipFamilyPolicy?: IPFamilyPolicy;
  externalName?: string;
  ports?: ServicePort[];
  externalTrafficPolicy?: string;
  internalTrafficPolicy?: string;
  healthCheckNodePort?: number;
  allocateLoadBalancerNodePorts?: boolean;
  loadBalancerClass?: string;
  loadBalancerSourceRanges?: string[];
  loadBalancerIP?: string;
  sessionAffinity?: string;
  [field: string]: unknown;
}

/** A Service as the cache holds it: metadata and spec; managedFields trimmed to the fields this operator writes. */
export interface Service extends KubeObject {
  spec: ServiceSpec;
}

export type FamilyState = "ipv4-only" | "dual-stack" | "ipv6-only" | "no-cluster-ip";

export type Shape = "ClusterIP" | "NodePort" | "LoadBalancer" | "Headless" | "ExternalName" | "APIServer";

export function shapeOf(svc: Service): Shape {
  if (svc.metadata.namespace === "default" && svc.metadata.name === "kubernetes") return "APIServer";
  if (svc.spec.type === "ExternalName") return "ExternalName";
  if (svc.spec.clusterIP === "None") return "Headless";
  if (svc.spec.type === "NodePort" || svc.spec.type === "LoadBalancer") return svc.spec.type;
  return "ClusterIP";
}

export function hasSelector(svc: Service): boolean {
  return Object.keys(svc.spec.selector ?? {}).length > 0;
}

export function familyState(spec: ServiceSpec): FamilyState {
  if (spec.type === "ExternalName") return "no-cluster-ip";
  const families = spec.ipFamilies ?? [];
  if (families.length === 2) return "dual-stack";
  if (families[0] === "IPv6") return "ipv6-only";
  if (families[0] === "IPv4") return "ipv4-only";
  return "no-cluster-ip";
}

/** The address of a family among clusterIPs, decided by parsing (never by looking for ':'). */
export function clusterIPOf(spec: ServiceSpec, family: IPFamily): string | undefined {
  return (spec.clusterIPs ?? []).find((ip) => ip !== "None" && ipaddr.isValid(ip) && familyOfIP(ip) === family);
}

export function familyOfIP(ip: string): IPFamily {
  // Kubernetes (Go's net.IP.To4) counts an IPv4-mapped address (::ffff:a.b.c.d) as IPv4. ipaddr.js also reads
  // the IPv4-compatible form ::a.b.c.d as mapped, which Go does not, hence the check on the text.
  const parsed = ipaddr.parse(ip);
  if (parsed.kind() === "ipv4") return "IPv4";
  return (parsed as ipaddr.IPv6).isIPv4MappedAddress() && /ffff/i.test(ip) ? "IPv4" : "IPv6";
}

/** What the plan wants of one Service, from its original spec. */
export function desiredFamilies(target: TargetPhase, original: ServiceSpec): IPFamily[] {
  const families = original.ipFamilies ?? [];
  if (target === "Audit") return families;
  if (target === "IPv6Only") return ["IPv6"];
  // DualStack: add IPv6 beside IPv4; a Service already dual-stack or IPv6-only is left as it is.
  if (families.length === 1 && families[0] === "IPv4") return ["IPv4", "IPv6"];
  return families;
}

export interface CutoverRecord {
  /** When the cutover started, recorded on the Service once it is IPv6-only. */
  startedAt?: string;
  /** The spec to put back on the Service (type, ports with nodePorts, traffic policies, requested ClusterIPs). */
  restore: ServiceSpec;
  /** The spec before the cutover: the fallback if the restore can't be applied. */
  snapshot: ServiceSpec;
  /** Labels and annotations to set when the restore lands. */
  state: ServiceState;
  applied: TargetPhase;
  plan: string;
}

export type ServiceState = "ipv4-only" | "dual-stack" | "ipv6-only" | "blocked" | "failed" | "drifted" | "cutting-over";

export interface Hold {
  kind: "Drifted" | "Failed";
  generation: number;
  planGeneration: number;
  reason: string;
  message: string;
  manager?: string;
}

/** Reads a JSON annotation the operator wrote; an unreadable one reads as absent (and is rewritten). */
function annotationJSON<T>(svc: Service, key: string): T | undefined {
  const raw = svc.metadata.annotations?.[key];
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

export const originalSpec = (svc: Service): ServiceSpec | undefined =>
  annotationJSON<ServiceSpec>(svc, ORIGINAL_ANNOTATION);
export const cutoverRecord = (svc: Service): CutoverRecord | undefined =>
  annotationJSON<CutoverRecord>(svc, CUTOVER_ANNOTATION);
export const holdOf = (svc: Service): Hold | undefined => annotationJSON<Hold>(svc, HOLD_ANNOTATION);

export interface PlanSettings {
  plan: string;
  planGeneration: number;
  target: TargetPhase;
  dualStackPolicy: "PreferDualStack" | "RequireDualStack";
  requireIPv6Endpoints: boolean;
  allowLoadBalancerRecreate: boolean;
  requirePreflight: boolean;
  /** The time to record as a cutover's start (ISO 8601); passed in so decide() stays pure. */
  now?: string;
}

export interface ServiceFacts {
  /** Ready endpoints in EndpointSlices of addressType IPv6 for this Service. */
  ipv6ReadyEndpoints: number;
  /** A blocking preflight finding for this Service (when spec.ipv6Only.requirePreflight). */
  preflightBlock?: { reason: string; message: string };
}

/** A merge patch body: null deletes a field. */
export type MergePatch = Record<string, unknown>;

export type Decision =
  | { action: "none"; state: FamilyState | "no-cluster-ip" }
  | { action: "skip"; reason: string; message: string }
  | { action: "block"; reason: string; message: string }
  | { action: "hold"; hold: Hold }
  | { action: "patch"; patch: MergePatch; expect: IPFamily[]; state: ServiceState; description: string }
  | { action: "cutover"; toExternalName: MergePatch; record: CutoverRecord; expect: IPFamily[]; description: string }
  | { action: "resume"; record: CutoverRecord };

/** A stable, never-resolving name for the instant a Service is ExternalName (.invalid is reserved, RFC 2606). */
export const CUTOVER_EXTERNAL_NAME = "cutover.ipv6migration.invalid";

const FIELDS_NULLED_FOR_EXTERNAL_NAME = [
  "clusterIP",
  "clusterIPs",
  "ipFamilies",
  "ipFamilyPolicy",
  "externalTrafficPolicy",
  "internalTrafficPolicy",
  "healthCheckNodePort",
  "allocateLoadBalancerNodePorts",
  "loadBalancerClass",
  "loadBalancerSourceRanges",
  "loadBalancerIP",
] as const;

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
}

function stateOfFamilies(families: readonly IPFamily[]): ServiceState {
  if (families.length === 2) return "dual-stack";
  return families[0] === "IPv6" ? "ipv6-only" : "ipv4-only";
}

/** The fields of a spec this operator may change, so that a restore can put back exactly these. */
export function restorableSpec(spec: ServiceSpec): ServiceSpec {
  const out: Record<string, unknown> = {};
  for (const field of ["type", ...FIELDS_NULLED_FOR_EXTERNAL_NAME, "ports", "externalName"] as const) {
    if (spec[field] !== undefined) out[field] = structuredClone(spec[field]);
  }
  return out;
}

/**
 * Decides the next step for one selected Service. `owned` is false when another, older plan manages it.
 */
export function decide(svc: Service, settings: PlanSettings, facts: ServiceFacts): Decision {
  const shape = shapeOf(svc);
  const current = svc.spec;
  const original = originalSpec(svc);
  const record = cutoverRecord(svc);

  // A cutover in flight (the operator stopped between its two writes) is finished first, whatever else holds.
  if (record && current.type === "ExternalName") return { action: "resume", record };

  if (shape === "APIServer") {
    return { action: "skip", reason: "APIServerOwned", message: "default/kubernetes belongs to the API server" };
  }
  if (shape === "ExternalName" && !original) {
    return { action: "skip", reason: "ExternalName", message: "an ExternalName Service has no ClusterIP to move" };
  }

  const hold = holdOf(svc);
  if (hold && hold.generation === (svc.metadata.generation ?? 0) && hold.planGeneration === settings.planGeneration) {
    return { action: "hold", hold };
  }

  const base = original ?? restorableSpec(current);
  const want = desiredFamilies(settings.target, base);

  // Audit with nothing of ours on the Service: nothing to do, whatever its families.
  if (settings.target === "Audit" && !original) return { action: "none", state: familyState(current) };

  // Someone else changed a Service this plan had moved (a GitOps sync, Helm): report, don't fight.
  const applied = svc.metadata.annotations?.[APPLIED_ANNOTATION] as TargetPhase | undefined;
  if (original && applied && applied !== "Audit" && !hold) {
    const expected = desiredFamilies(applied, original);
    if (!sameList(current.ipFamilies, expected)) {
      return {
        action: "hold",
        hold: {
          kind: "Drifted",
          generation: svc.metadata.generation ?? 0,
          planGeneration: settings.planGeneration,
          reason: "ChangedByAnotherManager",
          message: `ipFamilies is ${JSON.stringify(current.ipFamilies ?? [])}, not ${JSON.stringify(expected)} as the plan left it`,
          manager: lastManagerOf(svc.metadata.managedFields, ["ipFamilies", "ipFamilyPolicy", "clusterIPs", "type"]),
        },
      };
    }
  }

  if (settings.target === "Audit") return restore(svc, base, settings);

  if (sameList(current.ipFamilies, want)) {
    const policy = want.length === 2 ? settings.dualStackPolicy : "SingleStack";
    if (original && current.ipFamilyPolicy !== policy && settings.target === "DualStack" && want.length === 2) {
      return patchTo(svc, want, policy, settings, `ipFamilyPolicy ${current.ipFamilyPolicy ?? ""} -> ${policy}`);
    }
    if (original && applied !== settings.target) {
      // At the target already (e.g. back from a rollback midway): record it so drift is judged right.
      return {
        action: "patch",
        patch: metadataPatch(svc, settings, stateOfFamilies(want), original),
        expect: want,
        state: stateOfFamilies(want),
        description: "record state",
      };
    }
    return { action: "none", state: familyState(current) };
  }

  // The selector-dependent gate applies only where the move ends IPv6-primary.
  if (want[0] === "IPv6" && current.ipFamilies?.[0] !== "IPv6") {
    if (!hasSelector(svc) && facts.ipv6ReadyEndpoints === 0) {
      return {
        action: "skip",
        reason: "SelectorlessWithoutIPv6Endpoints",
        message: "a Service without a selector has hand-made endpoints, and none of them is IPv6",
      };
    }
    if (hasSelector(svc) && settings.requireIPv6Endpoints && facts.ipv6ReadyEndpoints === 0) {
      return {
        action: "block",
        reason: "WaitingForIPv6Endpoints",
        message: "no ready endpoint in an EndpointSlice of addressType IPv6 (spec.ipv6Only.requireIPv6Endpoints)",
      };
    }
    if (settings.requirePreflight && facts.preflightBlock) {
      return {
        action: "block",
        reason: `Preflight${facts.preflightBlock.reason}`,
        message: `${facts.preflightBlock.message} (spec.ipv6Only.requirePreflight)`,
      };
    }
  }

  const primaryChanges = (current.ipFamilies?.[0] ?? want[0]) !== want[0];
  const policy: IPFamilyPolicy = want.length === 2 ? settings.dualStackPolicy : "SingleStack";
  if (!primaryChanges || shape === "Headless") {
    return patchTo(svc, want, policy, settings, `${familyState(current)} -> ${stateOfFamilies(want)}`);
  }
  if (shape === "LoadBalancer" && !settings.allowLoadBalancerRecreate) {
    return {
      action: "block",
      reason: "LoadBalancerRecreateNotAllowed",
      message:
        "changing the primary family of a LoadBalancer Service recreates its cloud load balancer; set spec.ipv6Only.allowLoadBalancerRecreate to allow it",
    };
  }
  // Keep what clients already use: the IPv6 address a dual-stack Service has, and on the way back the
  // original IPv4 address; nodePorts are re-requested as they are.
  const requested = want
    .map((family) => clusterIPOf(current, family) ?? clusterIPOf(base, family))
    .filter((ip): ip is string => ip !== undefined);
  return cutover(svc, want, policy, requested, settings, base);
}

function metadataPatch(svc: Service, settings: PlanSettings, state: ServiceState, original: ServiceSpec): MergePatch {
  return {
    metadata: {
      resourceVersion: svc.metadata.resourceVersion,
      labels: { [STATE_LABEL]: state },
      annotations: {
        [PLAN_ANNOTATION]: settings.plan,
        [APPLIED_ANNOTATION]: settings.target,
        [ORIGINAL_ANNOTATION]: JSON.stringify(original),
        [HOLD_ANNOTATION]: null,
      },
    },
  };
}

function patchTo(
  svc: Service,
  want: IPFamily[],
  policy: IPFamilyPolicy,
  settings: PlanSettings,
  description: string,
): Decision {
  const original = originalSpec(svc) ?? restorableSpec(svc.spec);
  const spec: MergePatch = { ipFamilyPolicy: policy };
  if (shapeOf(svc) === "Headless" || want.length === 1) {
    // Removing a secondary family, or a headless Service: the families are set outright.
    spec.ipFamilies = want;
    if (shapeOf(svc) !== "Headless") spec.clusterIPs = want.map((f) => clusterIPOf(svc.spec, f)).filter(Boolean);
  }
  const state = stateOfFamilies(want);
  return {
    action: "patch",
    patch: { ...metadataPatch(svc, settings, state, original), spec },
    expect: want,
    state,
    description,
  };
}

function cutover(
  svc: Service,
  want: IPFamily[],
  policy: IPFamilyPolicy,
  requested: string[],
  settings: PlanSettings,
  original: ServiceSpec,
): Decision {
  const current = svc.spec;
  const restoreSpec: ServiceSpec = {
    ...restorableSpec(current),
    type: current.type ?? "ClusterIP",
    ipFamilies: want,
    ipFamilyPolicy: policy,
  };
  delete restoreSpec.clusterIP;
  delete restoreSpec.clusterIPs;
  delete restoreSpec.externalName;
  if (requested.length > 0) {
    restoreSpec.clusterIP = requested[0];
    restoreSpec.clusterIPs = requested;
  }
  const state = stateOfFamilies(want);
  const record: CutoverRecord = {
    restore: restoreSpec,
    snapshot: restorableSpec(current),
    state,
    applied: settings.target,
    plan: settings.plan,
    ...(settings.now ? { startedAt: settings.now } : {}),
  };
  const spec: MergePatch = { type: "ExternalName", externalName: CUTOVER_EXTERNAL_NAME };
  for (const field of FIELDS_NULLED_FOR_EXTERNAL_NAME) spec[field] = null;
  if (current.ports) spec.ports = current.ports.map(({ nodePort: _nodePort, ...port }) => port);
  return {
    action: "cutover",
    toExternalName: {
      metadata: {
        resourceVersion: svc.metadata.resourceVersion,
        labels: { [STATE_LABEL]: "cutting-over" },
        annotations: {
          [PLAN_ANNOTATION]: settings.plan,
          [ORIGINAL_ANNOTATION]: JSON.stringify(original),
          [CUTOVER_ANNOTATION]: JSON.stringify(record),
          [HOLD_ANNOTATION]: null,
        },
      },
      spec,
    },
    record,
    expect: want,
    description: `${familyState(current)} -> ${state} (cutover)`,
  };
}

/** The patch that brings an ExternalName Service of a cutover back, from the record it carries. */
export function restorePatch(record: CutoverRecord, spec: ServiceSpec, final: boolean): MergePatch {
  const body: MergePatch = { externalName: null };
  for (const [field, value] of Object.entries(spec)) body[field] = value;
  const annotations: Record<string, string | null> = { [CUTOVER_ANNOTATION]: null };
  const labels: Record<string, string | null> = {};
  if (final && record.applied === "Audit") {
    // Back to where the Service was before any plan: no trace of the operator remains.
    for (const key of [
      ORIGINAL_ANNOTATION,
      APPLIED_ANNOTATION,
      PLAN_ANNOTATION,
      HOLD_ANNOTATION,
      CUTOVER_TIME_ANNOTATION,
    ])
      annotations[key] = null;
    labels[STATE_LABEL] = null;
  } else {
    annotations[APPLIED_ANNOTATION] = record.applied;
    annotations[PLAN_ANNOTATION] = record.plan;
    annotations[CUTOVER_TIME_ANNOTATION] = record.state === "ipv6-only" && record.startedAt ? record.startedAt : null;
    labels[STATE_LABEL] = record.state;
  }
  return { metadata: { labels, annotations }, spec: body };
}

/** Back to the original spec: in place where the primary family is unchanged, otherwise a cutover. */
function restore(svc: Service, original: ServiceSpec, settings: PlanSettings): Decision {
  const current = svc.spec;
  const want = original.ipFamilies ?? [];
  const clearMetadata: MergePatch = {
    resourceVersion: svc.metadata.resourceVersion,
    labels: { [STATE_LABEL]: null },
    annotations: {
      [ORIGINAL_ANNOTATION]: null,
      [APPLIED_ANNOTATION]: null,
      [PLAN_ANNOTATION]: null,
      [HOLD_ANNOTATION]: null,
      [CUTOVER_TIME_ANNOTATION]: null,
    },
  };
  const primaryChanges = current.ipFamilies?.[0] !== want[0];
  if (!primaryChanges || shapeOf(svc) === "Headless" || current.type === "ExternalName") {
    const spec: MergePatch = {
      ipFamilyPolicy: original.ipFamilyPolicy ?? null,
      ipFamilies: original.ipFamilies ?? null,
    };
    if (shapeOf(svc) !== "Headless" && original.clusterIPs) spec.clusterIPs = original.clusterIPs;
    return {
      action: "patch",
      patch: { metadata: clearMetadata, spec },
      expect: want,
      state: stateOfFamilies(want),
      description: `${familyState(current)} -> original (${stateOfFamilies(want)})`,
    };
  }
  if (shapeOf(svc) === "LoadBalancer" && !settings.allowLoadBalancerRecreate) {
    return {
      action: "block",
      reason: "LoadBalancerRecreateNotAllowed",
      message: "restoring the primary family of a LoadBalancer Service recreates its load balancer",
    };
  }
  const record: CutoverRecord = {
    restore: { ...original },
    snapshot: restorableSpec(current),
    state: stateOfFamilies(want),
    applied: "Audit",
    plan: settings.plan,
  };
  const decision = cutover(svc, want, original.ipFamilyPolicy ?? "SingleStack", [], settings, original);
  if (decision.action !== "cutover") return decision;
  const toExternalName = decision.toExternalName as { metadata: { annotations: Record<string, string> } };
  toExternalName.metadata.annotations[CUTOVER_ANNOTATION] = JSON.stringify(record);
  return { ...decision, record, description: `${familyState(current)} -> original (cutover)` };
}

/** The manager that last wrote any of `fields` under spec, other than this operator. */
export function lastManagerOf(entries: ManagedFieldsEntry[] | undefined, fields: string[]): string | undefined {
  let best: { manager: string; time: string } | undefined;
  for (const entry of entries ?? []) {
    if (!entry.manager || entry.manager === "ipv6-migration-operator") continue;
    const spec = entry.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
    if (!spec || !fields.some((f) => `f:${f}` in spec)) continue;
    const time = entry.time ?? "";
    if (!best || time >= best.time) best = { manager: entry.manager, time };
  }
  return best?.manager;
}

/** The cache keeps, of managedFields, only the spec fields that tell who changed a family. */
export function trimService(raw: KubeObject & { spec?: ServiceSpec }): Service {
  const m = raw.metadata;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      generation: m.generation,
      creationTimestamp: m.creationTimestamp,
      labels: m.labels,
      annotations: m.annotations,
      managedFields: m.managedFields
        ?.map((e) => {
          const spec = e.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
          const kept: Record<string, unknown> = {};
          for (const f of ["f:ipFamilies", "f:ipFamilyPolicy", "f:clusterIPs", "f:type"]) if (spec?.[f]) kept[f] = {};
          return { manager: e.manager, operation: e.operation, time: e.time, fieldsV1: { "f:spec": kept } };
        })
        .filter((e) => Object.keys(e.fieldsV1["f:spec"]).length > 0),
    },
    spec: raw.spec ?? {},
  };
}
