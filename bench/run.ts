// `make bench`: the operator, through its real entry point, against a floor measured in the same run on the same
// local control plane. Writes bench/results.json, bench/README.md and bench/audit-scaling.svg.
//
// Every timing is taken 3 times (BENCH_REPS) and reported as the median: the machine is shared and noisy; the
// rollouts beyond the first size, each minutes long, once (BENCH_LARGE_REPS).
// Knobs for a quick look: BENCH_SIZES=1000,5000 BENCH_REPS=1 BENCH_STEADY_S=10 BENCH_ROLLOUT=200,500
// BENCH_SWEEP=4,8 (and BENCH_STEADY_REPS, how many rollout runs end with a steady-state window; 1 by default).
// `node dist/bench/run.js --report` rewrites README.md and the chart from results.json without running anything.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { MIGRATION_PLANS, type MigrationPlan } from "../src/api/migrationplan.js";
import { DEFAULT_WRITE_CONCURRENCY } from "../src/reconciler/migrationplan.js";
import { KubeClient, SERVICES, resourcePath } from "../src/runtime/client.js";
import { type Service } from "../src/migration/families.js";
import { repoRoot, startControlPlane, toolsDir, type ControlPlane } from "../src/testenv/controlplane.js";
import { installCRD } from "../test/operator.js";
import {
  Child,
  LIST_BASELINE,
  OperatorChild,
  PlanWatcher,
  type OperatorEnv,
  RawClient,
  apiserverRequests,
  auditWrites,
  conditionMet,
  controlPlanePids,
  cpuMs,
  createNamespaces,
  createServices,
  deletePlan,
  diffCounts,
  forEachConcurrently,
  median,
  metricValue,
  onlyWrites,
  planBody,
  round,
  rssBytes,
  sleep,
  total,
  totalCpuMs,
  type RequestCounts,
  type ServiceRef,
} from "./lib.js";
import { keepMarked } from "./dataplane-report.js";
import { maxPerSecond, renderReadme, renderSvg } from "./report.js";
import type { AuditPoint, Machine, PerService, Results, RolloutRep, RolloutSize } from "./results.js";

const SIZES = (process.env.BENCH_SIZES ?? "1000,10000,20000").split(",").map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const STEADY_S = Number(process.env.BENCH_STEADY_S ?? 60);
/** A steady window is a wait, not a timing: one is enough to count writes, and the others would only cost time. */
const STEADY_REPS = Number(process.env.BENCH_STEADY_REPS ?? 1);
/** The floor through KubeClient is a diagnosis of the client, not a ratio: one run shows it. */
const KUBECLIENT_REPS = Number(process.env.BENCH_KUBECLIENT_REPS ?? 1);
/** Rollout sizes: the first is run REPS times, the others LARGE_REPS times. */
const ROLLOUT_SIZES = (process.env.BENCH_ROLLOUT ?? "1000,3000,10000").split(",").map(Number);
const LARGE_REPS = Number(process.env.BENCH_LARGE_REPS ?? 1);
/** Numbers of raw PATCHes in flight tried against a fresh cluster of SWEEP_N Services each. */
const SWEEP = (process.env.BENCH_SWEEP ?? "2,4,8,16,32").split(",").filter(Boolean).map(Number);
const SWEEP_N = Number(process.env.BENCH_SWEEP_N ?? 500);
const NAMESPACES = 50;
/** The operator's default write concurrency (--write-concurrency), given to the floor too. */
const OPERATOR_CONCURRENCY = DEFAULT_WRITE_CONCURRENCY;
/** Memory is read this long after Audited (operator) or HasSynced (client-go), the same for both. */
const SETTLE_MS = 3000;
const OPERATOR_USER = "operator";
const BENCH_DIR = path.join(repoRoot, "bench");
/** Its data-plane section is bench/dataplane.ts's, and kept as it is. */
const README = path.join(BENCH_DIR, "README.md");

