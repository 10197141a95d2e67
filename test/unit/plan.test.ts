// Unit tests of the plan-level decisions in src/migration/plan.ts: selection, ownership, batch sizes, pauses
// and the kstatus-shaped status. Plain objects only: no cluster, no network, no timers.
import assert from "node:assert/strict";
import {
  CONDITIONS,
  MAX_PROBLEMS,
  type LabelSelector,
  type MigrationPlan,
  type MigrationPlanSpec,
  type MigrationPlanStatus,
  type ServiceProblem,
} from "../../src/api/migrationplan.js";
import {
  batchSizeOf,
  canonicalJSON,
  computeStatus,
  emptyTally,
  matchesSelector,
  owningPlan,
  parseDuration,
  sameStatus,
  selects,
  settingsOf,
  type StatusInput,
  type Tally,
} from "../../src/migration/plan.js";
import { type Service } from "../../src/migration/families.js";
import { mergePatchTo, type Condition, type ObjectMeta } from "../../src/runtime/object.js";

function plan(name: string, spec: MigrationPlanSpec = {}, meta: Partial<ObjectMeta> = {}): MigrationPlan {
  return {
    apiVersion: "ipv6migration.io/v1alpha1",
    kind: "MigrationPlan",
    metadata: { name, generation: 1, creationTimestamp: "2024-01-01T00:00:00Z", ...meta },
    spec,
  };
}

function svc(namespace: string, labels: Record<string, string> = {}): Service {
  return { metadata: { name: "web", namespace, labels }, spec: { type: "ClusterIP" } };
}

describe("migration/plan: matchesSelector", () => {
  const labels = { app: "web", tier: "front", empty: "" };

  it("an absent or empty selector matches everything", () => {
    assert.equal(matchesSelector(undefined, labels), true);
    assert.equal(matchesSelector(undefined), true);
    assert.equal(matchesSelector({}, labels), true);
    assert.equal(matchesSelector({ matchLabels: {}, matchExpressions: [] }, {}), true);
  });

  it("matchLabels needs every pair, with the exact value", () => {
    assert.equal(matchesSelector({ matchLabels: { app: "web" } }, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: "web", tier: "front" } }, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: "web", tier: "back" } }, labels), false);
    assert.equal(matchesSelector({ matchLabels: { app: "Web" } }, labels), false);
    assert.equal(matchesSelector({ matchLabels: { team: "a" } }, labels), false);
    assert.equal(matchesSelector({ matchLabels: { empty: "" } }, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: "web" } }), false);
  });

  const expression = (req: NonNullable<LabelSelector["matchExpressions"]>[number]): LabelSelector => ({
    matchExpressions: [req],
  });

  it("In: the label exists and its value is listed", () => {
    assert.equal(matchesSelector(expression({ key: "tier", operator: "In", values: ["front", "back"] }), labels), true);
    assert.equal(matchesSelector(expression({ key: "tier", operator: "In", values: ["back"] }), labels), false);
    assert.equal(matchesSelector(expression({ key: "team", operator: "In", values: ["a"] }), labels), false);
    assert.equal(matchesSelector(expression({ key: "team", operator: "In", values: [""] }), labels), false);
    assert.equal(matchesSelector(expression({ key: "tier", operator: "In", values: [] }), labels), false);
    assert.equal(matchesSelector(expression({ key: "empty", operator: "In", values: [""] }), labels), true);
  });

  it("NotIn: the label is absent or its value is not listed", () => {
    assert.equal(matchesSelector(expression({ key: "tier", operator: "NotIn", values: ["back"] }), labels), true);
    assert.equal(matchesSelector(expression({ key: "tier", operator: "NotIn", values: ["front"] }), labels), false);
    assert.equal(matchesSelector(expression({ key: "team", operator: "NotIn", values: ["a"] }), labels), true);
    assert.equal(matchesSelector(expression({ key: "empty", operator: "NotIn", values: [""] }), labels), false);
  });

  it("Exists and DoesNotExist look at the key only", () => {
    assert.equal(matchesSelector(expression({ key: "tier", operator: "Exists" }), labels), true);
    assert.equal(matchesSelector(expression({ key: "empty", operator: "Exists" }), labels), true);
    assert.equal(matchesSelector(expression({ key: "team", operator: "Exists" }), labels), false);
    assert.equal(matchesSelector(expression({ key: "team", operator: "DoesNotExist" }), labels), true);
    assert.equal(matchesSelector(expression({ key: "tier", operator: "DoesNotExist" }), labels), false);
    assert.equal(matchesSelector(expression({ key: "empty", operator: "DoesNotExist" }), labels), false);
  });

  it("does not mistake inherited object properties for labels", () => {
    assert.equal(matchesSelector(expression({ key: "toString", operator: "Exists" }), labels), false);
    assert.equal(matchesSelector(expression({ key: "constructor", operator: "DoesNotExist" }), labels), true);
  });

  it("ANDs matchLabels and every expression", () => {
    const selector: LabelSelector = {
      matchLabels: { app: "web" },
      matchExpressions: [
        { key: "tier", operator: "In", values: ["front"] },
        { key: "team", operator: "DoesNotExist" },
      ],
    };
    assert.equal(matchesSelector(selector, labels), true);
    assert.equal(matchesSelector(selector, { ...labels, team: "a" }), false);
    assert.equal(matchesSelector(selector, { ...labels, app: "api" }), false);
    assert.equal(matchesSelector(selector, { ...labels, tier: "back" }), false);
  });
});

