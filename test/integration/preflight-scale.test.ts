// Pods and ConfigMaps are scanned page by page and never cached: with 5,000 ConfigMaps and 2,000 Pods in the
// estate nothing of a scan outlives it. RSS is no measure of that (it moved by 80 MiB between runs of the same
// code on a busy machine, as malloc and V8 size their pools), so the test measures what a leak would change: the
// JavaScript heap after a full collection, and whether the operator survives under a heap cap a leak would blow.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { selectedService } from "../../src/migration/preflight.js";
import { type Service } from "../../src/migration/families.js";
import { scanWorkloads } from "../../src/reconciler/preflight.js";
import { buildCaches } from "../../src/reconciler/snapshot.js";
import { silentLogger } from "../../src/runtime/log.js";
import { SERVICES, core } from "../../src/runtime/client.js";
import { CONFIGMAPS_FOR_TESTS } from "../fixtures/resources.js";
import { createNamespace, createService, eventually, useControlPlane } from "../helpers.js";
import { OperatorProcess, createPlan, installCRD, shippedContainer } from "../operator.js";

const NS = "bulk";
const PODS = core("pods", "Pod");
const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };

async function createMany(count: number, make: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) await make(i);
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** A full, synchronous garbage collection (the flag can be set at run time; `gc` then appears in new contexts). */
function collect(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

describe("preflight at scale", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  before(async function () {
    this.timeout(600_000);
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    await createService(env.client, NS, {
      metadata: { name: "api" },
      spec: { selector: { app: "api" }, ports: [{ port: 80 }] },
    });
    const payload = "x".repeat(512);
    await createMany(5000, (i) =>
      env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: `cm-${i}` }, data: { config: payload } }),
    );
    await createMany(2000, (i) =>
      env.client.create(PODS, NS, {
        metadata: { name: `pod-${i}` },
        spec: { containers: [{ name: "app", image: "busybox", env: [{ name: "MODE", value: payload }] }] },
      }),
    );
  });

  it("a scan keeps nothing: the heap after a full GC is the same after 4 scans and after 16", async function () {
    this.timeout(300_000);
    const gc = collect();
    const svc = await env.client.get<Service>(SERVICES, NS, "api");
    const selected = [selectedService(svc, [])];
    const heapMiB: number[] = [];
    for (let scan = 1; scan <= 16; scan++) {
      const result = await scanWorkloads(env.client, selected);
      assert.equal(result.pods, 2000);
      assert.equal(result.configMaps, 5000);
      gc();
      heapMiB.push(Math.round((process.memoryUsage().heapUsed / 2 ** 20) * 10) / 10);
    }
    console.log(`      test-process heap after GC (MiB), scans 1-16: ${JSON.stringify(heapMiB)}`);
    // One scan reads about 5 MB of JSON, several times that as objects: keeping a scan would add megabytes each.
    const growth = (heapMiB.at(-1) ?? 0) - (heapMiB[3] ?? 0);
    assert.ok(growth < 3, `the heap grew ${growth.toFixed(1)} MiB from scan 4 to scan 16: ${JSON.stringify(heapMiB)}`);
  });

  it("the metadata-only caches of 5,000 ConfigMaps and 2,000 Pods cost little heap, and hold no contents", async function () {
    this.timeout(300_000);
    const gc = collect();
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    const caches = await buildCaches(env.client, silentLogger);
    const informers = [caches.podMetadata, caches.configMapMetadata];
    const before = heap();
    for (const informer of informers) informer.start();
    await Promise.all(informers.map((i) => i.waitForSync()));
    const after = heap();
    try {
      assert.ok(caches.podMetadata.store.list().length >= 2000);
      assert.ok(caches.configMapMetadata.store.list().length >= 5000);
      // Names and versions only: the contents (512 bytes each) stay on the server.
      assert.deepEqual(Object.keys(caches.configMapMetadata.store.get(`${NS}/cm-0`) ?? {}), ["metadata"]);
      const cost = Math.round((after - before) * 10) / 10;
      console.log(`      heap of the Pod and ConfigMap metadata caches (7,000 objects): ${cost} MiB`);
      // Full objects would be about 7,000 x 1 KiB of JSON, several times that as objects.
      assert.ok(cost < 8, `the metadata caches cost ${cost} MiB of heap`);
    } finally {
      await Promise.all(informers.map((i) => i.stop()));
    }
  });

  it("the operator scans 24 times under a 96 MiB heap cap and stays within its Deployment's memory limit", async function () {
    this.timeout(600_000);
    // As config/manager runs it, but with the old space capped at 96 MiB instead: a retained scan would exhaust
    // that within a few scans and V8 would abort the process.
    const shipped = shippedContainer();
    const nodeOptions = (shipped.env.NODE_OPTIONS ?? "").replace(/--max-old-space-size=\d+/, "--max-old-space-size=96");
    assert.match(nodeOptions, /--max-old-space-size=96/);
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name, { ...shipped.env, NODE_OPTIONS: nodeOptions }, [
      "--preflight-interval=2s",
      "--log-level=debug",
    ]).start();
    await createPlan(env.client, "bulk", { selector: { namespaces: [NS] } });
    const pid = operator.child?.pid ?? 0;
    const scans = () =>
      operator.output
        .split("\n")
        .filter((l) => l.includes('"message":"preflight scan"'))
        .map((l) => JSON.parse(l) as { pods: number; configMaps: number });
    const samples: { scan: number; rssMiB: number }[] = [];
    for (const target of [4, 8, 12, 16, 20, 24]) {
      await eventually(
        () => {
          assert.equal(operator.child?.exitCode, null, `the operator exited:\n${operator.output.slice(-2000)}`);
          return scans().length >= target ? true : undefined;
        },
        `scan ${target}`,
        120_000,
      );
      samples.push({ scan: target, rssMiB: Math.round(rssMiB(pid) * 10) / 10 });
    }
    const last = scans().at(-1);
    assert.equal(last?.pods, 2000);
    assert.equal(last?.configMaps, 5000);
    assert.equal(operator.child?.signalCode, null);
    console.log(
      `      operator RSS (MiB) after preflight scans of 2,000 Pods + 5,000 ConfigMaps: ${JSON.stringify(samples)}`,
    );
    // Flat after warm-up: without a --max-semi-space-size (the program's own since #14) V8 grew the young generation to 64 MiB
    // semi-spaces during scans and RSS climbed by about 90 MiB from scan 8 to scan 24.
    const warm = samples.find((x) => x.scan === 8)?.rssMiB ?? 0;
    const growth = Math.round(((samples.at(-1)?.rssMiB ?? 0) - warm) * 10) / 10;
    assert.ok(growth < 32, `RSS grew ${growth} MiB from scan 8 to scan 24`);
    const peak = Math.max(...samples.map((x) => x.rssMiB));
    assert.ok(peak < shipped.limitMiB / 2, `RSS reached ${peak} MiB, too close to the ${shipped.limitMiB} MiB limit`);
  });
});