const started = performance.now();
function log(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${message}\n`);
}

const nsNames = (prefix: string) =>
  Array.from({ length: NAMESPACES }, (_, i) => `${prefix}-${String(i).padStart(2, "0")}`);

interface Env {
  cp: ControlPlane;
  client: KubeClient;
  raw: RawClient;
  kubeconfig: string;
}

async function newControlPlane(crd = true): Promise<Env> {
  const cp = await startControlPlane({
    families: "dual",
    users: [{ name: OPERATOR_USER, groups: ["system:masters"] }],
  });
  if (crd) await installCRD(cp);
  const client = new KubeClient(cp.kubeConfig(), "ipv6-migration-bench");
  const raw = new RawClient(cp.kubeConfig());
  // Every process under test (operator and floors) authenticates the same way, as the same user.
  return { cp, client, raw, kubeconfig: cp.writeKubeconfig(cp.user(OPERATOR_USER)) };
}

async function stopControlPlane(env: Env): Promise<void> {
  await env.raw.close();
  await env.cp.stop();
}

async function machine(cp: ControlPlane, goFromTool: string): Promise<Machine> {
  const version = JSON.parse((await cp.get("/version")).body) as { gitVersion?: string };
  const etcd = (await (await fetch(`${cp.etcdURL}/version`)).json()) as { etcdserver?: string };
  let go = goFromTool;
  try {
    go = (await promisify(execFile)("go", ["env", "GOVERSION"])).stdout.trim() || go;
  } catch {
    // go is needed only to build the testenv; the helper reports the version that built it
  }
  const pkg = (file: string) => (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  const goMod = readFileSync(path.join(repoRoot, "testenv/kube/go.mod"), "utf8");
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "",
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    go,
    kubernetes: version.gitVersion ?? "",
    etcd: etcd.etcdserver ?? "",
    clientNode: pkg(path.join(repoRoot, "node_modules/@kubernetes/client-node/package.json")),
    clientGo: /k8s\.io\/client-go (v\S+)/.exec(goMod)?.[1] ?? "",
  };
}

/** A Node process that loads nothing: the part of any Node program's RSS that is Node's own. */
async function bareNodeRss(): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    "-e",
    "process.stdout.write(String(process.memoryUsage().rss))",
  ]);
  return Number(stdout);
}

interface InformerReport {
  services: number;
  rssBytes: number;
  heapInuseBytes: number;
  liveHeapBytes: number;
  goVersion: string;
}

/** Time from spawn to the first log line with `message`, from the operator's JSON log. */
function logLineMs(logName: string, spawnedAtWall: number, message: string): number {
  const text = readFileSync(path.join(BENCH_DIR, "out", logName), "utf8");
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { timestamp?: string; message?: string };
    if (entry.message === message && entry.timestamp) return Date.parse(entry.timestamp) - spawnedAtWall;
  }
  return NaN;
}

async function auditBench(
  tools: string,
): Promise<{ points: AuditPoint[]; creates: Results["audit"]["creates"]; machine: Machine }> {
  const env = await newControlPlane();
  const { cp, client, raw, kubeconfig } = env;
  try {
    const namespaces = nsNames("bench");
    await createNamespaces(raw, namespaces);
    const points: AuditPoint[] = [];
    const creates: Results["audit"]["creates"] = [];
    let created = 0;
    let goVersion = "";
    for (const n of SIZES) {
      const t = performance.now();
      await createServices(raw, namespaces, created, n);
      creates.push({ from: created, to: n, ms: performance.now() - t });
      log(`created Services ${created}..${n} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      created = n;
      const point: AuditPoint = {
        services: n,
        operatorMs: [],
        deploymentMs: [],
        deploymentRssBytes: [],
        deploymentHeapUsedBytes: [],
        operatorCachesSyncedMs: [],
        operatorScanDoneMs: [],
        baselineMs: [],
        baselineListMs: [],
        operatorCpuMs: [],
        baselineCpuMs: [],
        clientGoSyncMs: [],
        operatorMedianMs: 0,
        baselineMedianMs: 0,
        clientGoSyncMedianMs: 0,
        ratio: 0,
        operatorRssBytes: [],
        operatorHeapUsedBytes: [],
        clientGoRssBytes: [],
        clientGoHeapInuseBytes: [],
        clientGoLiveHeapBytes: [],
        nodeClientRssAfterImportBytes: [],
        baselineRssBytes: [],
      };

      const runOperator = async (rep: number, mode: OperatorEnv) => {
        // A new plan per run: a fresh operator must not find Audited already set by the one before.
        const name = `audit-${n}-${rep}-${mode}`;
        await client.create(MIGRATION_PLANS, undefined, planBody(name, namespaces));
        const watcher = await new PlanWatcher(client, name).start();
        const logName = `audit-${n}-${rep}-${mode}.log`;
        const wall = Date.now();
        const op = await OperatorChild.start(kubeconfig, logName, mode);
        try {
          const at = await watcher.until((p) => conditionMet(p, "Audited"), `${name} Audited`, 300_000);
          const selected = watcher.plan?.status?.summary?.selected;
          if (selected !== n) throw new Error(`plan ${name} selected ${selected}, not ${n}`);
          const cpu = cpuMs(op.pid);
          await sleep(SETTLE_MS);
          const rss = rssBytes(op.pid);
          const heap = metricValue(await op.metrics(), "nodejs_heap_size_used_bytes");
          if (mode === "shipped") {
            point.operatorMs.push(at - op.startedAt);
            point.operatorCpuMs.push(cpu);
            point.operatorRssBytes.push(rss);
            point.operatorHeapUsedBytes.push(heap);
          } else {
            point.deploymentMs.push(at - op.startedAt);
            point.deploymentRssBytes.push(rss);
            point.deploymentHeapUsedBytes.push(heap);
          }
        } finally {
          watcher.stop();
          await deletePlan(client, name).finally(() => op.stop());
        }
        if (mode === "shipped") {
          point.operatorCachesSyncedMs.push(logLineMs(logName, wall, "caches synced, starting workers"));
          point.operatorScanDoneMs.push(logLineMs(logName, wall, "preflight scan"));
        }
        log(`  audit N=${n} operator (${mode}) #${rep + 1}: ${Math.round(at(point, mode))} ms`);
      };
      const at = (pt: AuditPoint, mode: OperatorEnv) =>
        (mode === "shipped" ? pt.operatorMs : pt.deploymentMs).at(-1) ?? 0;
      const shipped = (rep: number) => runOperator(rep, "shipped");
      const deployment = (rep: number) => runOperator(rep, "deployment");
      const runList = async (rep: number) => {
        const child = new Child(process.execPath, [LIST_BASELINE, kubeconfig], `list-${n}-${rep}.log`);
        const { line, at } = await child.firstLine(300_000);
        await child.exit;
        const out = JSON.parse(line) as {
          items: number;
          listMs: number;
          cpuMs: number;
          rssAfterImportBytes: number;
          rssBytes: number;
        };
        // +1: default/kubernetes, outside the plan's namespaces
        if (out.items !== n + 1) throw new Error(`the list floor read ${out.items} Services, not ${n + 1}`);
        point.baselineMs.push(at - child.startedAt);
        point.baselineListMs.push(out.listMs);
        point.baselineCpuMs.push(out.cpuMs);
        point.nodeClientRssAfterImportBytes.push(out.rssAfterImportBytes);
        point.baselineRssBytes.push(out.rssBytes);
        log(`  audit N=${n} list floor #${rep + 1}: ${Math.round(point.baselineMs.at(-1) ?? 0)} ms`);
      };
      const runInformer = async (rep: number) => {
        const child = new Child(
          path.join(tools, "informer-baseline"),
          ["-kubeconfig", kubeconfig, "-settle", `${SETTLE_MS}ms`, "-wait"],
          `informer-${n}-${rep}.log`,
        );
        try {
          const synced = await child.firstLine(300_000);
          point.clientGoSyncMs.push(synced.at - child.startedAt);
          const { line } = await child.firstLine(60_000);
          const report = JSON.parse(line) as InformerReport;
          if (report.services !== n + 1) throw new Error(`client-go cached ${report.services} Services, not ${n + 1}`);
          // Read from outside, as for the operator; the helper's own reading is kept in its log.
          point.clientGoRssBytes.push(rssBytes(child.pid));
          point.clientGoHeapInuseBytes.push(report.heapInuseBytes);
          point.clientGoLiveHeapBytes.push(report.liveHeapBytes);
          goVersion = report.goVersion;
        } finally {
          await child.stop();
        }
      };
      for (let rep = 0; rep < REPS; rep++) {
        // Alternate who goes first, so that a slow stretch of the machine doesn't land on one side only.
        const order =
          rep % 2 === 0 ? [shipped, deployment, runList, runInformer] : [runList, runInformer, deployment, shipped];
        for (const run of order) await run(rep);
      }
      point.operatorMedianMs = median(point.operatorMs);
      point.baselineMedianMs = median(point.baselineMs);
      point.clientGoSyncMedianMs = median(point.clientGoSyncMs);
      point.ratio = point.operatorMedianMs / point.baselineMedianMs;
      log(
        `audit N=${n}: operator ${Math.round(point.operatorMedianMs)} ms, list floor ${Math.round(point.baselineMedianMs)} ms, ratio ${point.ratio.toFixed(2)}; RSS operator ${Math.round(median(point.operatorRssBytes) / 2 ** 20)} MiB (with the Deployment's env ${Math.round(median(point.deploymentRssBytes) / 2 ** 20)} MiB), client-go ${Math.round(median(point.clientGoRssBytes) / 2 ** 20)} MiB`,
      );
      points.push(point);
    }
    return { points, creates, machine: await machine(cp, goVersion) };
  } finally {
    await stopControlPlane(env);
  }
}

