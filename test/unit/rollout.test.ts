// Unit tests of the rollout planner (src/migration/rollout.ts): which writes happen now, as a batch or not, when
// the rollout is stalled, and when the plan comes back. The time is a FakeClock's; no cluster, no timers.
import assert from "node:assert/strict";
import {
  CONDITIONS,
  HOLD_ANNOTATION,
  REASONS,
  STATE_LABEL,
  type MigrationPlan,
  type MigrationPlanStatus,
} from "../../src/api/migrationplan.js";
import type { Service } from "../../src/migration/families.js";
import { rolloutSettings } from "../../src/migration/plan.js";
import {
  afterWrites,
  planRollout,
  STALL_RETRY_MS,
  type RolloutInput,
  type Write,
} from "../../src/migration/rollout.js";
import type { Decision } from "../../src/migration/service.js";
import { FakeClock } from "../../src/runtime/clock.js";

const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));
const iso = (ms: number) => new Date(ms).toISOString();

function svc(name: string, meta: Partial<Service["metadata"]> = {}): Service {
  return { metadata: { name, namespace: "shop", ...meta }, spec: { type: "ClusterIP" } };
}

const PATCH: Decision = { action: "patch", patch: {}, expect: ["IPv4", "IPv6"], state: "dual-stack", description: "" };
const RESUME: Decision = {
  action: "resume",
  record: { restore: {}, snapshot: {}, state: "ipv6-only", applied: "IPv6Only", plan: "p" },
};
const BLOCK: Decision = { action: "block", reason: REASONS.waitingForIPv6Endpoints, message: "no IPv6 endpoint" };
const HOLD: Decision = {
  action: "hold",
  hold: { kind: "Failed", generation: 1, planGeneration: 1, reason: REASONS.writeRefused, message: "refused" },
};
const NONE: Decision = { action: "none", state: "dual-stack" };

const write = (name: string, decision: Decision, meta: Partial<Service["metadata"]> = {}): Write => ({
  svc: svc(name, meta),
  decision,
});
const names = (writes: Write[]) => writes.map((w) => w.svc.metadata.name);

function input(overrides: Partial<RolloutInput> & { spec?: MigrationPlan["spec"] } = {}): RolloutInput {
  const { spec, ...rest } = overrides;
  const plan: MigrationPlan = { metadata: { name: "p", generation: 1 }, spec: spec ?? { targetPhase: "DualStack" } };
  return {
    generation: 1,
    target: plan.spec.targetPhase ?? "Audit",
    status: undefined,
    settings: rolloutSettings(plan),
    decisions: [],
    selected: 0,
    failed: 0,
    ipv6ServiceRange: { status: true, message: "fd00::/108" },
    now: clock.now(),
    ...rest,
  };
}

function stalledStatus(reason: string, retryAt: number, generation = 1): MigrationPlanStatus {
  return {
    observedGeneration: generation,
    phase: "Stalled",
    retryAt: iso(retryAt),
    conditions: [
      {
        type: CONDITIONS.stalled,
        status: "True",
        reason,
        message: "patch /api/v1/namespaces/shop/services/a was forbidden",
        lastTransitionTime: iso(clock.now()),
        observedGeneration: generation,
      },
    ],
  };
}

