// Plan-level decisions: which Services a plan selects, which plan owns a Service, the plan's settings, the tally
// of its Services and the status it reports. Pure functions; the reconciler feeds them from its caches.
import type { Condition } from "../runtime/object.js";
import { compareStrings, setCondition } from "../runtime/object.js";
import {
  CONDITIONS,
  MAX_PROBLEMS,
  PROBLEMS,
  REASONS,
  type DeletionPolicy,
  type PlanPhase,
  type ProblemState,
  type LabelSelector,
  type MigrationPlan,
  type MigrationPlanStatus,
  type PlanSummary,
  type PreflightStatus,
  type ServiceProblem,
  type TargetPhase,
} from "../api/migrationplan.js";
import { familyState, type Service } from "./families.js";
import type { Decision, Hold, PlanSettings } from "./service.js";

export function matchesSelector(selector: LabelSelector | undefined, labels: Record<string, string> = {}): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    switch (req.operator) {
      case "In":
        if (!has || !(req.values ?? []).includes(value ?? "")) return false;
        break;
      case "NotIn":
        if (has && (req.values ?? []).includes(value ?? "")) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/** Whether a plan selects a Service; `namespaceLabels` are the labels of the Service's namespace. */
export function selects(
  plan: MigrationPlan,
  svc: Service,
  namespaceLabels: Record<string, string> | undefined,
): boolean {
  const sel = plan.spec.selector ?? {};
  const ns = svc.metadata.namespace ?? "";
  const named = sel.namespaces ?? [];
  if (named.length > 0 && !named.includes(ns)) return false;
  if (named.length === 0 && ns === "kube-system") return false;
  if ((sel.excludeNamespaces ?? []).includes(ns)) return false;
  if (sel.namespaceSelector && !matchesSelector(sel.namespaceSelector, namespaceLabels ?? {})) return false;
  return matchesSelector(sel.serviceSelector, svc.metadata.labels ?? {});
}

/**
 * Of the plans that select a Service, the oldest keeps it. creationTimestamp has one-second resolution, so on a
 * tie the plan already managing the Service (`manager`, from its annotation) keeps it, then the first by name.
 */
export function owningPlan(plans: MigrationPlan[], manager?: string): MigrationPlan | undefined {
  return [...plans].sort((a, b) => {
    const ta = a.metadata.creationTimestamp ?? "";
    const tb = b.metadata.creationTimestamp ?? "";
    if (ta !== tb) return ta < tb ? -1 : 1;
    if (manager && (a.metadata.name === manager) !== (b.metadata.name === manager)) {
      return a.metadata.name === manager ? -1 : 1;
    }
    return compareStrings(a.metadata.name, b.metadata.name);
  })[0];
}

export function settingsOf(plan: MigrationPlan, now?: string): PlanSettings {
  return {
    ...(now ? { now } : {}),
    plan: plan.metadata.name,
    planGeneration: plan.metadata.generation ?? 0,
    target: plan.spec.targetPhase ?? "Audit",
    dualStackPolicy: plan.spec.dualStack?.ipFamilyPolicy ?? "PreferDualStack",
    requireIPv6Endpoints: plan.spec.ipv6Only?.requireIPv6Endpoints ?? true,
    allowLoadBalancerRecreate: plan.spec.ipv6Only?.allowLoadBalancerRecreate ?? false,
    requirePreflight: plan.spec.ipv6Only?.requirePreflight ?? true,
    allowControllerOwned: plan.spec.ipv6Only?.allowControllerOwned ?? false,
  };
}

/**
 * The plan as its deletion carries it out: Orphan finishes the cutovers in flight and changes nothing else (as
 * if suspended); Rollback takes every Service back to its original spec (as if the target were Audit).
 */
export function planBeingDeleted(plan: MigrationPlan): MigrationPlan {
  const policy = plan.spec.deletionPolicy ?? "Orphan";
  const spec =
    policy === "Rollback"
      ? { ...plan.spec, targetPhase: "Audit" as const, suspend: false }
      : { ...plan.spec, suspend: true };
  return { ...plan, spec };
}

/** The rollout's pacing, read from the spec; throws with the field named when the spec can't be read. */
export interface RolloutSettings {
  /** How many Services a batch moves, once the number selected is known. */
  batchSize: (selected: number) => number;
  pauseMs: number;
  maxFailures: number;
  suspend: boolean;
}

export function rolloutSettings(plan: MigrationPlan): RolloutSettings {
  const rollout = plan.spec.rollout ?? {};
  const pauseMs = parseDuration(rollout.pauseBetweenBatches);
  batchSizeOf(rollout.batchSize, 1);
  return {
    batchSize: (selected) => batchSizeOf(rollout.batchSize, selected),
    pauseMs,
    maxFailures: rollout.maxFailures ?? 0,
    suspend: plan.spec.suspend === true,
  };
}

/** batchSize as a count: an integer, or a percentage of the selected Services rounded up (at least 1). */
export function batchSizeOf(batchSize: number | string | undefined, selected: number): number {
  if (batchSize === undefined) return 10;
  if (typeof batchSize === "number") return Math.max(1, Math.floor(batchSize));
  const percent = /^(\d+)%$/.exec(batchSize);
  if (!percent) throw new Error(`spec.rollout.batchSize "${batchSize}" is neither an integer nor a percentage`);
  return Math.max(1, Math.ceil((selected * Number(percent[1])) / 100));
}

/** Go's time.ParseDuration for the units a pause needs: "30s", "1m30s", "500ms", "1.5h". */
export function parseDuration(value: string | undefined, fallbackMs = 30_000): number {
  if (value === undefined || value === "") return fallbackMs;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = value;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`spec.rollout.pauseBetweenBatches "${value}" is not a duration such as 30s or 1m30s`);
    total += Number(m[1]) * (units[m[2] ?? "s"] ?? 1000);
    rest = rest.slice(m[0].length);
  }
  return total;
}

