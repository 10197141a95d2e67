// The rollout planner: given the plan's settings and status, the decisions for its Services and the time, which
// writes to make now, whether they start a batch, whether the rollout is stalled, and when to come back. Pure:
// everything it needs is in its input, so a restarted or newly elected operator plans exactly the same.
import {
  CONDITIONS,
  HOLD_ANNOTATION,
  REASONS,
  SERVICE_STATES,
  STATE_LABEL,
  type Batch,
  type MigrationPlanStatus,
  type TargetPhase,
} from "../api/migrationplan.js";
import { compareStrings, findCondition, keyOf } from "../runtime/object.js";
import type { Service } from "./families.js";
import type { RolloutSettings } from "./plan.js";
import type { Decision } from "./service.js";

/** Something only a person (or, for Forbidden, a retry) can fix: no Service moves, in-flight cutovers excepted. */
export interface Stall {
  reason: string;
  message: string;
}

export interface Write {
  svc: Service;
  decision: Decision;
}

/** How long a stall found by a refused write holds before the writes are tried again. */
export const STALL_RETRY_MS = 60_000;

export interface RolloutInput {
  generation: number;
  target: TargetPhase;
  status: MigrationPlanStatus | undefined;
  settings: RolloutSettings;
  /** The next step of every Service the plan manages. */
  decisions: Write[];
  /** How many are selected (for a percentage batchSize) and how many are held as failed. */
  selected: number;
  failed: number;
  /** Whether the cluster has an IPv6 Service range; unknown counts as no only when a move needs it. */
  ipv6ServiceRange: { status: boolean; message: string };
  now: number;
}

export interface RolloutStep {
  /** In order: in-flight cutovers, then the batch's moves by key, then metadata-only records. */
  writes: Write[];
  /** The new batch when `writes` moves anything. */
  batch?: Batch;
  stalled?: Stall;
  /** Carried into status.retryAt while a stall from a refused write holds. */
  retryAt?: string;
  requeueAfterMs?: number;
}

/** A metadata-only record on the Service (drift, a gate) rather than a move. */
export function isRecord(decision: Decision): boolean {
  return decision.action === "hold" || decision.action === "block";
}

export function isMove(decision: Decision): boolean {
  return decision.action === "patch" || decision.action === "cutover" || decision.action === "resume";
}

/** Records to write: the first sight of drift or of a gate, so `kubectl get svc -L` shows it. */
function needsRecord(write: Write): boolean {
  const { svc, decision } = write;
  if (decision.action === "hold") return !svc.metadata.annotations?.[HOLD_ANNOTATION];
  if (decision.action === "block") return svc.metadata.labels?.[STATE_LABEL] !== SERVICE_STATES.blocked;
  return false;
}

export function planRollout(input: RolloutInput): RolloutStep {
  const { settings, now } = input;
  const resumes = input.decisions.filter((w) => w.decision.action === "resume");
  const moves = input.decisions.filter((w) => isMove(w.decision) && w.decision.action !== "resume").sort(byKey);
  const records = input.decisions.filter(needsRecord);

  let stalled = stallOf(input);
  let retryAt: string | undefined;
  let requeueAfterMs: number | undefined;
  if (!stalled) {
    const held = heldStall(input.status, input.generation, now);
    if (held) {
      ({ stalled, retryAt } = held);
      requeueAfterMs = Date.parse(held.retryAt) - now;
    }
  }
  // In-flight cutovers are always finished, even when suspended or stalled: never leave a Service ExternalName.
  if (stalled || settings.suspend) return withBatch({ writes: resumes, stalled, retryAt, requeueAfterMs }, input);

  const last = input.status?.currentBatch;
  const sinceLast = last?.finishedAt ? now - Date.parse(last.finishedAt) : Infinity;
  if (moves.length > 0 && sinceLast < settings.pauseMs) {
    return withBatch({ writes: [...resumes, ...records], requeueAfterMs: settings.pauseMs - sinceLast }, input);
  }
  const room = Math.max(0, settings.batchSize(input.selected) - resumes.length);
  return withBatch({ writes: [...resumes, ...moves.slice(0, room), ...records] }, input);
}