type Floor = "patch" | "kubeclient";
const DUAL_STACK = { spec: { ipFamilyPolicy: "PreferDualStack" } };

/** The floor's merge PATCHes of ipFamilyPolicy, `inFlight` at a time (the operator's write concurrency). */
async function patchAll(env: Env, refs: ServiceRef[], floor: Floor, inFlight = OPERATOR_CONCURRENCY): Promise<number> {
  const t0 = performance.now();
  await forEachConcurrently(0, refs.length, inFlight, async (i) => {
    const { namespace, name } = refs[i];
    const svc =
      floor === "kubeclient"
        ? await env.client.patch<Service>(SERVICES, namespace, name, DUAL_STACK, "merge")
        : await env.raw.mergePatch<Service>(resourcePath(SERVICES, namespace, name), DUAL_STACK);
    if (svc.spec.ipFamilies?.length !== 2) throw new Error(`${namespace}/${name} did not become dual-stack`);
  });
  return performance.now() - t0;
}

async function countDualStack(client: KubeClient, namespaces: string[]): Promise<number> {
  let dual = 0;
  for (const ns of namespaces) {
    const page = await client.list<Service>(SERVICES, ns);
    dual += page.items.filter((s) => s.spec.ipFamilies?.length === 2).length;
  }
  return dual;
}

