// A plan's life cycle on a real control plane: its finalizer, what deleting it does under each deletionPolicy,
// and a cutover interrupted while its plan was deleted, which the operator still finishes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  CUTOVER_ANNOTATION,
  MIGRATION_PLANS,
  OPERATOR_ANNOTATIONS,
  ORIGINAL_ANNOTATION,
  PLAN_FINALIZER,
  STATE_LABEL,
} from "../../src/api/migrationplan.js";
import type { Service } from "../../src/migration/families.js";
import { SERVICES, isNotFound, type KubeClient } from "../../src/runtime/client.js";
import { findCondition } from "../../src/runtime/object.js";
import { repoRoot, type ControlPlane } from "../../src/testenv/controlplane.js";
import {
  clusterIPService,
  createIPv6Slice,
  createNamespace,
  createService,
  eventually,
  useControlPlane,
} from "../helpers.js";
import { OperatorProcess, createPlan, getPlan, installCRD, kstatusOf, waitForCondition } from "../operator.js";

const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };

async function gone(client: KubeClient, name: string): Promise<true> {
  return eventually(async () => {
    try {
      await getPlan(client, name);
      return undefined;
    } catch (err) {
      if (isNotFound(err)) return true;
      throw err;
    }
  }, `plan ${name} to be gone`);
}

/** The command the README's Uninstall section gives for plans stuck on their finalizer. */
function readmeUninstallEscape(): string {
  const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Uninstall"));
  const command = /```sh\n(.*finalizers.*)\n```/.exec(section)?.[1];
  assert.ok(command, "README's Uninstall section shows the command");
  return command;
}

function runShell(command: string, cp: ControlPlane): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], {
      env: { ...process.env, KUBECONFIG: cp.kubeconfigPath, PATH: `${cp.bin}:${process.env.PATH ?? ""}` },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stderr }));
  });
}

function deletePlan(client: KubeClient, name: string): Promise<unknown> {
  return client.delete(MIGRATION_PLANS, undefined, name);
}

function service(client: KubeClient, ns: string, name: string): Promise<Service> {
  return client.get<Service>(SERVICES, ns, name);
}