export const PHASE_ORDER: Record<TargetPhase, number> = { Audit: 0, DualStack: 1, IPv6Only: 2 };

export interface Tally extends Required<PlanSummary> {
  /** Services with a write still to make (moving or waiting for the next batch). */
  pending: number;
  problems: ServiceProblem[];
}

export function emptyTally(): Tally {
  return {
    selected: 0,
    ipv4Only: 0,
    dualStack: 0,
    ipv6Only: 0,
    atTarget: 0,
    skipped: 0,
    skippedByReason: {},
    blocked: 0,
    failed: 0,
    drifted: 0,
    pending: 0,
    problems: [],
  };
}

/** Counts a Service's decision into the tally, listing it as a problem where it needs attention. */
export function account(tally: Tally, svc: Service, decision: Decision): void {
  countFamily(tally, svc, 1);
  switch (decision.action) {
    case "none":
      tally.atTarget++;
      break;
    case "skip":
      tally.skipped++;
      tally.skippedByReason[decision.reason] = (tally.skippedByReason[decision.reason] ?? 0) + 1;
      break;
    case "block":
      tally.blocked++;
      tally.problems.push(problem(svc, PROBLEMS.blocked, decision.reason, decision.message));
      break;
    case "hold":
      if (decision.hold.kind === PROBLEMS.drifted) tally.drifted++;
      else tally.failed++;
      tally.problems.push(problem(svc, decision.hold.kind, decision.hold.reason, holdMessage(decision.hold)));
      break;
    default:
      tally.pending++;
  }
}

/** A Service the writes just moved: from pending to at target, in its new family. */
export function accountMoved(tally: Tally, before: Service, after: Service): void {
  tally.pending--;
  tally.atTarget++;
  countFamily(tally, before, -1);
  countFamily(tally, after, 1);
}

/** A Service whose write was refused: from pending to failed. */
export function accountFailed(tally: Tally, svc: Service, reason: string, message: string): void {
  tally.pending--;
  tally.failed++;
  tally.problems.push(problem(svc, PROBLEMS.failed, reason, message));
}

function countFamily(tally: Tally, svc: Service, delta: number): void {
  const state = familyState(svc.spec);
  if (state === "ipv4-only") tally.ipv4Only += delta;
  else if (state === "dual-stack") tally.dualStack += delta;
  else if (state === "ipv6-only") tally.ipv6Only += delta;
}