/** Numbers the batch when the writes move anything (resumes included): records alone are not a batch. */
function withBatch(step: RolloutStep, input: RolloutInput): RolloutStep {
  const moving = step.writes.filter((w) => !isRecord(w.decision)).length;
  if (moving === 0) return step;
  const batch = {
    number: (input.status?.currentBatch?.number ?? 0) + 1,
    size: moving,
    startedAt: new Date(input.now).toISOString(),
  };
  return { ...step, batch };
}

/** The stalls the plan and the cluster show by themselves. */
function stallOf(input: RolloutInput): Stall | undefined {
  if (input.target !== "Audit" && !input.ipv6ServiceRange.status) {
    return { reason: REASONS.noIPv6ServiceRange, message: `${input.ipv6ServiceRange.message}; no Service was changed` };
  }
  if (input.failed > input.settings.maxFailures) {
    return {
      reason: REASONS.maxFailuresReached,
      message: `${input.failed} Services failed, more than spec.rollout.maxFailures (${input.settings.maxFailures})`,
    };
  }
  return undefined;
}

/**
 * A stall found by a refused write holds, at the same generation, until status.retryAt: without this a
 * reconcile that makes no write (during the pause) would report it cleared. It lives in the status so that a
 * restart or a new leader keeps it.
 */
function heldStall(
  status: MigrationPlanStatus | undefined,
  generation: number,
  now: number,
): { stalled: Stall; retryAt: string } | undefined {
  const retryAt = status?.retryAt;
  if (!retryAt || status.observedGeneration !== generation || now >= Date.parse(retryAt)) return undefined;
  const condition = findCondition(status.conditions, CONDITIONS.stalled);
  if (condition?.status !== "True") return undefined;
  return { stalled: { reason: condition.reason, message: condition.message }, retryAt };
}

export interface BatchOutcome {
  moved: number;
  failed: number;
  /** Set when a write was refused in a way that stops the rollout (Forbidden). */
  stalled?: Stall;
  /** Set when the server could not serve a write (no answer, or a 5xx): the batch stops and is tried again. */
  unavailable?: Error;
}

export interface AfterBatch {
  /** status.currentBatch from now on. */
  batch?: Batch;
  stalled?: Stall;
  retryAt?: string;
  requeueAfterMs?: number;
  /** Whether the batch finished (for its Event): not when a stall stopped it before anything moved. */
  finished: boolean;
}

/** What the writes of a step leave: the finished batch, a stall to hold until a retry, when to come back. */
export function afterWrites(
  input: RolloutInput,
  step: RolloutStep,
  outcome: BatchOutcome,
  pending: number,
  now: number,
): AfterBatch {
  const previous = input.status?.currentBatch;
  if (outcome.stalled) {
    const retryAt = new Date(now + STALL_RETRY_MS).toISOString();
    // Nothing moved: not a batch, so no pause is owed once the stall is fixed.
    const batch = outcome.moved === 0 || !step.batch ? previous : finish(step.batch, now);
    return {
      batch,
      stalled: outcome.stalled,
      retryAt,
      requeueAfterMs: STALL_RETRY_MS,
      finished: outcome.moved > 0 && !!step.batch,
    };
  }
  if (!step.batch) {
    return {
      batch: previous,
      stalled: step.stalled,
      retryAt: step.retryAt,
      requeueAfterMs: step.requeueAfterMs,
      finished: false,
    };
  }
  return {
    batch: finish(step.batch, now),
    stalled: step.stalled,
    // A write got through: a held stall is tried again at the next reconcile.
    retryAt: outcome.moved > 0 ? undefined : step.retryAt,
    requeueAfterMs: pending > 0 ? input.settings.pauseMs : step.requeueAfterMs,
    finished: true,
  };
}

function finish(batch: Batch, now: number): Batch {
  return { ...batch, finishedAt: new Date(now).toISOString() };
}

function byKey(a: Write, b: Write): number {
  return compareStrings(keyOf(a.svc), keyOf(b.svc));
}