describe("plan life cycle: deletion and orphaned cutovers", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess | undefined;

  before(async () => {
    await installCRD(env.cp);
  });

  afterEach(async () => {
    await operator?.stop("SIGKILL");
    operator = undefined;
  });

  it("a plan gets the finalizer; deleted with the default Orphan policy, its Services stay and keep their restore record", async () => {
    const ns = "orphan";
    await createNamespace(env.client, ns);
    for (const name of ["a", "b"]) await createService(env.client, ns, clusterIPService(name));
    await createPlan(env.client, "orphan", {
      targetPhase: "DualStack",
      selector: { namespaces: [ns] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    const ready = await waitForCondition(env.client, "orphan", "DualStackComplete");
    assert.deepEqual(ready.metadata.finalizers, [PLAN_FINALIZER]);

    const scans = () =>
      env.cp
        .auditEvents(OPERATOR_USER.name)
        .filter((e) => e.verb === "list" && ["pods", "configmaps"].includes(e.objectRef?.resource ?? "")).length;
    const scansBefore = scans();
    assert.ok(scansBefore > 0, "the rollout scanned Pods and ConfigMaps");
    await deletePlan(env.client, "orphan");
    await gone(env.client, "orphan");
    // Deleting sets a new generation, which would ask for a scan; a plan being deleted needs none.
    assert.equal(scans(), scansBefore, "no Pod or ConfigMap scan for a plan being deleted");
    for (const name of ["a", "b"]) {
      const svc = await service(env.client, ns, name);
      assert.deepEqual(svc.spec.ipFamilies, ["IPv4", "IPv6"], `${name} stays dual-stack`);
      assert.ok(svc.metadata.annotations?.[ORIGINAL_ANNOTATION], `${name} keeps its restore record`);
    }

    // A later plan at Audit can still undo everything.
    await createPlan(env.client, "undo", { targetPhase: "Audit", selector: { namespaces: [ns] } });
    await waitForCondition(env.client, "undo", "Ready");
    for (const name of ["a", "b"]) {
      const svc = await service(env.client, ns, name);
      assert.deepEqual(svc.spec.ipFamilies, ["IPv4"]);
      assert.equal(svc.spec.ipFamilyPolicy, "SingleStack");
      for (const key of OPERATOR_ANNOTATIONS) assert.equal(svc.metadata.annotations?.[key], undefined, key);
    }
    await deletePlan(env.client, "undo");
    await gone(env.client, "undo");
  });

  it("deleted with Rollback, the plan restores every Service first, saying so in its status, then goes", async () => {
    const ns = "rollback";
    await createNamespace(env.client, ns);
    const originals = new Map<string, Service>();
    for (const name of ["a", "b", "c"]) {
      originals.set(name, (await createService(env.client, ns, clusterIPService(name))) as Service);
    }
    await createPlan(env.client, "rollback", {
      targetPhase: "DualStack",
      deletionPolicy: "Rollback",
      selector: { namespaces: [ns] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    await waitForCondition(env.client, "rollback", "DualStackComplete");
    // One Service per batch and a long pause: the deletion is caught in the middle.
    await env.client.patch(
      MIGRATION_PLANS,
      undefined,
      "rollback",
      { spec: { rollout: { batchSize: 1, pauseBetweenBatches: "1h" } } },
      "merge",
    );
    await waitForCondition(env.client, "rollback", "DualStackComplete");
    await deletePlan(env.client, "rollback");
    const deleting = await eventually(async () => {
      const plan = await getPlan(env.client, "rollback");
      return plan.status?.phase === "Deleting" ? plan : undefined;
    }, "the plan to say it is deleting");
    const reconciling = findCondition(deleting.status?.conditions, "Reconciling");
    assert.equal(reconciling?.status, "True");
    assert.equal(reconciling?.reason, "Deleting");
    assert.match(reconciling?.message ?? "", /deletionPolicy is Rollback/);
    assert.equal(findCondition(deleting.status?.conditions, "Ready")?.status, "False");
    const kstatus = await kstatusOf(deleting);
    // kstatus's own word for an object on its way out; Flux and kubectl's status waiters treat it as in progress.
    assert.equal(kstatus.status, "Terminating", JSON.stringify(kstatus));

    // The spec can still change while the plan is deleted: without the pause the rollback finishes.
    await env.client.patch(
      MIGRATION_PLANS,
      undefined,
      "rollback",
      { spec: { rollout: { pauseBetweenBatches: "0s" } } },
      "merge",
    );
    await gone(env.client, "rollback");
    for (const [name, before] of originals) {
      const svc = await service(env.client, ns, name);
      assert.deepEqual(svc.spec.ipFamilies, ["IPv4"], name);
      assert.deepEqual(svc.spec.clusterIPs, before.spec?.clusterIPs, `${name} keeps its ClusterIP`);
      assert.equal(svc.metadata.labels?.[STATE_LABEL], undefined);
      for (const key of OPERATOR_ANNOTATIONS) assert.equal(svc.metadata.annotations?.[key], undefined, key);
    }
  });

  for (const how of ["deleted (finalizer held)", "deleted and its finalizer removed by hand"] as const) {
    it(`a cutover interrupted, its plan ${how} while the operator was down: the restarted operator finishes it`, async () => {
      const ns = how.includes("by hand") ? "cut-forced" : "cut-deleted";
      const plan = ns;
      await createNamespace(env.client, ns);
      const created = (await createService(env.client, ns, {
        metadata: { name: "crash" },
        spec: { type: "NodePort", selector: { app: "crash" }, ports: [{ port: 80, targetPort: 80 }] },
      })) as Service;
      const nodePort = created.spec.ports?.[0]?.nodePort;
      await createIPv6Slice(env.client, ns, "crash", "fd00:1::9");
      await createPlan(env.client, plan, { targetPhase: "IPv6Only", selector: { namespaces: [ns] } });
      const first = new OperatorProcess(env.cp, OPERATOR_USER.name).start({ killAfter: "externalname" });
      assert.equal(await first.exit, -1, "killed itself between the two writes of the cutover");
      const mid = await service(env.client, ns, "crash");
      assert.equal(mid.spec.type, "ExternalName");
      assert.ok(mid.metadata.annotations?.[CUTOVER_ANNOTATION]);

      await deletePlan(env.client, plan);
      if (how.includes("by hand")) {
        // The README's way out of a plan stuck on its finalizer, run as written there.
        const result = await runShell(readmeUninstallEscape(), env.cp);
        assert.equal(result.code, 0, result.stderr);
        await gone(env.client, plan);
      } else {
        assert.ok((await getPlan(env.client, plan)).metadata.deletionTimestamp, "held by its finalizer");
      }

      operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
      const done = await eventually(async () => {
        const svc = await service(env.client, ns, "crash");
        return svc.spec.type === "NodePort" ? svc : undefined;
      }, "the cutover to be finished");
      assert.deepEqual(done.spec.ipFamilies, ["IPv6"]);
      assert.equal(done.spec.ports?.[0]?.nodePort, nodePort, "the nodePort is kept");
      assert.equal(done.metadata.uid, created.metadata.uid);
      assert.equal(done.metadata.annotations?.[CUTOVER_ANNOTATION], undefined);
      await gone(env.client, plan);
    });
  }
});
