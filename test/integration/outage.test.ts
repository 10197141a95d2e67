// A 60 s kube-apiserver outage in the middle of a rollout: the operator keeps running, and the rollout resumes as
// soon as the server answers again, rather than after the backoffs that grew while nothing could succeed. The delay
// is reported (docs/reliability.md), never asserted: these machines are shared.
import assert from "node:assert/strict";
import { SERVICES } from "../../src/runtime/client.js";
import type { Service } from "../../src/migration/families.js";
import { changedState } from "../../src/testenv/controlplane.js";
import { clusterIPService, createNamespace, createService, sleep, useControlPlane, eventually } from "../helpers.js";
import { OperatorProcess, createPlan, getPlan, installCRD, waitForCondition } from "../operator.js";

const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };
const NS = "outage";
const OUTAGE_MS = 60_000;

describe("a 60 s API server outage mid-rollout", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess | undefined;

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("the same operator process finishes the rollout, resuming when the server answers again", async function () {
    this.timeout(OUTAGE_MS + 300_000);
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    for (let i = 0; i < 30; i++)
      await createService(env.client, NS, clusterIPService(`svc-${String(i).padStart(2, "0")}`));
    await createPlan(env.client, "outage", {
      targetPhase: "DualStack",
      selector: { namespaces: [NS] },
      rollout: { batchSize: 5, pauseBetweenBatches: "3s" },
    });
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    const dualStack = async () =>
      (await env.client.list<Service>(SERVICES, NS)).items.filter((s) => s.spec.ipFamilies?.length === 2).length;
    await eventually(async () => ((await dualStack()) >= 5 ? true : undefined), "the first batch");
    const before = await dualStack();
    assert.ok(before < 30, "the rollout is still under way when the server goes");

    await env.cp.stopAPIServer();
    await sleep(OUTAGE_MS);
    await env.cp.startAPIServer();
    const back = Date.now();

    try {
      await waitForCondition(env.client, "outage", "DualStackComplete", "True", 240_000);
    } catch (err) {
      const plan = await getPlan(env.client, "outage");
      throw new Error(
        `${(err as Error).message}\nstatus: ${JSON.stringify(plan.status)}\noperator:\n${operator.output.slice(-8000)}`,
        { cause: err },
      );
    }
    const firstMove = env.cp
      .auditEvents(OPERATOR_USER.name)
      .filter((e) => changedState(e, "services") && Date.parse(e.requestReceivedTimestamp ?? "") >= back)
      .map((e) => Date.parse(e.requestReceivedTimestamp ?? ""))
      .sort((a, b) => a - b)[0];
    assert.ok(firstMove !== undefined, "a Service moved after the outage");
    assert.equal(operator.child?.exitCode, null, "the same process, never restarted");
    assert.match(operator.output, /the API server answers: retrying/);
    console.log(
      `      ${before} of 30 Services had moved; first Service write ${((firstMove - back) / 1000).toFixed(1)} s after the API server was ready again (outage ${OUTAGE_MS / 1000} s)`,
    );
  });
});