export function problem(svc: Service, state: ProblemState, reason: string, message: string): ServiceProblem {
  return { namespace: svc.metadata.namespace ?? "", name: svc.metadata.name, state, reason, message };
}

export function holdMessage(hold: Hold): string {
  return hold.kind === PROBLEMS.drifted
    ? `changed back by ${hold.manager ?? "an unknown field manager"}: ${hold.message}; not retried until the Service or the plan changes`
    : `${hold.message}; not retried until the Service or the plan changes`;
}

export interface StatusInput {
  plan: MigrationPlan;
  tally: Tally;
  clusterDualStackCapable: { status: boolean | undefined; message: string };
  /** Set when only a person can fix it. */
  stalled?: { reason: string; message: string };
  batch?: MigrationPlanStatus["currentBatch"];
  /** Set while the plan is being deleted: what its deletionPolicy still has to do. */
  deleting?: DeletionPolicy;
  /** When a stall that only a retry can clear is retried (status.retryAt). */
  retryAt?: string;
  preflight?: PreflightStatus;
  /** The NewServicesDefaulted condition (spec.newServices); left as it is when undefined. */
  newServices?: { status: boolean; reason: string; message: string };
  now: () => string;
}

/** The whole status, following kstatus: Ready, Reconciling and Stalled, each with observedGeneration. */
export function computeStatus(input: StatusInput): MigrationPlanStatus {
  const { plan, tally, stalled } = input;
  const generation = plan.metadata.generation ?? 0;
  const target = plan.spec.targetPhase ?? "Audit";
  const suspended = plan.spec.suspend === true;
  const done = tally.pending === 0 && tally.blocked === 0 && tally.failed === 0 && tally.drifted === 0;
  // Complete means every Service that is to move has moved: a blocked one has not. A Service blocked on its way
  // to IPv6-only is dual-stack already, so it does not hold DualStackComplete back.
  const reachedTarget = tally.pending === 0 && tally.blocked === 0;
  const dualStackDone = tally.pending === 0 && (target !== "DualStack" || tally.blocked === 0);
  let conditions: Condition[] = plan.status?.conditions ?? [];
  const set = (type: string, status: boolean, reason: string, message: string) => {
    conditions = setCondition(
      conditions,
      { type, status: status ? "True" : "False", reason, message, observedGeneration: generation },
      input.now,
    );
  };

  const counts = `${tally.atTarget + tally.skipped}/${tally.selected} at target (${tally.skipped} skipped, ${tally.blocked} blocked, ${tally.failed} failed, ${tally.drifted} drifted)`;
  let phase: PlanPhase;
  if (stalled) phase = "Stalled";
  else if (suspended) phase = "Suspended";
  else if (done) phase = target === "Audit" ? "Audited" : target;
  else if (tally.pending === 0) phase = "Blocked";
  else if (target === "Audit") phase = "RollingBack";
  else phase = target === "DualStack" ? "MigratingToDualStack" : "MigratingToIPv6Only";

  if (stalled) {
    set(CONDITIONS.stalled, true, stalled.reason, stalled.message);
    set(CONDITIONS.reconciling, false, stalled.reason, "stopped until the problem is fixed");
    set(CONDITIONS.ready, false, stalled.reason, stalled.message);
  } else {
    set(CONDITIONS.stalled, false, REASONS.notStalled, "no problem that needs a person");
    if (suspended) {
      set(CONDITIONS.reconciling, false, REASONS.suspended, "spec.suspend is true: no Service is changed");
      set(CONDITIONS.ready, done, done ? REASONS.atTarget : REASONS.suspended, counts);
    } else if (done) {
      set(CONDITIONS.reconciling, false, REASONS.atTarget, counts);
      set(CONDITIONS.ready, true, REASONS.atTarget, counts);
    } else {
      const reason =
        tally.pending > 0
          ? REASONS.progressing
          : tally.blocked > 0
            ? REASONS.servicesBlocked
            : REASONS.servicesNeedAttention;
      set(CONDITIONS.reconciling, true, reason, counts);
      set(CONDITIONS.ready, false, reason, counts);
    }
  }
  if (input.deleting && !stalled) {
    // kstatus reads a plan with a deletionTimestamp as InProgress; the conditions say what is left to do.
    phase = "Deleting";
    const message =
      input.deleting === "Rollback"
        ? `spec.deletionPolicy is Rollback: restoring every Service to its original spec; ${counts}`
        : "spec.deletionPolicy is Orphan: finishing the cutovers in flight; the Services stay as they are";
    set(CONDITIONS.reconciling, true, REASONS.deleting, message);
    set(CONDITIONS.ready, false, REASONS.deleting, message);
  }
  const capable = input.clusterDualStackCapable;
  if (capable.status !== undefined) {
    set(
      CONDITIONS.clusterDualStackCapable,
      capable.status,
      capable.status ? REASONS.ipv6RangeFound : REASONS.noIPv6ServiceRange,
      capable.message,
    );
  }
  set(CONDITIONS.audited, true, REASONS.classified, `${tally.selected} Services selected and classified`);
  const atLeast = (phase: TargetPhase) => PHASE_ORDER[target] >= PHASE_ORDER[phase];
  set(
    CONDITIONS.dualStackComplete,
    atLeast("DualStack") && dualStackDone && !stalled,
    atLeast("DualStack") ? (dualStackDone ? REASONS.complete : REASONS.inProgress) : REASONS.notTargeted,
    atLeast("DualStack") ? counts : `targetPhase is ${target}`,
  );
  set(
    CONDITIONS.ipv6OnlyComplete,
    target === "IPv6Only" && reachedTarget && !stalled,
    target === "IPv6Only" ? (reachedTarget ? REASONS.complete : REASONS.inProgress) : REASONS.notTargeted,
    target === "IPv6Only" ? counts : `targetPhase is ${target}`,
  );

  if (input.preflight) {
    const blocking = input.preflight.findings.filter((f) => f.severity === "Blocking");
    const total = Object.values(input.preflight.counts).reduce((a, b) => a + b, 0);
    set(
      CONDITIONS.preflightPassed,
      blocking.length === 0,
      blocking.length === 0 ? REASONS.noBlockingFinding : REASONS.blockingFindings,
      blocking.length === 0
        ? `${total} findings, none blocking`
        : `${blocking.length} blocking findings, e.g. ${blocking[0]?.object}: ${blocking[0]?.reason}`,
    );
  }
  if (input.newServices) {
    const { status, reason, message } = input.newServices;
    set(CONDITIONS.newServicesDefaulted, status, reason, message);
  }
  const problems = [...tally.problems].sort((a, b) =>
    compareStrings(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`),
  );
  return {
    observedGeneration: generation,
    phase,
    progress: `${tally.atTarget + tally.skipped}/${tally.selected}`,
    summary: {
      selected: tally.selected,
      ipv4Only: tally.ipv4Only,
      dualStack: tally.dualStack,
      ipv6Only: tally.ipv6Only,
      atTarget: tally.atTarget,
      skipped: tally.skipped,
      skippedByReason: tally.skippedByReason,
      blocked: tally.blocked,
      failed: tally.failed,
      drifted: tally.drifted,
    },
    ...(input.batch ? { currentBatch: input.batch } : {}),
    ...(input.retryAt ? { retryAt: input.retryAt } : {}),
    ...(input.preflight ? { preflight: input.preflight } : {}),
    problems: problems.slice(0, MAX_PROBLEMS),
    ...(problems.length > MAX_PROBLEMS ? { problemsTruncated: problems.length - MAX_PROBLEMS } : {}),
    conditions,
  };
}

/** Equality by content (the server sorts object keys), so a status write happens only when something changed. */
export function sameStatus(a: MigrationPlanStatus | undefined, b: MigrationPlanStatus): boolean {
  return canonicalJSON(a ?? {}) === canonicalJSON(b);
}

export function canonicalJSON(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => compareStrings(a, b)))
      : v,
  );
}
