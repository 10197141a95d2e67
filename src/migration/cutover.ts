// The IPv6-only path, from src/migration/ in one hop. A Service's primary family never changes in place
// (service-api-facts; test/integration/service-api.test.ts), so a ClusterIP, NodePort or LoadBalancer Service
// becomes IPv6-only, and comes back, through ExternalName, in two writes:
//   1. decide() (./service.ts) returns a "cutover" decision built here: the patch to ExternalName, carrying in
//      the CUTOVER_ANNOTATION a CutoverRecord (the spec to restore, with the ClusterIPs and nodePorts to keep, and
//      the snapshot to fall back to). The record travels in the same atomic write as the type change.
//   2. the rollout planner (./rollout.ts) puts it in a batch; ServiceWriter.cutover (src/reconciler/
//      service-writer.ts) makes a dry run, the write to ExternalName, then restorePatch() back with the new
//      families, and checks the server's answer.
//   3. an operator stopped between the two writes sees an ExternalName Service with a record: decide() returns
//      "resume" whatever else holds, and ServiceWriter.resume finishes it (or puts the snapshot back).
// Rolling back (IPv6Only -> DualStack or Audit) is the same path in reverse: restore() in ./service.ts.
import {
  ADDRESSES_NOT_KEPT_ANNOTATION,
  CUTOVER_ANNOTATION,
  OPERATOR_ANNOTATIONS,
  PLAN_ANNOTATION,
  APPLIED_ANNOTATION,
  CUTOVER_TIME_ANNOTATION,
  HOLD_ANNOTATION,
  ORIGINAL_ANNOTATION,
  SERVICE_STATES,
  STATE_LABEL,
  type ServiceState,
  type TargetPhase,
} from "../api/migrationplan.js";
import {
  annotationJSON,
  familyState,
  stateOfFamilies,
  type IPFamily,
  type IPFamilyPolicy,
  type MergePatch,
  type Service,
  type ServiceSpec,
} from "./families.js";
import type { Decision, PlanSettings } from "./service.js";

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

export const cutoverRecord = (svc: Service): CutoverRecord | undefined =>
  annotationJSON<CutoverRecord>(svc, CUTOVER_ANNOTATION);

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

const RESTORABLE_FIELDS = ["type", ...FIELDS_NULLED_FOR_EXTERNAL_NAME, "ports", "externalName"] as const;

/**
 * The fields of a spec this operator may change, so that a restore can put back exactly these. A copy, down to
 * the ports (whose fields are all scalars): structuredClone of each field was about 7% of an 8,000-Service
 * audit's CPU profile.
 */
export function restorableSpec(spec: ServiceSpec): ServiceSpec {
  const out: Record<string, unknown> = {};
  for (const field of RESTORABLE_FIELDS) {
    const value: unknown = spec[field];
    if (value === undefined) continue;
    out[field] = Array.isArray(value)
      ? value.map((item: unknown) => (item !== null && typeof item === "object" ? { ...item } : item))
      : value;
  }
  return out;
}

export function cutover(
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
        labels: { [STATE_LABEL]: SERVICE_STATES.cuttingOver },
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
    for (const key of OPERATOR_ANNOTATIONS) annotations[key] = null;
    labels[STATE_LABEL] = null;
  } else {
    annotations[APPLIED_ANNOTATION] = record.applied;
    annotations[PLAN_ANNOTATION] = record.plan;
    annotations[CUTOVER_TIME_ANNOTATION] =
      record.state === SERVICE_STATES.ipv6Only && record.startedAt ? record.startedAt : null;
    labels[STATE_LABEL] = record.state;
  }
  return { metadata: { labels, annotations }, spec: body };
}

/** The value of ADDRESSES_NOT_KEPT_ANNOTATION: what a restore asked for and did not get, and why. */
export interface AddressesNotKept {
  /** When the restore was written. */
  at: string;
  /** The ClusterIPs the restore asked for, all given up when one was refused. */
  clusterIPs?: string[];
  /** The nodePorts (and healthCheckNodePort) it asked for, given up when one was refused. */
  nodePorts?: number[];
  /** The API server's answers, in order: they name the address it refused. */
  refusals: string[];
}

/**
 * The restore of a cutover whose requested addresses the server refused (`refusals`, its answers so far): without
 * the ClusterIPs, and without the nodePorts too once an answer refused a port, so that the Service comes back
 * rather than stay ExternalName; it records on the Service, in the same write, what it gave up.
 */
export function relaxedRestorePatch(record: CutoverRecord, refusals: string[], at: string): MergePatch {
  const asked = record.restore;
  const spec: ServiceSpec = { ...asked };
  delete spec.clusterIP;
  delete spec.clusterIPs;
  const notKept: AddressesNotKept = { at, refusals };
  const clusterIPs = asked.clusterIPs ?? (asked.clusterIP ? [asked.clusterIP] : []);
  if (clusterIPs.length) notKept.clusterIPs = clusterIPs;
  if (refusals.some(refusesPort)) {
    spec.ports = asked.ports?.map(({ nodePort: _n, ...p }) => p);
    delete spec.healthCheckNodePort;
    const ports = [...(asked.ports ?? []).map((p) => p.nodePort), asked.healthCheckNodePort];
    const nodePorts = ports.filter((p): p is number => typeof p === "number");
    if (nodePorts.length) notKept.nodePorts = nodePorts;
  }
  const body = restorePatch(record, spec, true);
  (body.metadata as { annotations: Record<string, string | null> }).annotations[ADDRESSES_NOT_KEPT_ANNOTATION] =
    JSON.stringify(notKept);
  return body;
}

/**
 * Whether the server's answer refused a nodePort rather than a ClusterIP. Phrases, never a bare "port": the
 * answer carries the Service's name.
 */
export function refusesPort(answer: string): boolean {
  return /provided port/i.test(answer);
}
