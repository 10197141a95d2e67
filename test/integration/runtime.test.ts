// The controller runtime on a real apiserver: dedupe under rapid updates, leader election across processes,
// readiness and metrics.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { KubeClient, LEASES } from "../../src/runtime/client.js";
import { Controller } from "../../src/runtime/controller.js";
import { Informer } from "../../src/runtime/informer.js";
import { Manager } from "../../src/runtime/manager.js";
import type { KubeObject } from "../../src/runtime/object.js";
import { CONFIGMAPS_FOR_TESTS } from "../fixtures/resources.js";
import { createNamespace, eventually, sleep, useControlPlane } from "../helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const RBAC_GROUP = "rbac.authorization.k8s.io";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

interface Lease extends KubeObject {
  spec: { holderIdentity?: string; acquireTime?: string; renewTime?: string; leaseDurationSeconds?: number };
}

describe("controller runtime", function () {
  const env = useControlPlane();

  before(async () => {
    await createNamespace(env.client, "rapid");
    await createNamespace(env.client, "le");
    await createNamespace(env.client, "ready");
  });

  it("1,000 rapid updates to one object cause far fewer reconciles, never two at once for the key", async () => {
    await env.client.create(CONFIGMAPS_FOR_TESTS, "rapid", { metadata: { name: "hot" }, data: { n: "0" } });
    const informer = new Informer<ConfigMap>(env.client, CONFIGMAPS_FOR_TESTS, { namespace: "rapid" });
    let reconciles = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let lastSeen = "";
    let finishUpdates!: () => void;
    const updatesSent = new Promise<void>((resolve) => (finishUpdates = resolve));
    const controller = new Controller({
      name: "rapid",
      workers: 4,
      reconciler: {
        async reconcile(key) {
          reconciles++;
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          lastSeen = informer.store.get(key)?.data?.n ?? "";
          // Held while the updates stream, so the outcome doesn't depend on how fast this machine is: every
          // update lands while the key is being processed, and must fold into one more reconcile after it.
          await updatesSent;
          inFlight--;
          return undefined;
        },
      },
    });
    controller.watch(informer);
    informer.start();
    await controller.start();
    await eventually(() => (inFlight === 1 ? true : undefined), "the first reconcile");
    for (let i = 1; i <= 1000; i++) {
      await env.client.patch(CONFIGMAPS_FOR_TESTS, "rapid", "hot", { data: { n: String(i) } }, "merge");
    }
    await eventually(() => (informer.store.get("rapid/hot")?.data?.n === "1000" ? true : undefined), "the cache");
    finishUpdates();
    await eventually(() => (lastSeen === "1000" && inFlight === 0 ? true : undefined), "the last update reconciled");
    await controller.shutdown();
    await informer.stop();
    assert.equal(maxInFlight, 1, "never two reconciles of one key at once, with 4 workers");
    // The first (held) reconcile, then one for all 1,000 updates that came in meanwhile.
    assert.equal(reconciles, 2, `expected 2 reconciles for 1,000 updates, got ${reconciles}`);
  });

  it("with two processes and leader election exactly one reconciles; after kill -9 the other takes over", async () => {
    const kubeconfig = env.cp.writeKubeconfig();
    const fixture = path.join(here, "../fixtures/counting-operator.js");
    const output: Record<string, string[]> = { a: [], b: [] };
    const procs: Record<string, ChildProcess> = {};
    for (const id of ["a", "b"]) {
      const child = spawn(process.execPath, [fixture, kubeconfig, "le", id], { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.setEncoding("utf8").on("data", (d: string) => output[id].push(...d.split("\n").filter(Boolean)));
      procs[id] = child;
    }
    try {
      const reconciledBy = (id: string, key: string) => output[id].some((l) => l.includes(`"reconciled":"${key}"`));
      await env.client.create(CONFIGMAPS_FOR_TESTS, "le", { metadata: { name: "one" } });
      await eventually(() => (reconciledBy("a", "le/one") || reconciledBy("b", "le/one") ? 1 : undefined), "a leader");
      const leader = reconciledBy("a", "le/one") ? "a" : "b";
      const standby = leader === "a" ? "b" : "a";
      for (let i = 0; i < 5; i++) {
        await env.client.create(CONFIGMAPS_FOR_TESTS, "le", { metadata: { name: `more-${i}` } });
      }
      await eventually(() => (reconciledBy(leader, "le/more-4") ? 1 : undefined), "the leader to reconcile");
      await sleep(500);
      assert.equal(output[standby].filter((l) => l.includes("reconciled")).length, 0, "the standby reconciled");

      const before = await env.client.get<Lease>(LEASES, "le", "counting-operator");
      assert.equal(before.spec.holderIdentity, leader);
      procs[leader]?.kill("SIGKILL");
      // Read after the kill: no renewal can follow, so this is the leader's last one.
      const killed = await env.client.get<Lease>(LEASES, "le", "counting-operator");
      assert.equal(killed.spec.holderIdentity, leader);
      const lastRenew = Date.parse(killed.spec.renewTime ?? "");
      const after = await eventually(async () => {
        const lease = await env.client.get<Lease>(LEASES, "le", "counting-operator");
        return lease.spec.holderIdentity === standby ? lease : undefined;
      }, "the standby to take the lease");
      // client-go's semantics bound the takeover: the standby times the lease from when it *saw* the last renewal
      // (its own clock, not the leader's renewTime), and polls every retryPeriod plus up to 1.2x jitter. So from
      // the last renewal: at most one jittered poll to see it, leaseDuration, one jittered poll to take it.
      const takeover = Date.parse(after.spec.acquireTime ?? "") - lastRenew;
      const bound = 15_000 + 2 * 2_000 * 2.2 + 1_000;
      assert.ok(takeover <= bound, `took over ${takeover} ms after the last renewal (bound ${bound} ms)`);
      assert.ok(
        takeover >= 15_000 - 1_000,
        `took over ${takeover} ms after the last renewal, before the lease expired`,
      );
      await env.client.create(CONFIGMAPS_FOR_TESTS, "le", { metadata: { name: "after-failover" } });
      await eventually(() => (reconciledBy(standby, "le/after-failover") ? 1 : undefined), "the new leader");
    } finally {
      for (const child of Object.values(procs)) child.kill("SIGKILL");
    }
  });

  it("/readyz turns ready only after the caches sync, and /metrics serves controller-runtime's names", async () => {
    const alice = env.cp.users[1];
    const client = new KubeClient(env.cp.kubeConfig(alice));
    const manager = new Manager({ client, metricsBindAddress: "127.0.0.1:0", healthProbeBindAddress: "127.0.0.1:0" });
    const informer = manager.addInformer(new Informer(client, CONFIGMAPS_FOR_TESTS, { namespace: "ready" }));
    const controller = new Controller({
      name: "ready",
      metrics: manager.metrics,
      reconciler: { reconcile: () => Promise.resolve(undefined) },
    });
    controller.watch(informer);
    manager.addController(controller);
    const running = manager.run([]);
    try {
      const health = await eventually(() => manager.addresses.health, "the health server");
      const get = async (url: string) => {
        const res = await fetch(url);
        return { status: res.status, body: await res.text() };
      };
      assert.equal((await get(`http://${health}/healthz`)).status, 200);
      // The user may not list ConfigMaps yet: the informer backs off on 403 (and keeps trying) and is not synced.
      await sleep(1500);
      assert.equal((await get(`http://${health}/readyz`)).status, 503);
      assert.ok(informer.stats.errors >= 1, "the informer saw the 403 and keeps trying");
      await env.client.create(
        { group: RBAC_GROUP, version: "v1", resource: "roles", kind: "Role", namespaced: true },
        "ready",
        {
          metadata: { name: "cm-reader" },
          rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list", "watch"] }],
        },
      );
      await env.client.create(
        { group: RBAC_GROUP, version: "v1", resource: "rolebindings", kind: "RoleBinding", namespaced: true },
        "ready",
        {
          metadata: { name: "cm-reader" },
          roleRef: { apiGroup: RBAC_GROUP, kind: "Role", name: "cm-reader" },
          subjects: [{ kind: "User", name: alice.name, apiGroup: RBAC_GROUP }],
        },
      );
      await eventually(async () => ((await get(`http://${health}/readyz`)).status === 200 ? 1 : undefined), "ready");
      await env.client.create(CONFIGMAPS_FOR_TESTS, "ready", { metadata: { name: "m" } });
      const metrics = await eventually(async () => {
        const body = (await get(`http://${manager.addresses.metrics}/metrics`)).body;
        return body.includes('controller_runtime_reconcile_total{controller="ready",result="success"}')
          ? body
          : undefined;
      }, "a counted reconcile");
      for (const name of [
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds",
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_queue_duration_seconds",
        "workqueue_work_duration_seconds",
        "workqueue_retries_total",
        "leader_election_master_status",
      ]) {
        assert.match(metrics, new RegExp(`^# TYPE ${name} `, "m"), name);
      }
    } finally {
      await manager.stop();
      await running;
    }
  });
});
