// `make bench`: the operator, through its real entry point, against a floor measured in the same run on the same
// local control plane. Writes bench/results.json, bench/README.md and bench/audit-scaling.svg.
//
// Every timing is taken 3 times (BENCH_REPS) and reported as the median: the machine is shared and noisy.
// Knobs for a quick look: BENCH_SIZES=1000,5000 BENCH_REPS=1 BENCH_STEADY_S=10 BENCH_ROLLOUT=200
// (and BENCH_STEADY_REPS, how many rollout runs end with a steady-state window; 1 by default).
// `node dist/bench/run.js --report` rewrites README.md and the chart from results.json without running anything.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { MIGRATION_PLANS, type MigrationPlan } from "../src/api/migrationplan.js";
import { KubeClient, SERVICES, resourcePath } from "../src/runtime/client.js";
import { type Service } from "../src/migration/families.js";
import { repoRoot, startControlPlane, toolsDir, type ControlPlane } from "../src/testenv/controlplane.js";
import { installCRD } from "../test/operator.js";
import {
  Child,
  LIST_BASELINE,
  OperatorChild,
  PlanWatcher,
  RawClient,
  apiserverRequests,
  auditWrites,
  conditionMet,
  controlPlanePids,
  cpuMs,
  createNamespaces,
  createServices,
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
import { renderReadme, renderSvg } from "./report.js";
import type { AuditPoint, Machine, Results, RolloutRep } from "./results.js";

const SIZES = (process.env.BENCH_SIZES ?? "1000,5000,10000").split(",").map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const STEADY_S = Number(process.env.BENCH_STEADY_S ?? 60);
/** A steady window is a wait, not a timing: one is enough to count writes, and the others would only cost time. */
const STEADY_REPS = Number(process.env.BENCH_STEADY_REPS ?? 1);
/** The floor through KubeClient is a diagnosis of the client, not a ratio: one run shows it. */
const KUBECLIENT_REPS = Number(process.env.BENCH_KUBECLIENT_REPS ?? 1);
const ROLLOUT_N = Number(process.env.BENCH_ROLLOUT ?? 1000);
const NAMESPACES = 50;
/** The reconciler's write concurrency (CONCURRENCY in src/reconciler/migrationplan.ts), given to the floor too. */
const OPERATOR_CONCURRENCY = 8;
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
    let previousPlan: string | undefined;
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

      const runOperator = async (rep: number) => {
        // A new plan per run: a fresh operator must not find Audited already set by the one before.
        const name = `audit-${n}-${rep}`;
        if (previousPlan) await client.delete(MIGRATION_PLANS, undefined, previousPlan);
        await client.create(MIGRATION_PLANS, undefined, planBody(name, namespaces));
        previousPlan = name;
        const watcher = await new PlanWatcher(client, name).start();
        const logName = `audit-${n}-${rep}.log`;
        const wall = Date.now();
        const op = await OperatorChild.start(kubeconfig, logName);
        try {
          const at = await watcher.until((p) => conditionMet(p, "Audited"), `${name} Audited`, 300_000);
          const selected = watcher.plan?.status?.summary?.selected;
          if (selected !== n) throw new Error(`plan ${name} selected ${selected}, not ${n}`);
          point.operatorMs.push(at - op.startedAt);
          point.operatorCpuMs.push(cpuMs(op.pid));
          await sleep(SETTLE_MS);
          point.operatorRssBytes.push(rssBytes(op.pid));
          point.operatorHeapUsedBytes.push(metricValue(await op.metrics(), "nodejs_heap_size_used_bytes"));
        } finally {
          watcher.stop();
          await op.stop();
        }
        point.operatorCachesSyncedMs.push(logLineMs(logName, wall, "caches synced, starting workers"));
        point.operatorScanDoneMs.push(logLineMs(logName, wall, "preflight scan"));
        log(`  audit N=${n} operator #${rep + 1}: ${Math.round(point.operatorMs.at(-1) ?? 0)} ms`);
      };
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
        const order = rep % 2 === 0 ? [runOperator, runList, runInformer] : [runList, runInformer, runOperator];
        for (const run of order) await run(rep);
      }
      point.operatorMedianMs = median(point.operatorMs);
      point.baselineMedianMs = median(point.baselineMs);
      point.clientGoSyncMedianMs = median(point.clientGoSyncMs);
      point.ratio = point.operatorMedianMs / point.baselineMedianMs;
      log(
        `audit N=${n}: operator ${Math.round(point.operatorMedianMs)} ms, list floor ${Math.round(point.baselineMedianMs)} ms, ratio ${point.ratio.toFixed(2)}; RSS operator ${Math.round(median(point.operatorRssBytes) / 2 ** 20)} MiB, client-go ${Math.round(median(point.clientGoRssBytes) / 2 ** 20)} MiB`,
      );
      points.push(point);
    }
    return { points, creates, machine: await machine(cp, goVersion) };
  } finally {
    await stopControlPlane(env);
  }
}

type Floor = "patch" | "dry-run+patch" | "kubeclient";
const DUAL_STACK = { spec: { ipFamilyPolicy: "PreferDualStack" } };

