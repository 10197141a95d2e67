// What Flux (kstatus) and Argo CD (config/argocd/health.lua) make of the MigrationPlan status the real operator
// writes: each object is fetched from the API server and handed to the tools' own code, built by testenv/build.sh
// (kstatus-check runs sigs.k8s.io/cli-utils' status.Compute, lua-health runs the script in Argo CD's gopher-lua).
import assert from "node:assert/strict";
import path from "node:path";
import { MIGRATION_PLANS, type MigrationPlan } from "../../src/api/migrationplan.js";
import { findCondition } from "../../src/runtime/object.js";
import { repoRoot } from "../../src/testenv/controlplane.js";
import { clusterIPService, createNamespace, createService, eventually, useControlPlane } from "../helpers.js";
import {
  OperatorProcess,
  createPlan,
  getPlan,
  installCRD,
  toolHelpers,
  verdict,
  waitForCondition,
} from "../operator.js";

const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };
const HEALTH_LUA = path.join(repoRoot, "config/argocd/health.lua");

describe("kstatus and Argo CD health on a dual-stack cluster", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;
  let tools: { kstatus: string; luaHealth: string };
  const kstatus = (plan: MigrationPlan) => verdict(tools.kstatus, [], plan);
  const argo = (plan: MigrationPlan) => verdict(tools.luaHealth, ["-eval", HEALTH_LUA], plan);

  before(async function () {
    this.timeout(600_000); // a cold cache builds the helpers first
    tools = await toolHelpers();
    await installCRD(env.cp);
    for (const [ns, names] of [
      ["finished", ["f1"]],
      ["rolling", ["r1", "r2", "r3"]],
      ["paused", ["p1"]],
    ] as const) {
      await createNamespace(env.client, ns);
      for (const name of names) await createService(env.client, ns, clusterIPService(name));
    }
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  /** A plan over the namespace of its own name. */
  const planOverNamespace = (name: string, spec: Record<string, unknown>) =>
    createPlan(env.client, name, { selector: { namespaces: [name] }, ...spec });

  it("a finished plan is Current for kstatus and Healthy for Argo CD", async () => {
    await planOverNamespace("finished", { rollout: { batchSize: "100%", pauseBetweenBatches: "0s" } });
    const plan = await waitForCondition(env.client, "finished", "Ready");
    assert.deepEqual(await kstatus(plan), { status: "Current", message: "Resource is Ready" });
    const ready = findCondition(plan.status?.conditions, "Ready");
    assert.deepEqual(await argo(plan), { status: "Healthy", message: ready?.message });
  });

  it("a plan between batches is InProgress for kstatus and Progressing for Argo CD", async () => {
    // One Service per batch and an hour between batches: the plan stays mid-rollout for the whole test.
    await planOverNamespace("rolling", {
      targetPhase: "DualStack",
      rollout: { batchSize: 1, pauseBetweenBatches: "1h" },
    });
    const plan = await waitForCondition(env.client, "rolling", "Reconciling");
    const reconciling = findCondition(plan.status?.conditions, "Reconciling");
    assert.match(reconciling?.message ?? "", /^\d\/3 at target/);
    assert.deepEqual(await kstatus(plan), { status: "InProgress", message: reconciling?.message });
    assert.deepEqual(await argo(plan), { status: "Progressing", message: reconciling?.message });
  });

  it("a suspended plan short of its target is Suspended for Argo CD; kstatus, which has no suspend, says InProgress", async () => {
    await planOverNamespace("paused", { targetPhase: "DualStack", suspend: true });
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, "paused");
      return p.status?.observedGeneration === p.metadata.generation && p.status?.phase === "Suspended" ? p : undefined;
    }, "phase Suspended");
    const ready = findCondition(plan.status?.conditions, "Ready");
    assert.equal(ready?.status, "False");
    // Flux would wait on it until its timeout: a suspended plan is not done, and kstatus cannot tell it is paused.
    assert.deepEqual(await kstatus(plan), { status: "InProgress", message: ready?.message });
    assert.deepEqual(await argo(plan), { status: "Suspended", message: `spec.suspend is true: ${ready?.message}` });
  });

  it("a spec change is InProgress until the operator has observed it, despite the old Ready=True", async () => {
    // With the operator stopped nothing can catch up, so the window before observedGeneration moves is held open.
    await operator.stop("SIGTERM");
    await env.client.patch(MIGRATION_PLANS, undefined, "finished", { spec: { rollout: { maxFailures: 3 } } }, "merge");
    const changed = await getPlan(env.client, "finished");
    const generation = changed.metadata.generation ?? 0;
    assert.equal(changed.status?.observedGeneration, generation - 1);
    assert.equal(findCondition(changed.status?.conditions, "Ready")?.status, "True", "the Ready of the old spec");
    assert.deepEqual(await kstatus(changed), {
      status: "InProgress",
      message: `MigrationPlan generation is ${generation}, but latest observed generation is ${generation - 1}`,
    });
    assert.deepEqual(await argo(changed), {
      status: "Progressing",
      message: `Waiting for the controller to observe generation ${generation}`,
    });

    // A plan the operator has never seen: the CRD defaults status.observedGeneration to -1, so Flux waits for it
    // instead of reading "no status" as Current.
    await planOverNamespace("unseen", { targetPhase: "DualStack" });
    const unseen = await getPlan(env.client, "unseen");
    assert.equal(unseen.status?.observedGeneration, -1);
    assert.equal((await kstatus(unseen)).status, "InProgress");
    assert.equal((await argo(unseen)).status, "Progressing");

    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    const caughtUp = await waitForCondition(env.client, "finished", "Ready");
    assert.equal((await kstatus(caughtUp)).status, "Current");
    assert.equal((await argo(caughtUp)).status, "Healthy");
  });
});

describe("kstatus and Argo CD health on an IPv4-only cluster", function () {
  const env = useControlPlane({ families: "ipv4", users: [OPERATOR_USER] });
  let operator: OperatorProcess;
  let tools: { kstatus: string; luaHealth: string };

  before(async function () {
    this.timeout(600_000);
    tools = await toolHelpers();
    await installCRD(env.cp);
    await createNamespace(env.client, "v4");
    await createService(env.client, "v4", clusterIPService("web"));
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("a Stalled plan is Failed for kstatus and Degraded for Argo CD, with the Stalled message", async () => {
    await createPlan(env.client, "v4", { targetPhase: "DualStack", selector: { namespaces: ["v4"] } });
    const plan = await waitForCondition(env.client, "v4", "Stalled");
    const stalled = findCondition(plan.status?.conditions, "Stalled");
    assert.match(stalled?.message ?? "", /no IPv6 range/);
    assert.deepEqual(await verdict(tools.kstatus, [], plan), { status: "Failed", message: stalled?.message });
    assert.deepEqual(await verdict(tools.luaHealth, ["-eval", HEALTH_LUA], plan), {
      status: "Degraded",
      message: stalled?.message,
    });
  });
});