describe("migration/plan: selects", () => {
  it("with no selector, every namespace but kube-system", () => {
    const p = plan("all");
    assert.equal(selects(p, svc("shop"), {}), true);
    assert.equal(selects(p, svc("default"), undefined), true);
    assert.equal(selects(p, svc("kube-system"), {}), false);
  });

  it("namespaces limits to the named ones, and naming kube-system selects it", () => {
    const p = plan("named", { selector: { namespaces: ["shop", "kube-system"] } });
    assert.equal(selects(p, svc("shop"), {}), true);
    assert.equal(selects(p, svc("kube-system"), {}), true);
    assert.equal(selects(p, svc("billing"), {}), false);
    assert.equal(selects(plan("empty-list", { selector: { namespaces: [] } }), svc("kube-system"), {}), false);
  });

  it("excludeNamespaces wins over namespaces", () => {
    const p = plan("ex", { selector: { namespaces: ["shop", "billing"], excludeNamespaces: ["billing"] } });
    assert.equal(selects(p, svc("shop"), {}), true);
    assert.equal(selects(p, svc("billing"), {}), false);
    const q = plan("ex-all", { selector: { excludeNamespaces: ["billing"] } });
    assert.equal(selects(q, svc("shop"), {}), true);
    assert.equal(selects(q, svc("billing"), {}), false);
    assert.equal(selects(q, svc("kube-system"), {}), false);
  });

  it("namespaceSelector matches the namespace's labels (an unknown namespace has none)", () => {
    const p = plan("nsel", { selector: { namespaceSelector: { matchLabels: { ipv6: "yes" } } } });
    assert.equal(selects(p, svc("shop"), { ipv6: "yes" }), true);
    assert.equal(selects(p, svc("shop"), { ipv6: "no" }), false);
    assert.equal(selects(p, svc("shop"), undefined), false);
    const q = plan("nsel-not", {
      selector: { namespaceSelector: { matchExpressions: [{ key: "legacy", operator: "DoesNotExist" }] } },
    });
    assert.equal(selects(q, svc("shop"), undefined), true);
    assert.equal(selects(q, svc("shop"), { legacy: "true" }), false);
    assert.equal(selects(q, svc("kube-system"), {}), false, "kube-system still needs naming");
  });

  it("serviceSelector matches the Service's labels", () => {
    const p = plan("ssel", {
      selector: { serviceSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["web", "api"] }] } },
    });
    assert.equal(selects(p, svc("shop", { app: "web" }), {}), true);
    assert.equal(selects(p, svc("shop", { app: "db" }), {}), false);
    assert.equal(selects(p, svc("shop"), {}), false);
  });

  it("needs every part of the selector to match", () => {
    const p = plan("all-parts", {
      selector: {
        namespaces: ["shop"],
        namespaceSelector: { matchLabels: { ipv6: "yes" } },
        serviceSelector: { matchLabels: { app: "web" } },
      },
    });
    assert.equal(selects(p, svc("shop", { app: "web" }), { ipv6: "yes" }), true);
    assert.equal(selects(p, svc("shop", { app: "web" }), { ipv6: "no" }), false);
    assert.equal(selects(p, svc("shop", { app: "db" }), { ipv6: "yes" }), false);
    assert.equal(selects(p, svc("other", { app: "web" }), { ipv6: "yes" }), false);
  });
});