/**
 * kube-apiserver's own writes, which no client makes: its identity Lease, and the IPAddress objects its
 * allocator creates for each new ClusterIP (one per Service that gains an IPv6 address).
 */
const apiserverOwn = (key: string) => key.endsWith(" leases") || key.endsWith(" ipaddresses");

/**
 * One fresh control plane with `n` IPv4 Services over 50 namespaces, for one measurement. Each side gets its
 * own: kube-apiserver's ClusterIP allocator does work in proportion to the IPAddresses that exist (see the
 * README), so a PATCH made after the other side's new IPv6 addresses would cost more than one made before them.
 */
async function rolloutCluster(
  n: number,
  rep: number,
  what: string,
  crd: boolean,
): Promise<{ env: Env; refs: ServiceRef[] }> {
  const env = await newControlPlane(crd);
  try {
    const namespaces = nsNames("roll");
    await createNamespaces(env.raw, namespaces);
    const t = performance.now();
    const refs = await createServices(env.raw, namespaces, 0, n);
    log(`rollout ${n} #${rep + 1} ${what}: created ${n} Services in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    return { env, refs };
  } catch (err) {
    await stopControlPlane(env);
    throw err;
  }
}

/** client-go's informer on a cluster: its RSS, read from outside, 3 s after HasSynced. */
async function clientGoRss(tools: string, kubeconfig: string, logName: string, n: number): Promise<number> {
  const child = new Child(
    path.join(tools, "informer-baseline"),
    ["-kubeconfig", kubeconfig, "-settle", `${SETTLE_MS}ms`, "-wait"],
    logName,
  );
  try {
    await child.firstLine(300_000);
    const { line } = await child.firstLine(60_000);
    const report = JSON.parse(line) as InformerReport;
    if (report.services !== n + 1) throw new Error(`client-go cached ${report.services} Services, not ${n + 1}`);
    return rssBytes(child.pid);
  } finally {
    await child.stop();
  }
}

async function rolloutOperator(n: number, rep: number, steadyS: number, tools: string): Promise<RolloutRep> {
  const { env, refs } = await rolloutCluster(n, rep, "operator", true);
  const { cp, client, kubeconfig } = env;
  const namespaces = [...new Set(refs.map((r) => r.namespace))];
  try {
    const name = "rollout";
    await client.create(
      MIGRATION_PLANS,
      undefined,
      planBody(name, namespaces, { rollout: { batchSize: "100%", pauseBetweenBatches: "0s" } }),
    );
    const watcher = await new PlanWatcher(client, name).start();
    // As a user runs it: `ipv6-migrate operator`, no outside flags.
    const op = await OperatorChild.start(kubeconfig, `rollout-${n}-${rep}.log`, "shipped");
    let operatorRss = 0;
    let operatorHeap = 0;
    let result: Omit<RolloutRep, "clientGoRssBytes" | "baselineMs" | "serverCpuMs"> & { serverCpuMs: number };
    try {
      await watcher.until((p) => conditionMet(p, "Audited"), "Audited", 300_000);
      // Let the audit's own writes (status, preflight Events) land before the window opens.
      await sleep(SETTLE_MS);
      const metrics0 = await apiserverRequests(cp);
      const audit0 = auditWrites(cp, OPERATOR_USER, 0).end;

      const server = controlPlanePids(cp);
      if (server.length !== 2) throw new Error(`found ${server.length} control-plane processes, not 2`);
      const cpu0 = cpuMs(op.pid);
      const serverCpu0 = totalCpuMs(server);
      const wall0 = Date.now();
      const t0 = performance.now();
      const promoted = await client.patch<MigrationPlan>(
        MIGRATION_PLANS,
        undefined,
        name,
        { spec: { targetPhase: "DualStack" } },
        "merge",
      );
      const generation = promoted.metadata.generation;
      const t1 = await watcher.until(
        (p) => p.metadata.generation === generation && conditionMet(p, "DualStackComplete"),
        "DualStackComplete",
        1_800_000,
      );
      const operatorMs = t1 - t0;
      const operatorCpuMs = cpuMs(op.pid) - cpu0;
      const serverCpuMs = totalCpuMs(server) - serverCpu0;
      const plan = watcher.plan;
      log(`rollout ${n} #${rep + 1}: operator ${Math.round(operatorMs)} ms to DualStackComplete`);
      // The tail of the rollout (the last Events, a final status) belongs to it, not to the steady state.
      await sleep(5000);
      const metrics1 = await apiserverRequests(cp);
      const audit1 = auditWrites(cp, OPERATOR_USER, audit0);
      const samples = await op.metrics();
      const reconciles0 = metricValue(samples, "controller_runtime_reconcile_total");
      const operatorEvents: Record<string, number> = {};
      for (const result of ["written", "dropped", "failed"]) {
        operatorEvents[result] = metricValue(samples, "events_recorded_total", { result });
      }
      operatorEvents["status writes"] = metricValue(samples, "status_writes_total");
      await sleep(SETTLE_MS);
      operatorRss = rssBytes(op.pid);
      operatorHeap = metricValue(await op.metrics(), "nodejs_heap_size_used_bytes");
      const statusWriteAtMs = cp
        .auditEvents(OPERATOR_USER)
        .slice(audit0, audit1.end)
        .filter((e) => e.verb === "patch" && e.objectRef?.resource === "migrationplans")
        .filter((e) => e.objectRef?.subresource === "status")
        .map((e) => Date.parse(e.requestReceivedTimestamp ?? "") - wall0);

      let steady: RolloutRep["steady"];
      if (steadyS > 0) {
        log(`rollout ${n} #${rep + 1}: steady state for ${steadyS} s`);
        await sleep(steadyS * 1000);
        const metrics2 = await apiserverRequests(cp);
        const reconciles = metricValue(await op.metrics(), "controller_runtime_reconcile_total");
        steady = {
          windowS: steadyS,
          writes: auditWrites(cp, OPERATOR_USER, audit1.end).counts,
          writesMetrics: onlyWrites(diffCounts(metrics2, metrics1)),
          reconciles: reconciles - reconciles0,
        };
      }
      const migrated = await countDualStack(client, namespaces);
      if (migrated !== n) throw new Error(`${migrated} of ${n} Services are dual-stack`);

      const rolloutWritesMetrics = onlyWrites(diffCounts(metrics1, metrics0));
      // Our own promotion of the plan is in that window too.
      rolloutWritesMetrics["PATCH migrationplans"] = (rolloutWritesMetrics["PATCH migrationplans"] ?? 0) - 1;
      const batch = plan?.status?.currentBatch;
      result = {
        operatorMs,
        operatorCpuMs,
        serverCpuMs,
        batches: batch?.number ?? 0,
        batchMs:
          batch?.startedAt && batch.finishedAt ? Date.parse(batch.finishedAt) - Date.parse(batch.startedAt) : NaN,
        rolloutWrites: audit1.counts,
        rolloutWritesMetrics,
        statusWriteAtMs,
        operatorEvents,
        operatorRssBytes: operatorRss,
        operatorHeapUsedBytes: operatorHeap,
        steady,
        reconciles: metricValue(await op.metrics(), "controller_runtime_reconcile_total"),
        migrated,
      };
    } finally {
      watcher.stop();
      await op.stop();
    }
    // client-go's informer on the same cluster, after the rollout: the same objects as the operator cached.
    const clientGoRssBytes = await clientGoRss(tools, kubeconfig, `rollout-informer-${n}-${rep}.log`, n);
    log(
      `rollout ${n} #${rep + 1}: RSS operator ${Math.round(operatorRss / 2 ** 20)} MiB, client-go ${Math.round(clientGoRssBytes / 2 ** 20)} MiB`,
    );
    return {
      ...result,
      baselineMs: 0,
      serverCpuMs: { operator: result.serverCpuMs, baseline: 0 },
      clientGoRssBytes,
    };
  } finally {
    await stopControlPlane(env);
  }
}