describe("migration/rollout: planRollout", () => {
  it("moves a batch of batchSize, in key order, and numbers it after the last one", () => {
    const decisions = ["d", "b", "a", "c"].map((n) => write(n, PATCH));
    const step = planRollout(
      input({
        spec: { targetPhase: "DualStack", rollout: { batchSize: 2 } },
        decisions,
        selected: 4,
        status: { currentBatch: { number: 3, size: 2, startedAt: iso(0), finishedAt: iso(0) } },
      }),
    );
    assert.deepEqual(names(step.writes), ["a", "b"]);
    assert.deepEqual(step.batch, { number: 4, size: 2, startedAt: iso(clock.now()) });
    assert.equal(step.stalled, undefined);
  });

  it("a percentage batchSize is of the Services selected, rounded up", () => {
    const decisions = ["a", "b", "c", "d", "e"].map((n) => write(n, PATCH));
    const step = planRollout(
      input({ spec: { targetPhase: "DualStack", rollout: { batchSize: "30%" } }, decisions, selected: 5 }),
    );
    assert.deepEqual(names(step.writes), ["a", "b"]);
  });

  it("waits out the pause after the last batch, and asks to come back when it ends", () => {
    const finishedAt = clock.now() - 10_000;
    const step = planRollout(
      input({
        spec: { targetPhase: "DualStack", rollout: { pauseBetweenBatches: "30s" } },
        decisions: [write("a", PATCH)],
        status: { currentBatch: { number: 1, size: 1, finishedAt: iso(finishedAt) } },
      }),
    );
    assert.deepEqual(step.writes, []);
    assert.equal(step.batch, undefined);
    assert.equal(step.requeueAfterMs, 20_000);
  });

  it("once the pause is over, the next batch goes", () => {
    const step = planRollout(
      input({
        spec: { targetPhase: "DualStack", rollout: { pauseBetweenBatches: "30s" } },
        decisions: [write("a", PATCH)],
        status: { currentBatch: { number: 1, size: 1, finishedAt: iso(clock.now() - 30_000) } },
      }),
    );
    assert.deepEqual(names(step.writes), ["a"]);
    assert.equal(step.batch?.number, 2);
  });

  it("in-flight cutovers are always first, outside the pause, and count in the batch", () => {
    const decisions = [write("a", PATCH), write("z", RESUME), write("b", PATCH)];
    const paused = planRollout(
      input({ decisions, status: { currentBatch: { number: 1, size: 1, finishedAt: iso(clock.now()) } } }),
    );
    assert.deepEqual(names(paused.writes), ["z"], "the pause holds the moves, never a resume");
    assert.equal(paused.batch?.size, 1);
    const step = planRollout(input({ spec: { targetPhase: "DualStack", rollout: { batchSize: 2 } }, decisions }));
    assert.deepEqual(names(step.writes), ["z", "a"], "the resume first, then the batch fills up");
  });

  it("resumes are never cut by batchSize", () => {
    const decisions = [write("r1", RESUME), write("r2", RESUME), write("r3", RESUME), write("a", PATCH)];
    const step = planRollout(input({ spec: { targetPhase: "DualStack", rollout: { batchSize: 2 } }, decisions }));
    assert.deepEqual(names(step.writes), ["r1", "r2", "r3"]);
  });

  it("suspended: only resumes, no records", () => {
    const decisions = [write("a", PATCH), write("r", RESUME), write("b", BLOCK)];
    const step = planRollout(input({ spec: { targetPhase: "DualStack", suspend: true }, decisions }));
    assert.deepEqual(names(step.writes), ["r"]);
    assert.equal(step.stalled, undefined);
  });

  it("without an IPv6 Service range a rollout stalls, but Audit (a rollback) does not", () => {
    const decisions = [write("a", PATCH), write("r", RESUME)];
    const ipv6ServiceRange = { status: false, message: "no IPv6 range" };
    const stalled = planRollout(input({ decisions, ipv6ServiceRange }));
    assert.equal(stalled.stalled?.reason, REASONS.noIPv6ServiceRange);
    assert.deepEqual(names(stalled.writes), ["r"], "a stalled plan still finishes cutovers in flight");
    const rollback = planRollout(input({ spec: { targetPhase: "Audit" }, decisions, ipv6ServiceRange }));
    assert.equal(rollback.stalled, undefined);
    assert.deepEqual(names(rollback.writes), ["r", "a"]);
  });

  it("more failed Services than maxFailures stall the rollout", () => {
    const decisions = [write("a", PATCH)];
    assert.equal(planRollout(input({ decisions, failed: 0 })).stalled, undefined);
    const step = planRollout(
      input({ spec: { targetPhase: "DualStack", rollout: { maxFailures: 1 } }, decisions, failed: 2 }),
    );
    assert.equal(step.stalled?.reason, REASONS.maxFailuresReached);
    assert.match(step.stalled?.message ?? "", /2 Services failed, more than spec.rollout.maxFailures \(1\)/);
    assert.deepEqual(step.writes, []);
    const tolerated = planRollout(
      input({ spec: { targetPhase: "DualStack", rollout: { maxFailures: 2 } }, decisions, failed: 2 }),
    );
    assert.equal(tolerated.stalled, undefined);
  });

  it("a stall from a refused write holds until status.retryAt, from the status alone", () => {
    const retryAt = clock.now() + 25_000;
    const decisions = [write("a", PATCH)];
    const held = planRollout(input({ decisions, status: stalledStatus(REASONS.forbidden, retryAt) }));
    assert.equal(held.stalled?.reason, REASONS.forbidden);
    assert.equal(held.retryAt, iso(retryAt));
    assert.equal(held.requeueAfterMs, 25_000);
    assert.deepEqual(held.writes, []);

    const later = planRollout(input({ decisions, status: stalledStatus(REASONS.forbidden, retryAt), now: retryAt }));
    assert.equal(later.stalled, undefined, "cleared at retryAt: the writes are tried again");
    assert.deepEqual(names(later.writes), ["a"]);

    const changed = planRollout(input({ decisions, generation: 2, status: stalledStatus(REASONS.forbidden, retryAt) }));
    assert.equal(changed.stalled, undefined, "a new generation of the plan is tried at once");
  });

  it("records drift and gates once: not again when the Service already shows them", () => {
    const decisions = [
      write("held-new", HOLD),
      write("held-seen", HOLD, { annotations: { [HOLD_ANNOTATION]: "{}" } }),
      write("blocked-new", BLOCK),
      write("blocked-seen", BLOCK, { labels: { [STATE_LABEL]: "blocked" } }),
      write("done", NONE),
    ];
    const step = planRollout(input({ decisions }));
    assert.deepEqual(names(step.writes), ["held-new", "blocked-new"]);
    assert.equal(step.batch, undefined, "records alone are not a batch");
  });

  it("the same input plans the same step: nothing depends on a previous call", () => {
    const args = input({ decisions: [write("b", PATCH), write("a", PATCH)] });
    assert.deepEqual(planRollout(args), planRollout(args));
  });
});