describe("migration/plan: owningPlan", () => {
  it("the oldest plan keeps a Service", () => {
    const older = plan("zeta", {}, { creationTimestamp: "2024-01-01T00:00:00Z" });
    const newer = plan("alpha", {}, { creationTimestamp: "2024-02-01T00:00:00Z" });
    assert.equal(owningPlan([newer, older])?.metadata.name, "zeta");
    assert.equal(owningPlan([older, newer])?.metadata.name, "zeta");
  });

  it("compares times, not just dates", () => {
    const a = plan("a", {}, { creationTimestamp: "2024-01-01T10:00:01Z" });
    const b = plan("b", {}, { creationTimestamp: "2024-01-01T10:00:00Z" });
    assert.equal(owningPlan([a, b])?.metadata.name, "b");
  });

  it("the name breaks a tie", () => {
    const t = "2024-01-01T00:00:00Z";
    const plans = [plan("shop-b", {}, { creationTimestamp: t }), plan("shop-a", {}, { creationTimestamp: t })];
    assert.equal(owningPlan(plans)?.metadata.name, "shop-a");
    assert.equal(owningPlan([...plans].reverse())?.metadata.name, "shop-a");
  });

  it("on a tie the plan already managing the Service keeps it", () => {
    const t = "2024-01-01T00:00:00Z";
    const plans = [plan("shop-b", {}, { creationTimestamp: t }), plan("shop-a", {}, { creationTimestamp: t })];
    assert.equal(owningPlan(plans, "shop-b")?.metadata.name, "shop-b");
    assert.equal(owningPlan([...plans].reverse(), "shop-b")?.metadata.name, "shop-b");
    const older = plan("zeta", {}, { creationTimestamp: "2023-01-01T00:00:00Z" });
    assert.equal(owningPlan([...plans, older], "shop-b")?.metadata.name, "zeta", "age still comes first");
  });

  it("does not reorder its input, and has no owner for no plans", () => {
    const plans = [plan("b", {}, { creationTimestamp: "2024-03-01T00:00:00Z" }), plan("a")];
    owningPlan(plans);
    assert.deepEqual(
      plans.map((p) => p.metadata.name),
      ["b", "a"],
    );
    assert.equal(owningPlan([]), undefined);
  });
});

describe("migration/plan: settingsOf", () => {
  it("defaults: Audit, PreferDualStack, requireIPv6Endpoints true, no load balancer recreation", () => {
    assert.deepEqual(settingsOf(plan("p", {}, { generation: 4 })), {
      plan: "p",
      planGeneration: 4,
      target: "Audit",
      dualStackPolicy: "PreferDualStack",
      requireIPv6Endpoints: true,
      allowLoadBalancerRecreate: false,
      requirePreflight: true,
      allowControllerOwned: false,
    });
  });

  it("takes every setting from the spec", () => {
    const p = plan("p", {
      targetPhase: "IPv6Only",
      dualStack: { ipFamilyPolicy: "RequireDualStack" },
      ipv6Only: {
        requireIPv6Endpoints: false,
        allowLoadBalancerRecreate: true,
        requirePreflight: false,
        allowControllerOwned: true,
      },
    });
    assert.deepEqual(settingsOf(p, "2026-01-01T00:00:00.000Z"), {
      now: "2026-01-01T00:00:00.000Z",
      plan: "p",
      planGeneration: 1,
      target: "IPv6Only",
      dualStackPolicy: "RequireDualStack",
      requireIPv6Endpoints: false,
      allowLoadBalancerRecreate: true,
      requirePreflight: false,
      allowControllerOwned: true,
    });
  });
});

