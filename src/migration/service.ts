// What a Service becomes next for a plan's target: decide() returns one step (patch in place, cutover, resume,
// block, hold, skip or none), as pure functions over plain objects.
//
// The API server's rules decide the paths (see test/integration/service-api.test.ts):
// - the primary family (ipFamilies[0], clusterIPs[0]) of a Service with a ClusterIP never changes in place;
//   only the secondary family is added or removed, by ipFamilyPolicy alone;
// - a headless Service changes family in one update;
// - anything else with a ClusterIP changes primary family only through ExternalName and back (same UID),
//   re-requesting the ClusterIP and nodePorts it should keep: ./cutover.ts.
import type { ManagedFieldsEntry } from "../runtime/object.js";
import {
  APPLIED_ANNOTATION,
  CUTOVER_ANNOTATION,
  FIELD_MANAGER,
  HOLD_ANNOTATION,
  OPERATOR_ANNOTATIONS,
  ORIGINAL_ANNOTATION,
  PLAN_ANNOTATION,
  PREFLIGHT_REASON_PREFIX,
  PROBLEMS,
  REASONS,
  STATE_LABEL,
  type DualStackPolicy,
  type FamilyState,
  type ServiceState,
  type TargetPhase,
} from "../api/migrationplan.js";
import { cutover, cutoverRecord, restorableSpec, type CutoverRecord } from "./cutover.js";
import { controllerOf } from "./owners.js";
import {
  annotationJSON,
  clusterIPOf,
  desiredFamilies,
  familyState,
  hasSelector,
  sameList,
  shapeOf,
  stateOfFamilies,
  type IPFamily,
  type IPFamilyPolicy,
  type MergePatch,
  type Service,
  type ServiceSpec,
} from "./families.js";

export interface Hold {
  kind: typeof PROBLEMS.drifted | typeof PROBLEMS.failed;
  generation: number;
  planGeneration: number;
  reason: string;
  message: string;
  manager?: string;
}

export const originalSpec = (svc: Service): ServiceSpec | undefined =>
  annotationJSON<ServiceSpec>(svc, ORIGINAL_ANNOTATION);
export const holdOf = (svc: Service): Hold | undefined => annotationJSON<Hold>(svc, HOLD_ANNOTATION);

export interface PlanSettings {
  plan: string;
  planGeneration: number;
  target: TargetPhase;
  dualStackPolicy: DualStackPolicy;
  requireIPv6Endpoints: boolean;
  allowLoadBalancerRecreate: boolean;
  requirePreflight: boolean;
  allowControllerOwned: boolean;
  /** The time to record as a cutover's start (ISO 8601); passed in so decide() stays pure. */
  now?: string;
}

export interface ServiceFacts {
  /** Ready endpoints in EndpointSlices of addressType IPv6 for this Service. */
  ipv6ReadyEndpoints: number;
  /** A blocking preflight finding for this Service (when spec.ipv6Only.requirePreflight). */
  preflightBlock?: { reason: string; message: string };
}

export type Decision =
  | { action: "none"; state: FamilyState }
  | { action: "skip"; reason: string; message: string }
  | { action: "block"; reason: string; message: string }
  | { action: "hold"; hold: Hold }
  | { action: "patch"; patch: MergePatch; expect: IPFamily[]; state: ServiceState; description: string }
  | { action: "cutover"; toExternalName: MergePatch; record: CutoverRecord; expect: IPFamily[]; description: string }
  | { action: "resume"; record: CutoverRecord };