describe("migration/rollout: afterWrites", () => {
  const decisions = [write("a", PATCH), write("b", PATCH)];

  it("a finished batch gets finishedAt, and the pause is owed while Services are pending", () => {
    const args = input({
      spec: { targetPhase: "DualStack", rollout: { batchSize: 1, pauseBetweenBatches: "45s" } },
      decisions,
    });
    const step = planRollout(args);
    const after = afterWrites(args, step, { moved: 1, failed: 0 }, 1, clock.now() + 500);
    assert.equal(after.finished, true);
    assert.equal(after.batch?.finishedAt, iso(clock.now() + 500));
    assert.equal(after.requeueAfterMs, 45_000);
    const last = afterWrites(args, step, { moved: 1, failed: 0 }, 0, clock.now());
    assert.equal(last.requeueAfterMs, undefined, "nothing pending: nothing to come back for");
  });

  it("a Forbidden answer stalls the rollout until a retry after STALL_RETRY_MS", () => {
    const args = input({ decisions, status: { currentBatch: { number: 1, size: 2, finishedAt: iso(0) } } });
    const step = planRollout(args);
    const stalled = { reason: REASONS.forbidden, message: "forbidden" };
    const after = afterWrites(args, step, { moved: 0, failed: 0, stalled }, 2, clock.now());
    assert.deepEqual(after.stalled, stalled);
    assert.equal(after.retryAt, iso(clock.now() + STALL_RETRY_MS));
    assert.equal(after.requeueAfterMs, STALL_RETRY_MS);
    assert.equal(after.finished, false);
    assert.deepEqual(after.batch, args.status?.currentBatch, "nothing moved: not a batch, so no pause is owed");

    const some = afterWrites(args, step, { moved: 1, failed: 0, stalled }, 1, clock.now());
    assert.equal(some.finished, true, "what moved before the refusal is a batch");
    assert.equal(some.batch?.number, 2);
  });

  it("a write that gets through while a stall is held clears its retryAt", () => {
    const retryAt = clock.now() + 10_000;
    const args = input({ decisions: [write("r", RESUME)], status: stalledStatus(REASONS.forbidden, retryAt) });
    const step = planRollout(args);
    assert.deepEqual(names(step.writes), ["r"]);
    const after = afterWrites(args, step, { moved: 1, failed: 0 }, 0, clock.now());
    assert.equal(after.retryAt, undefined);
  });
});