describe("migration/plan: batchSizeOf", () => {
  it("defaults to 10", () => assert.equal(batchSizeOf(undefined, 500), 10));

  it("an integer is a count, at least 1", () => {
    assert.equal(batchSizeOf(5, 100), 5);
    assert.equal(batchSizeOf(500, 3), 500);
    assert.equal(batchSizeOf(1, 0), 1);
    assert.equal(batchSizeOf(0, 100), 1);
    assert.equal(batchSizeOf(-3, 100), 1);
    assert.equal(batchSizeOf(2.9, 100), 2);
  });

  it("a percentage of the selected Services, rounded up, at least 1", () => {
    assert.equal(batchSizeOf("25%", 8), 2);
    assert.equal(batchSizeOf("25%", 9), 3);
    assert.equal(batchSizeOf("33%", 10), 4);
    assert.equal(batchSizeOf("1%", 1000), 10);
    assert.equal(batchSizeOf("1%", 1), 1);
    assert.equal(batchSizeOf("100%", 7), 7);
    assert.equal(batchSizeOf("50%", 0), 1);
    assert.equal(batchSizeOf("0%", 100), 1);
  });

  for (const invalid of ["5", "abc", "", "10 %", "5.5%", "-5%", "%", "50%%"]) {
    it(`throws on ${JSON.stringify(invalid)}`, () => {
      assert.throws(
        () => batchSizeOf(invalid, 10),
        (err: unknown) => err instanceof Error && err.message.includes("neither an integer nor a percentage"),
      );
    });
  }
});

describe("migration/plan: parseDuration", () => {
  const cases: [string, number][] = [
    ["30s", 30_000],
    ["0s", 0],
    ["2m", 120_000],
    ["1m30s", 90_000],
    ["1h30m", 5_400_000],
    ["500ms", 500],
    ["1s500ms", 1500],
    ["1.5h", 5_400_000],
    ["0.5s", 500],
    ["24h", 86_400_000],
    ["1h1m1s1ms", 3_661_001],
  ];
  for (const [value, ms] of cases) {
    it(`"${value}" is ${ms}ms`, () => assert.equal(parseDuration(value), ms));
  }

  it("an absent or empty value is the fallback (30s unless given)", () => {
    assert.equal(parseDuration(undefined), 30_000);
    assert.equal(parseDuration(""), 30_000);
    assert.equal(parseDuration(undefined, 1234), 1234);
    assert.equal(parseDuration("", 0), 0);
  });

  for (const invalid of ["30", "abc", "1x", "1m30", "s", "1.s", "-1s", " 30s", "30s ", "1d", "1.5.5s"]) {
    it(`throws on ${JSON.stringify(invalid)}`, () => {
      assert.throws(
        () => parseDuration(invalid),
        (err: unknown) => err instanceof Error && err.message.includes(`"${invalid}" is not a duration`),
      );
    });
  }
});