async function rolloutFloor(
  n: number,
  rep: number,
  floor: Floor,
  inFlight = OPERATOR_CONCURRENCY,
): Promise<{ ms: number; serverCpuMs: number }> {
  const { env, refs } = await rolloutCluster(n, rep, `floor ${floor} (${inFlight} in flight)`, false);
  try {
    const server = controlPlanePids(env.cp);
    // The same pause as the operator gets between its audit and the promotion.
    await sleep(SETTLE_MS);
    const cpu0 = totalCpuMs(server);
    const ms = await patchAll(env, refs, floor, inFlight);
    return { ms, serverCpuMs: totalCpuMs(server) - cpu0 };
  } finally {
    await stopControlPlane(env);
  }
}

async function rolloutRep(n: number, rep: number, first: boolean, tools: string): Promise<RolloutRep> {
  const floors: Floor[] = first && rep < KUBECLIENT_REPS ? ["patch", "kubeclient"] : ["patch"];
  const measured: Partial<Record<Floor, { ms: number; serverCpuMs: number }>> = {};
  let result: RolloutRep | undefined;
  // Alternate who goes first, so that a slow stretch of the machine doesn't land on one side only.
  const steps = rep % 2 === 0 ? ["operator", ...floors] : [...floors, "operator"];
  for (const step of steps) {
    if (step === "operator") result = await rolloutOperator(n, rep, first && rep < STEADY_REPS ? STEADY_S : 0, tools);
    else measured[step as Floor] = await rolloutFloor(n, rep, step as Floor);
  }
  if (!result) throw new Error("the operator's rollout did not run");
  const patch = measured.patch ?? { ms: NaN, serverCpuMs: NaN };
  result.baselineMs = patch.ms;
  result.serverCpuMs.baseline = patch.serverCpuMs;
  if (measured.kubeclient) {
    result.kubeClientMs = measured.kubeclient.ms;
    result.serverCpuMs.kubeClient = measured.kubeclient.serverCpuMs;
  }
  log(
    `rollout ${n} #${rep + 1}: floor ${Math.round(result.baselineMs)} ms${result.kubeClientMs ? `, through KubeClient ${Math.round(result.kubeClientMs)} ms` : ""}; operator writes ${total(result.rolloutWrites)}${result.steady ? `, steady ${total(result.steady.writes)}` : ""}`,
  );
  return result;
}