/** The floor's merge PATCHes of ipFamilyPolicy, as many in flight as the reconciler has. */
async function patchAll(env: Env, refs: ServiceRef[], floor: Floor): Promise<number> {
  const t0 = performance.now();
  await forEachConcurrently(0, refs.length, OPERATOR_CONCURRENCY, async (i) => {
    const { namespace, name } = refs[i];
    const route = resourcePath(SERVICES, namespace, name);
    let svc: Service;
    if (floor === "kubeclient") {
      await env.client.patch(SERVICES, namespace, name, DUAL_STACK, "merge", { dryRun: true });
      svc = await env.client.patch<Service>(SERVICES, namespace, name, DUAL_STACK, "merge");
    } else {
      if (floor === "dry-run+patch") await env.raw.mergePatch(`${route}?dryRun=All`, DUAL_STACK);
      svc = await env.raw.mergePatch<Service>(route, DUAL_STACK);
    }
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
 * One fresh control plane with `ROLLOUT_N` IPv4 Services over 50 namespaces, for one measurement. Each side
 * gets its own: kube-apiserver's ClusterIP allocator does work in proportion to the IPAddresses that exist
 * (see the README), so a PATCH made after the other side's 1,000 IPv6 addresses would cost more than one made
 * before them.
 */
async function rolloutCluster(rep: number, what: string, crd: boolean): Promise<{ env: Env; refs: ServiceRef[] }> {
  const env = await newControlPlane(crd);
  try {
    const namespaces = nsNames("roll");
    await createNamespaces(env.raw, namespaces);
    const t = performance.now();
    const refs = await createServices(env.raw, namespaces, 0, ROLLOUT_N);
    log(
      `rollout #${rep + 1} ${what}: created ${ROLLOUT_N} Services in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    return { env, refs };
  } catch (err) {
    await stopControlPlane(env);
    throw err;
  }
}

async function rolloutOperator(rep: number, steadyS: number): Promise<RolloutRep> {
  const { env, refs } = await rolloutCluster(rep, "operator", true);
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
    const op = await OperatorChild.start(kubeconfig, `rollout-${rep}.log`);
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
        600_000,
      );
      const operatorMs = t1 - t0;
      const operatorCpuMs = cpuMs(op.pid) - cpu0;
      const serverCpuMs = totalCpuMs(server) - serverCpu0;
      const plan = watcher.plan;
      log(`rollout #${rep + 1}: operator ${Math.round(operatorMs)} ms to DualStackComplete`);
      // The tail of the rollout (the last Events, a final status) belongs to it, not to the steady state.
      await sleep(5000);
      const metrics1 = await apiserverRequests(cp);
      const audit1 = auditWrites(cp, OPERATOR_USER, audit0);
      const reconciles0 = metricValue(await op.metrics(), "controller_runtime_reconcile_total");

      let steady: RolloutRep["steady"];
      if (steadyS > 0) {
        log(`rollout #${rep + 1}: steady state for ${steadyS} s`);
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
      if (migrated !== ROLLOUT_N) throw new Error(`${migrated} of ${ROLLOUT_N} Services are dual-stack`);

      const rolloutWritesMetrics = onlyWrites(diffCounts(metrics1, metrics0));
      // Our own promotion of the plan is in that window too.
      rolloutWritesMetrics["PATCH migrationplans"] = (rolloutWritesMetrics["PATCH migrationplans"] ?? 0) - 1;
      const batch = plan?.status?.currentBatch;
      return {
        operatorMs,
        baselineMs: 0,
        baselineDryRunMs: 0,
        operatorCpuMs,
        serverCpuMs: { operator: serverCpuMs, baseline: 0, baselineDryRun: 0 },
        batches: batch?.number ?? 0,
        batchMs:
          batch?.startedAt && batch.finishedAt ? Date.parse(batch.finishedAt) - Date.parse(batch.startedAt) : NaN,
        rolloutWrites: audit1.counts,
        rolloutWritesMetrics,
        steady,
        reconciles: metricValue(await op.metrics(), "controller_runtime_reconcile_total"),
        migrated,
      };
    } finally {
      watcher.stop();
      await op.stop();
    }
  } finally {
    await stopControlPlane(env);
  }
}

async function rolloutFloor(rep: number, floor: Floor): Promise<{ ms: number; serverCpuMs: number }> {
  const { env, refs } = await rolloutCluster(rep, `floor ${floor}`, false);
  try {
    const server = controlPlanePids(env.cp);
    // The same pause as the operator gets between its audit and the promotion.
    await sleep(SETTLE_MS);
    const cpu0 = totalCpuMs(server);
    const ms = await patchAll(env, refs, floor);
    return { ms, serverCpuMs: totalCpuMs(server) - cpu0 };
  } finally {
    await stopControlPlane(env);
  }
}

async function rolloutRep(rep: number): Promise<RolloutRep> {
  const floors: Floor[] = rep < KUBECLIENT_REPS ? ["patch", "dry-run+patch", "kubeclient"] : ["patch", "dry-run+patch"];
  const measured: Partial<Record<Floor, { ms: number; serverCpuMs: number }>> = {};
  let result: RolloutRep | undefined;
  // Alternate who goes first, so that a slow stretch of the machine doesn't land on one side only.
  const steps = rep % 2 === 0 ? ["operator", ...floors] : [...floors, "operator"];
  for (const step of steps) {
    if (step === "operator") result = await rolloutOperator(rep, rep < STEADY_REPS ? STEADY_S : 0);
    else measured[step as Floor] = await rolloutFloor(rep, step as Floor);
  }
  if (!result) throw new Error("the operator's rollout did not run");
  const get = (f: Floor) => measured[f] ?? { ms: NaN, serverCpuMs: NaN };
  [result.baselineMs, result.serverCpuMs.baseline] = [get("patch").ms, get("patch").serverCpuMs];
  [result.baselineDryRunMs, result.serverCpuMs.baselineDryRun] = [
    get("dry-run+patch").ms,
    get("dry-run+patch").serverCpuMs,
  ];
  if (measured.kubeclient) {
    result.kubeClientDryRunMs = measured.kubeclient.ms;
    result.serverCpuMs.kubeClientDryRun = measured.kubeclient.serverCpuMs;
  }
  log(
    `rollout #${rep + 1}: floor ${Math.round(result.baselineMs)} ms, with dry runs ${Math.round(result.baselineDryRunMs)} ms${result.kubeClientDryRunMs ? `, through KubeClient ${Math.round(result.kubeClientDryRunMs)} ms` : ""}; operator writes ${total(result.rolloutWrites)}${result.steady ? `, steady ${total(result.steady.writes)}` : ""}`,
  );
  return result;
}

function perService(counts: RequestCounts, n: number) {
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

async function main(): Promise<void> {
  log("building the helpers (testenv/build.sh --tools)");
  const tools = await toolsDir();

  log(`audit: ${SIZES.join(", ")} Services across ${NAMESPACES} namespaces, ${REPS} runs each`);
  const { points, creates, machine: m } = await auditBench(tools);

  const reps: RolloutRep[] = [];
  for (let rep = 0; rep < REPS; rep++) reps.push(await rolloutRep(rep));

  const last = points.at(-1)!;
  const perServiceReps = reps.map((r) => perService(r.rolloutWrites, ROLLOUT_N));
  const pick = (key: keyof ReturnType<typeof perService>) => round(median(perServiceReps.map((p) => p[key])), 3);
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

  const results: Results = {
    generatedAt: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: m,
    reps: REPS,
    audit: { namespaces: NAMESPACES, points, creates },
    rollout: {
      services: ROLLOUT_N,
      namespaces: NAMESPACES,
      concurrency: OPERATOR_CONCURRENCY,
      reps,
      operatorMedianMs: median(reps.map((r) => r.operatorMs)),
      baselineMedianMs: median(reps.map((r) => r.baselineMs)),
      baselineDryRunMedianMs: median(reps.map((r) => r.baselineDryRunMs)),
      kubeClientDryRunMedianMs: median(reps.flatMap((r) => (r.kubeClientDryRunMs ? [r.kubeClientDryRunMs] : []))),
      ratio: median(reps.map((r) => r.operatorMs)) / median(reps.map((r) => r.baselineMs)),
      ratioVsDryRunPath: median(reps.map((r) => r.operatorMs)) / median(reps.map((r) => r.baselineDryRunMs)),
    },
    writes: {
      perService: {
        servicePatches: pick("servicePatches"),
        serviceDryRunPatches: pick("serviceDryRunPatches"),
        events: pick("events"),
        planStatus: pick("planStatus"),
        other: pick("other"),
        total: pick("total"),
      },
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
      services: last.services,
      operatorRssMedianBytes: median(last.operatorRssBytes),
      clientGoRssMedianBytes: median(last.clientGoRssBytes),
      operatorHeapUsedMedianBytes: median(last.operatorHeapUsedBytes),
      clientGoHeapInuseMedianBytes: median(last.clientGoHeapInuseBytes),
      ratio: median(last.operatorRssBytes) / median(last.clientGoRssBytes),
      bareNodeRssBytes: await bareNodeRss(),
    },
  };
  // Microsecond digits of a millisecond timing are noise; three decimals keep ratios and per-Service counts.
  const rounded = (_key: string, v: unknown) => (typeof v === "number" && !Number.isInteger(v) ? round(v, 3) : v);
  writeFileSync(path.join(BENCH_DIR, "results.json"), JSON.stringify(results, rounded, 2) + "\n");
  writeFileSync(README, keepMarked(renderReadme(results), README));
  writeFileSync(path.join(BENCH_DIR, "audit-scaling.svg"), renderSvg(results));
  log(
    `done in ${results.durationS} s: audit ratio ${points.map((p) => `${p.services}: ${p.ratio.toFixed(2)}`).join(", ")}; rollout ratio ${results.rollout.ratio.toFixed(2)}; memory ratio ${results.memory.ratio.toFixed(2)}`,
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