describe("migration/plan: computeStatus", () => {
  const T0 = "2024-06-01T00:00:00Z";
  const T1 = "2024-06-01T01:00:00Z";
  const CAPABLE = { status: true, message: "IPv6 Service range fd00:10:96::/108 (ServiceCIDR)" };

  function tally(extra: Partial<Tally> = {}): Tally {
    return { ...emptyTally(), ...extra };
  }

  function input(p: MigrationPlan, t: Tally, extra: Partial<StatusInput> = {}): StatusInput {
    return { plan: p, tally: t, clusterDualStackCapable: CAPABLE, now: () => T1, ...extra };
  }

  function condition(status: MigrationPlanStatus, type: string): Condition {
    const c = status.conditions?.find((x) => x.type === type);
    assert.ok(c, `condition ${type} is set`);
    return c;
  }

  function statusOf(status: MigrationPlanStatus, type: string): string {
    return condition(status, type).status;
  }

  const doneTally = () =>
    tally({ selected: 5, dualStack: 4, ipv4Only: 1, atTarget: 4, skipped: 1, skippedByReason: { ExternalName: 1 } });

  it("done: Ready True, Reconciling False, Stalled False, phase the target, progress N/M", () => {
    const p = plan("shop", { targetPhase: "DualStack" }, { generation: 4 });
    const status = computeStatus(input(p, doneTally()));
    assert.equal(status.observedGeneration, 4);
    assert.equal(status.phase, "DualStack");
    assert.equal(status.progress, "5/5");
    assert.deepEqual(condition(status, CONDITIONS.ready), {
      type: "Ready",
      status: "True",
      reason: "AtTarget",
      message: "5/5 at target (1 skipped, 0 blocked, 0 failed, 0 drifted)",
      observedGeneration: 4,
      lastTransitionTime: T1,
    });
    assert.equal(statusOf(status, CONDITIONS.reconciling), "False");
    assert.equal(condition(status, CONDITIONS.reconciling).reason, "AtTarget");
    assert.equal(statusOf(status, CONDITIONS.stalled), "False");
    assert.equal(condition(status, CONDITIONS.stalled).reason, "NotStalled");
    assert.equal(statusOf(status, CONDITIONS.audited), "True");
    assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "True");
    assert.equal(statusOf(status, CONDITIONS.ipv6OnlyComplete), "False");
    assert.equal(condition(status, CONDITIONS.ipv6OnlyComplete).reason, "NotTargeted");
    assert.equal(statusOf(status, CONDITIONS.clusterDualStackCapable), "True");
    assert.equal(condition(status, CONDITIONS.clusterDualStackCapable).reason, "IPv6RangeFound");
    assert.deepEqual(status.summary, {
      selected: 5,
      ipv4Only: 1,
      dualStack: 4,
      ipv6Only: 0,
      atTarget: 4,
      skipped: 1,
      skippedByReason: { ExternalName: 1 },
      blocked: 0,
      failed: 0,
      drifted: 0,
    });
    assert.deepEqual(status.problems, []);
    assert.equal("problemsTruncated" in status, false);
    assert.equal("currentBatch" in status, false);
  });

  it("every condition carries observedGeneration = metadata.generation", () => {
    const old: Condition[] = [
      {
        type: "Ready",
        status: "False",
        reason: "Progressing",
        message: "",
        observedGeneration: 6,
        lastTransitionTime: T0,
      },
      {
        type: "Audited",
        status: "True",
        reason: "Classified",
        message: "",
        observedGeneration: 6,
        lastTransitionTime: T0,
      },
    ];
    const p = plan("shop", { targetPhase: "IPv6Only" }, { generation: 7 });
    p.status = { conditions: old };
    for (const t of [doneTally(), tally({ selected: 3, pending: 2 })]) {
      const status = computeStatus(input(p, t));
      assert.deepEqual(status.conditions?.map((c) => c.type).sort(), [
        "Audited",
        "ClusterDualStackCapable",
        "DualStackComplete",
        "IPv6OnlyComplete",
        "Ready",
        "Reconciling",
        "Stalled",
      ]);
      for (const c of status.conditions ?? []) assert.equal(c.observedGeneration, 7, c.type);
    }
  });

  it("Audit done is phase Audited", () => {
    const status = computeStatus(input(plan("shop"), doneTally()));
    assert.equal(status.phase, "Audited");
    assert.equal(statusOf(status, CONDITIONS.ready), "True");
    assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "False");
    assert.equal(condition(status, CONDITIONS.dualStackComplete).reason, "NotTargeted");
    assert.equal(condition(status, CONDITIONS.dualStackComplete).message, "targetPhase is Audit");
  });

  for (const [target, phase] of [
    ["DualStack", "MigratingToDualStack"],
    ["IPv6Only", "MigratingToIPv6Only"],
    ["Audit", "RollingBack"],
  ] as const) {
    it(`pending (${target}): Reconciling True, Ready False, phase ${phase}`, () => {
      const t = tally({ selected: 10, atTarget: 3, pending: 7 });
      const status = computeStatus(input(plan("shop", { targetPhase: target }, { generation: 2 }), t));
      assert.equal(status.phase, phase);
      assert.equal(status.progress, "3/10");
      assert.deepEqual(condition(status, CONDITIONS.reconciling), {
        type: "Reconciling",
        status: "True",
        reason: "Progressing",
        message: "3/10 at target (0 skipped, 0 blocked, 0 failed, 0 drifted)",
        observedGeneration: 2,
        lastTransitionTime: T1,
      });
      assert.equal(statusOf(status, CONDITIONS.ready), "False");
      assert.equal(condition(status, CONDITIONS.ready).reason, "Progressing");
      assert.equal(statusOf(status, CONDITIONS.stalled), "False");
      assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "False");
      assert.equal(statusOf(status, CONDITIONS.ipv6OnlyComplete), "False");
    });
  }

  it("IPv6Only in progress: DualStackComplete and IPv6OnlyComplete say InProgress", () => {
    const status = computeStatus(input(plan("shop", { targetPhase: "IPv6Only" }), tally({ selected: 2, pending: 1 })));
    assert.equal(condition(status, CONDITIONS.dualStackComplete).reason, "InProgress");
    assert.equal(condition(status, CONDITIONS.ipv6OnlyComplete).reason, "InProgress");
  });

  it("IPv6Only done: both completion conditions True", () => {
    const status = computeStatus(input(plan("shop", { targetPhase: "IPv6Only" }), doneTally()));
    assert.equal(status.phase, "IPv6Only");
    assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "True");
    assert.equal(statusOf(status, CONDITIONS.ipv6OnlyComplete), "True");
    assert.equal(condition(status, CONDITIONS.ipv6OnlyComplete).reason, "Complete");
  });

  it("nothing pending but Services blocked: phase Blocked, Reconciling True, Ready False", () => {
    const t = tally({ selected: 3, atTarget: 2, blocked: 1 });
    const status = computeStatus(input(plan("shop", { targetPhase: "IPv6Only" }), t));
    assert.equal(status.phase, "Blocked");
    assert.equal(statusOf(status, CONDITIONS.reconciling), "True");
    assert.equal(condition(status, CONDITIONS.reconciling).reason, "ServicesBlocked");
    assert.equal(statusOf(status, CONDITIONS.ready), "False");
    assert.equal(statusOf(status, CONDITIONS.ipv6OnlyComplete), "False", "a blocked Service has not moved");
    assert.equal(condition(status, CONDITIONS.ipv6OnlyComplete).reason, "InProgress");
    assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "True", "it is dual-stack already");
  });

  it("failed or drifted Services keep Ready False with ServicesNeedAttention", () => {
    for (const extra of [{ failed: 1 }, { drifted: 2 }]) {
      const status = computeStatus(input(plan("shop", { targetPhase: "DualStack" }), tally({ selected: 3, ...extra })));
      assert.equal(statusOf(status, CONDITIONS.ready), "False");
      assert.equal(condition(status, CONDITIONS.ready).reason, "ServicesNeedAttention");
      assert.equal(status.phase, "Blocked");
    }
  });

  it("Stalled True means Ready False, Reconciling False and phase Stalled, even when nothing is pending", () => {
    const stalled = { reason: "NoIPv6ServiceRange", message: "no IPv6 range; no Service was changed" };
    const status = computeStatus(
      input(plan("shop", { targetPhase: "DualStack" }, { generation: 3 }), doneTally(), {
        stalled,
        clusterDualStackCapable: { status: false, message: "no IPv6 range" },
      }),
    );
    assert.equal(status.phase, "Stalled");
    assert.deepEqual(condition(status, CONDITIONS.stalled), {
      type: "Stalled",
      status: "True",
      reason: "NoIPv6ServiceRange",
      message: stalled.message,
      observedGeneration: 3,
      lastTransitionTime: T1,
    });
    assert.equal(statusOf(status, CONDITIONS.ready), "False");
    assert.equal(condition(status, CONDITIONS.ready).reason, "NoIPv6ServiceRange");
    assert.equal(statusOf(status, CONDITIONS.reconciling), "False");
    assert.equal(statusOf(status, CONDITIONS.dualStackComplete), "False");
    assert.equal(statusOf(status, CONDITIONS.clusterDualStackCapable), "False");
    assert.equal(condition(status, CONDITIONS.clusterDualStackCapable).reason, "NoIPv6ServiceRange");
  });

  it("suspended: phase Suspended, Reconciling False; Ready only when done", () => {
    const p = plan("shop", { targetPhase: "DualStack", suspend: true });
    const pending = computeStatus(input(p, tally({ selected: 2, pending: 2 })));
    assert.equal(pending.phase, "Suspended");
    assert.equal(statusOf(pending, CONDITIONS.reconciling), "False");
    assert.equal(condition(pending, CONDITIONS.reconciling).reason, "Suspended");
    assert.equal(statusOf(pending, CONDITIONS.ready), "False");
    const done = computeStatus(input(p, doneTally()));
    assert.equal(done.phase, "Suspended");
    assert.equal(statusOf(done, CONDITIONS.ready), "True");
  });

  it("leaves out ClusterDualStackCapable when its status is unknown", () => {
    const status = computeStatus(
      input(plan("shop"), doneTally(), { clusterDualStackCapable: { status: undefined, message: "" } }),
    );
    assert.equal(
      status.conditions?.some((c) => c.type === CONDITIONS.clusterDualStackCapable),
      false,
    );
  });

  it("lastTransitionTime moves only for a condition whose status changed", () => {
    const p = plan("shop", { targetPhase: "DualStack" }, { generation: 2 });
    p.status = {
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "AtTarget",
          message: "old",
          observedGeneration: 1,
          lastTransitionTime: T0,
        },
        {
          type: "Reconciling",
          status: "False",
          reason: "AtTarget",
          message: "old",
          observedGeneration: 1,
          lastTransitionTime: T0,
        },
        {
          type: "Stalled",
          status: "False",
          reason: "NotStalled",
          message: "",
          observedGeneration: 1,
          lastTransitionTime: T0,
        },
      ],
    };
    const same = computeStatus(input(p, doneTally()));
    assert.equal(condition(same, CONDITIONS.ready).lastTransitionTime, T0);
    assert.equal(
      condition(same, CONDITIONS.ready).message,
      "5/5 at target (1 skipped, 0 blocked, 0 failed, 0 drifted)",
    );
    assert.equal(condition(same, CONDITIONS.ready).observedGeneration, 2);
    assert.equal(condition(same, CONDITIONS.reconciling).lastTransitionTime, T0);
    assert.equal(condition(same, CONDITIONS.stalled).lastTransitionTime, T0);
    assert.equal(condition(same, CONDITIONS.audited).lastTransitionTime, T1, "a new condition gets now");

    const changed = computeStatus(input(p, tally({ selected: 5, pending: 1 })));
    assert.equal(condition(changed, CONDITIONS.ready).lastTransitionTime, T1);
    assert.equal(condition(changed, CONDITIONS.reconciling).lastTransitionTime, T1);
    assert.equal(condition(changed, CONDITIONS.stalled).lastTransitionTime, T0);
  });

  it("does not modify the plan's existing status", () => {
    const p = plan("shop", { targetPhase: "DualStack" });
    p.status = {
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "AtTarget",
          message: "",
          observedGeneration: 1,
          lastTransitionTime: T0,
        },
      ],
    };
    const before = structuredClone(p.status);
    computeStatus(input(p, tally({ selected: 1, pending: 1 })));
    assert.deepEqual(p.status, before);
  });

  function problems(n: number): ServiceProblem[] {
    return Array.from({ length: n }, (_, i) => ({
      namespace: i % 2 === 0 ? "b-ns" : "a-ns",
      name: `svc-${String(i).padStart(2, "0")}`,
      state: "Blocked" as const,
      reason: "WaitingForIPv6Endpoints",
      message: "waiting",
    })).reverse();
  }

  it(`problems are sorted by namespace/name and bounded to ${MAX_PROBLEMS}, counting the rest`, () => {
    const list = problems(60);
    const status = computeStatus(
      input(plan("shop", { targetPhase: "IPv6Only" }), tally({ selected: 60, blocked: 60, problems: list })),
    );
    assert.equal(MAX_PROBLEMS, 50);
    assert.equal(status.problems?.length, 50);
    assert.equal(status.problemsTruncated, 10);
    const keys = status.problems?.map((x) => `${x.namespace}/${x.name}`) ?? [];
    assert.equal(keys[0], "a-ns/svc-01");
    assert.equal(keys[29], "a-ns/svc-59");
    assert.equal(keys[30], "b-ns/svc-00");
    assert.equal(keys[49], "b-ns/svc-38");
    assert.deepEqual(keys, [...keys].sort());
    assert.equal(list[0]?.name, "svc-59", "the tally's list is not sorted in place");
  });

  it(`exactly ${MAX_PROBLEMS} problems are all listed, with no problemsTruncated`, () => {
    const status = computeStatus(input(plan("shop"), tally({ selected: 50, blocked: 50, problems: problems(50) })));
    assert.equal(status.problems?.length, 50);
    assert.equal("problemsTruncated" in status, false);
  });

  it("carries the current batch when given", () => {
    const batch = { number: 3, size: 10, startedAt: T0, finishedAt: T1 };
    const status = computeStatus(input(plan("shop"), doneTally(), { batch }));
    assert.deepEqual(status.currentBatch, batch);
  });
});