function perService(counts: RequestCounts, n: number): PerService {
  const servicePatches = total(counts, (k) => k === "PATCH services");
  const serviceDryRunPatches = total(counts, (k) => k === "PATCH services dry-run");
  const events = total(counts, (k) => k.endsWith(" events"));
  const planStatus = total(
    counts,
    (k) => k.startsWith("PATCH migrationplans") || k.startsWith("UPDATE migrationplans"),
  );
  const all = total(counts);
  return {
    servicePatches: servicePatches / n,
    serviceDryRunPatches: serviceDryRunPatches / n,
    events: events / n,
    planStatus: planStatus / n,
    other: (all - servicePatches - serviceDryRunPatches - events - planStatus) / n,
    total: all / n,
  };
}

async function rolloutSize(n: number, reps: number, first: boolean, tools: string): Promise<RolloutSize> {
  const runs: RolloutRep[] = [];
  for (let rep = 0; rep < reps; rep++) runs.push(await rolloutRep(n, rep, first, tools));
  const per = runs.map((r) => perService(r.rolloutWrites, n));
  const pick = (key: keyof PerService) => round(median(per.map((p) => p[key])), 3);
  const statusCounts = runs.map((r) => r.statusWriteAtMs.length);
  const operatorMedianMs = median(runs.map((r) => r.operatorMs));
  const baselineMedianMs = median(runs.map((r) => r.baselineMs));
  const opRss = median(runs.map((r) => r.operatorRssBytes));
  const goRss = median(runs.map((r) => r.clientGoRssBytes));
  return {
    services: n,
    namespaces: NAMESPACES,
    concurrency: OPERATOR_CONCURRENCY,
    reps: runs,
    operatorMedianMs,
    baselineMedianMs,
    ratio: operatorMedianMs / baselineMedianMs,
    perService: {
      servicePatches: pick("servicePatches"),
      serviceDryRunPatches: pick("serviceDryRunPatches"),
      events: pick("events"),
      planStatus: pick("planStatus"),
      other: pick("other"),
      total: pick("total"),
    },
    statusWrites: {
      count: median(statusCounts),
      perSecond: median(runs.map((r) => r.statusWriteAtMs.length / (r.operatorMs / 1000))),
      maxInOneSecond: Math.max(...runs.map((r) => maxPerSecond(r.statusWriteAtMs))),
    },
    memory: {
      operatorRssBytes: opRss,
      operatorHeapUsedBytes: median(runs.map((r) => r.operatorHeapUsedBytes)),
      clientGoRssBytes: goRss,
      ratio: opRss / goRss,
    },
  };
}