/** Decides the next step for one Service the plan manages (src/migration/snapshot.ts leaves out the others). */
export function decide(svc: Service, settings: PlanSettings, facts: ServiceFacts): Decision {
  const shape = shapeOf(svc);
  const current = svc.spec;
  const original = originalSpec(svc);
  const record = cutoverRecord(svc);

  // A cutover in flight (the operator stopped between its two writes) is finished first, whatever else holds.
  if (record && current.type === "ExternalName") return { action: "resume", record };

  if (shape === "APIServer") {
    return { action: "skip", reason: REASONS.apiServerOwned, message: "default/kubernetes belongs to the API server" };
  }
  if (shape === "ExternalName" && !original) {
    return {
      action: "skip",
      reason: REASONS.externalName,
      message: "an ExternalName Service has no ClusterIP to move",
    };
  }

  const hold = holdOf(svc);
  if (hold && hold.generation === (svc.metadata.generation ?? 0) && hold.planGeneration === settings.planGeneration) {
    return { action: "hold", hold };
  }

  // Audit with nothing of ours on the Service: nothing to do, whatever its families.
  if (settings.target === "Audit" && !original) return { action: "none", state: familyState(current) };

  // The spec a move records as the original is copied only where a move needs it (below): most Services of a
  // large plan need none, and the copy was a tenth of a 20,000-Service reconcile's CPU.
  const want = desiredFamilies(settings.target, original ?? current);

  // Someone else changed a Service this plan had moved (a GitOps sync, Helm): report, don't fight.
  const applied = svc.metadata.annotations?.[APPLIED_ANNOTATION] as TargetPhase | undefined;
  if (original && applied && applied !== "Audit" && !hold) {
    const expected = desiredFamilies(applied, original);
    if (!sameList(current.ipFamilies, expected)) {
      return {
        action: "hold",
        hold: {
          kind: PROBLEMS.drifted,
          generation: svc.metadata.generation ?? 0,
          planGeneration: settings.planGeneration,
          reason: REASONS.changedByAnotherManager,
          message: `ipFamilies is ${JSON.stringify(current.ipFamilies ?? [])}, not ${JSON.stringify(expected)} as the plan left it`,
          manager: lastManagerOf(svc.metadata.managedFields, ["ipFamilies", "ipFamilyPolicy", "clusterIPs", "type"]),
        },
      };
    }
  }

  if (settings.target === "Audit") return restore(svc, original ?? restorableSpec(current), settings);

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
        reason: REASONS.selectorlessWithoutIPv6Endpoints,
        message: "a Service without a selector has hand-made endpoints, and none of them is IPv6",
      };
    }
    const controller = controllerOf(svc);
    if (controller && !settings.allowControllerOwned) {
      return {
        action: "block",
        reason: REASONS.controllerOwned,
        message: `controlled by ${controller.kind} ${controller.name}, which may revert it or re-create it mid-cutover; set spec.ipv6Only.allowControllerOwned to cut it over anyway`,
      };
    }
    if (hasSelector(svc) && settings.requireIPv6Endpoints && facts.ipv6ReadyEndpoints === 0) {
      return {
        action: "block",
        reason: REASONS.waitingForIPv6Endpoints,
        message: "no ready endpoint in an EndpointSlice of addressType IPv6 (spec.ipv6Only.requireIPv6Endpoints)",
      };
    }
    if (settings.requirePreflight && facts.preflightBlock) {
      return {
        action: "block",
        reason: `${PREFLIGHT_REASON_PREFIX}${facts.preflightBlock.reason}`,
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
      reason: REASONS.loadBalancerRecreateNotAllowed,
      message:
        "changing the primary family of a LoadBalancer Service recreates its cloud load balancer; set spec.ipv6Only.allowLoadBalancerRecreate to allow it",
    };
  }
  // Keep what clients already use: the IPv6 address a dual-stack Service has, and on the way back the
  // original IPv4 address; nodePorts are re-requested as they are.
  const recorded = original ?? restorableSpec(current);
  const requested = want
    .map((family) => clusterIPOf(current, family) ?? clusterIPOf(recorded, family))
    .filter((ip): ip is string => ip !== undefined);
  return cutover(svc, want, policy, requested, settings, recorded);
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

/** Back to the original spec: in place where the primary family is unchanged, otherwise a cutover. */
function restore(svc: Service, original: ServiceSpec, settings: PlanSettings): Decision {
  const current = svc.spec;
  const want = original.ipFamilies ?? [];
  const clearMetadata: MergePatch = {
    resourceVersion: svc.metadata.resourceVersion,
    labels: { [STATE_LABEL]: null },
    annotations: Object.fromEntries(OPERATOR_ANNOTATIONS.map((key) => [key, null])),
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
      reason: REASONS.loadBalancerRecreateNotAllowed,
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
    if (!entry.manager || entry.manager === FIELD_MANAGER) continue;
    const spec = entry.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
    if (!spec || !fields.some((f) => `f:${f}` in spec)) continue;
    const time = entry.time ?? "";
    if (!best || time >= best.time) best = { manager: entry.manager, time };
  }
  return best?.manager;
}