describe("migration/plan: sameStatus and canonicalJSON", () => {
  it("canonicalJSON sorts object keys at every depth and keeps array order", () => {
    assert.equal(canonicalJSON({ b: 1, a: { d: [3, 1], c: null } }), '{"a":{"c":null,"d":[3,1]},"b":1}');
    assert.equal(canonicalJSON([{ y: 1, x: 2 }]), '[{"x":2,"y":1}]');
    assert.equal(canonicalJSON("s"), '"s"');
  });

  const status = (): MigrationPlanStatus => ({
    observedGeneration: 2,
    phase: "DualStack",
    progress: "1/1",
    summary: {
      selected: 1,
      ipv4Only: 0,
      dualStack: 1,
      ipv6Only: 0,
      atTarget: 1,
      skipped: 0,
      skippedByReason: {},
      blocked: 0,
      failed: 0,
      drifted: 0,
    },
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "AtTarget",
        message: "m",
        observedGeneration: 2,
        lastTransitionTime: "t",
      },
    ],
  });

  it("key order does not matter", () => {
    const a = status();
    const b: MigrationPlanStatus = {
      conditions: [
        {
          lastTransitionTime: "t",
          observedGeneration: 2,
          message: "m",
          reason: "AtTarget",
          status: "True",
          type: "Ready",
        },
      ],
      summary: {
        drifted: 0,
        failed: 0,
        blocked: 0,
        skippedByReason: {},
        skipped: 0,
        atTarget: 1,
        ipv6Only: 0,
        dualStack: 1,
        ipv4Only: 0,
        selected: 1,
      },
      progress: "1/1",
      phase: "DualStack",
      observedGeneration: 2,
    };
    assert.equal(sameStatus(a, b), true);
    assert.equal(canonicalJSON(a), canonicalJSON(b));
  });

  it("any change of content is a difference", () => {
    const changed = status();
    changed.conditions = [{ ...changed.conditions![0], lastTransitionTime: "t2" }];
    assert.equal(sameStatus(status(), changed), false);
    assert.equal(sameStatus(status(), { ...status(), progress: "0/1" }), false);
    assert.equal(sameStatus(status(), { ...status(), problemsTruncated: 1 }), false);
  });

  it("array order matters", () => {
    const a = status();
    const extra: Condition = { ...a.conditions![0], type: "Stalled", status: "False" };
    const b = { ...a, conditions: [...a.conditions!, extra] };
    const c = { ...a, conditions: [extra, ...a.conditions!] };
    assert.equal(sameStatus(b, c), false);
  });

  it("no status yet equals an empty status only", () => {
    assert.equal(sameStatus(undefined, {}), true);
    assert.equal(sameStatus(undefined, status()), false);
  });

  it("a computed status is the same as itself recomputed from it", () => {
    const p = plan("shop", { targetPhase: "DualStack" });
    const t: Tally = { ...emptyTally(), selected: 1, atTarget: 1 };
    const first = computeStatus({
      plan: p,
      tally: t,
      clusterDualStackCapable: { status: true, message: "x" },
      now: () => "t1",
    });
    p.status = JSON.parse(JSON.stringify(first)) as MigrationPlanStatus;
    const second = computeStatus({
      plan: p,
      tally: t,
      clusterDualStackCapable: { status: true, message: "x" },
      now: () => "t2",
    });
    assert.equal(sameStatus(p.status, second), true);
  });
});

describe("runtime/object: mergePatchTo, how a status is written", () => {
  it("a key gone from a map is sent as null, at any depth; arrays and values as they are", () => {
    const before = {
      phase: "Blocked",
      summary: { skipped: 2, skippedByReason: { ExternalName: 1, SelectorlessWithoutIPv6Endpoints: 1 } },
      problems: [{ name: "a" }],
      retryAt: "2026-01-01T00:00:00Z",
    };
    const after = { phase: "Audited", summary: { skipped: 1, skippedByReason: { ExternalName: 1 } }, problems: [] };
    assert.deepEqual(mergePatchTo(before, after), {
      phase: "Audited",
      summary: { skipped: 1, skippedByReason: { ExternalName: 1, SelectorlessWithoutIPv6Endpoints: null } },
      problems: [],
      retryAt: null,
    });
  });

  it("with nothing before, the patch is the new object", () => {
    const after = { phase: "Audited", summary: { skipped: 0 } };
    assert.deepEqual(mergePatchTo(undefined, after), after);
  });
});