/** Raw PATCHes at each number in flight, a fresh cluster each: where more in flight stops paying. */
async function concurrencySweep(): Promise<Results["concurrencySweep"]> {
  const points: { concurrency: number; ms: number }[] = [];
  for (const c of SWEEP) {
    const { ms } = await rolloutFloor(SWEEP_N, 0, "patch", c);
    log(`sweep: ${SWEEP_N} PATCHes, ${c} in flight: ${Math.round(ms)} ms`);
    points.push({ concurrency: c, ms });
  }
  return { services: SWEEP_N, points };
}

async function main(): Promise<void> {
  log("building the helpers (testenv/build.sh --tools)");
  const tools = await toolsDir();

  log(`audit: ${SIZES.join(", ")} Services across ${NAMESPACES} namespaces, ${REPS} runs each`);
  const { points, creates, machine: m } = await auditBench(tools);

  const rollouts: RolloutSize[] = [];
  for (const [i, n] of ROLLOUT_SIZES.entries()) {
    rollouts.push(await rolloutSize(n, i === 0 ? REPS : LARGE_REPS, i === 0, tools));
  }
  const concurrency = await concurrencySweep();

  const reps = rollouts.flatMap((r) => r.reps);
  const steadyReps = reps.flatMap((r) => (r.steady ? [r.steady] : []));
  const steadyS = steadyReps.reduce((sum, st) => sum + st.windowS, 0);
  const perMinute = (match: (k: string) => boolean, metrics = false) =>
    steadyS
      ? round(
          (steadyReps.reduce((sum, st) => sum + total(metrics ? st.writesMetrics : st.writes, match), 0) * 60) /
            steadyS,
          2,
        )
      : NaN;
  const serviceOrPlan = (k: string) => / (services|migrationplans)(\/|$| )/.test(k);
  const isEvent = (k: string) => k.endsWith(" events");
  // The Deployment's figure at 10,000 Services (or the largest audit size below it).
  const memPoint = [...points].reverse().find((p) => p.services <= 10_000) ?? points[0];

  const results: Results = {
    generatedAt: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: m,
    reps: REPS,
    audit: { namespaces: NAMESPACES, points, creates },
    rollouts,
    concurrencySweep: concurrency,
    writes: {
      steadyPerMinute: {
        windowS: steadyS,
        serviceAndPlan: perMinute(serviceOrPlan),
        events: perMinute(isEvent),
        other: perMinute((k) => !serviceOrPlan(k) && !isEvent(k)),
        total: perMinute(() => true),
        apiserverOwn: perMinute(apiserverOwn, true),
      },
    },
    memory: {
      services: memPoint.services,
      operatorRssMedianBytes: median(memPoint.deploymentRssBytes),
      clientGoRssMedianBytes: median(memPoint.clientGoRssBytes),
      operatorHeapUsedMedianBytes: median(memPoint.deploymentHeapUsedBytes),
      clientGoHeapInuseMedianBytes: median(memPoint.clientGoHeapInuseBytes),
      ratio: median(memPoint.deploymentRssBytes) / median(memPoint.clientGoRssBytes),
      bareNodeRssBytes: await bareNodeRss(),
    },
  };
  // Microsecond digits of a millisecond timing are noise; three decimals keep ratios and per-Service counts.
  const rounded = (_key: string, v: unknown) => (typeof v === "number" && !Number.isInteger(v) ? round(v, 3) : v);
  writeFileSync(path.join(BENCH_DIR, "results.json"), JSON.stringify(results, rounded, 2) + "\n");
  writeFileSync(README, keepMarked(renderReadme(results), README));
  writeFileSync(path.join(BENCH_DIR, "audit-scaling.svg"), renderSvg(results));
  log(
    `done in ${results.durationS} s: audit ratio ${points.map((p) => `${p.services}: ${p.ratio.toFixed(2)}`).join(", ")}; rollout ratio ${rollouts.map((r) => `${r.services}: ${r.ratio.toFixed(2)}`).join(", ")}; memory ratio ${results.memory.ratio.toFixed(2)}`,
  );
}

/** `--report`: README and chart again from results.json, e.g. after a change to their layout. */
function reportOnly(): void {
  const results = JSON.parse(readFileSync(path.join(BENCH_DIR, "results.json"), "utf8")) as Results;
  writeFileSync(README, keepMarked(renderReadme(results), README));
  writeFileSync(path.join(BENCH_DIR, "audit-scaling.svg"), renderSvg(results));
}

(process.argv.includes("--report") ? Promise.resolve(reportOnly()) : main()).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
