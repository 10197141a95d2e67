// `make bench-dataplane`: traffic through a whole plan on a real data plane (kube-proxy nftables + CoreDNS in a
// network namespace), the real operator, and the probe's five client kinds. Writes bench/dataplane.json, the
// data-plane section of bench/README.md and docs/reliability.md, and bench/dataplane-timeline*.svg.
//   node dist/bench/dataplane.js            kube-proxy as shipped, with a min-sync-period of 0, and the pacing experiment
//   node dist/bench/dataplane.js --report   the sections and charts again from dataplane.json
// Knobs: DP_SERVICES (20), DP_RATE (200), DP_RUNS (default,minsync0).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { KubeClient } from "../src/runtime/client.js";
import { repoRoot, startControlPlane } from "../src/testenv/controlplane.js";
import { dataPlaneUnavailable, startDataPlane } from "../src/testenv/dataplane.js";
import { keeps } from "../src/testenv/probe-analysis.js";
import { CLIENT_KINDS, type ClientKind } from "../src/testenv/probe-protocol.js";
import {
  SCENARIO_USERS,
  SHAPES,
  createEstate,
  estate,
  pods,
  runScenario,
  type ScenarioOptions,
  type ScenarioResult,
} from "../test/dataplane-scenario.js";
import { pacingExperiment } from "./cutover-pacing.js";
import {
  writeReports,
  type DataplaneResults,
  type DataplaneRun,
  type PacingResults,
  type Timeline,
} from "./dataplane-report.js";

const BENCH_DIR = path.join(repoRoot, "bench");
const JSON_FILE = path.join(BENCH_DIR, "dataplane.json");
const files = {
  readme: path.join(BENCH_DIR, "README.md"),
  reliability: path.join(repoRoot, "docs/reliability.md"),
  svg: (i: number) => path.join(BENCH_DIR, i === 0 ? "dataplane-timeline.svg" : `dataplane-timeline-${i + 1}.svg`),
};
const SERVICES = Number(process.env.DP_SERVICES ?? 20);
const RATE = Number(process.env.DP_RATE ?? 200);
const RUNS: Record<string, { label: string; minSyncPeriod?: string }> = {
  default: { label: "kube-proxy as shipped (min-sync-period 1s)" },
  minsync0: {
    label: "kube-proxy with a min-sync-period of 0 (every change synced at once; shows the mechanism)",
    minSyncPeriod: "0s",
  },
};
const RUN_NAMES = (process.env.DP_RUNS ?? "default,minsync0,pacing").split(",");
const PACING = { services: 4, rounds: 8, idleMs: 3000, leadMs: 150 };

const started = performance.now();
const log = (message: string) =>
  process.stderr.write(
    `[bench-dataplane ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`,
  );

function timeline(result: ScenarioResult): Timeline {
  const binMs = 1000;
  const start = result.records.startedAt;
  const bins = Math.ceil((result.records.stoppedAt - start) / binMs);
  const zeros = () =>
    Object.fromEntries(CLIENT_KINDS.map((k) => [k, new Array<number>(bins).fill(0)])) as Record<ClientKind, number[]>;
  const ok = zeros();
  const failed = zeros();
  const byDesign = zeros();
  for (const r of result.records.requests) {
    const i = Math.floor((r.t - start) / binMs);
    if (i < 0 || i >= bins) continue;
    if (!r.c) {
      ok[r.k][i]++;
      continue;
    }
    const phase = result.phases.find((p) => r.t >= p.start && r.t < p.end);
    (phase && !keeps(result.records.services, r.s, r.k, phase) ? byDesign : failed)[r.k][i]++;
  }
  return {
    binMs,
    start,
    ok,
    failed,
    byDesign,
    phases: result.phases.map((p) => ({ name: p.name, t: p.start })),
    batches: result.phases.flatMap((p) => p.batches.map((b) => b.t)),
  };
}

async function runOnce(name: string, options: Omit<ScenarioOptions, "namespace">): Promise<DataplaneRun> {
  const spec = RUNS[name];
  if (!spec) throw new Error(`unknown run ${name}`);
  log(`run ${name}: ${spec.label}`);
  mkdirSync(path.join(BENCH_DIR, "out"), { recursive: true });
  const cp = await startControlPlane({ users: SCENARIO_USERS });
  const dp = await startDataPlane(cp, {
    pods: pods(options.services),
    ...(spec.minSyncPeriod ? { minSyncPeriod: spec.minSyncPeriod } : {}),
    keepLogsIn: path.join(BENCH_DIR, "out"),
  }).catch(async (err: unknown) => {
    await cp.stop();
    throw err;
  });
  try {
    const client = new KubeClient(cp.kubeConfig(), "ipv6mig-bench-dataplane");
    const full = { ...options, namespace: "traffic", log };
    await createEstate(cp, dp, client, full);
    const result = await runScenario(cp, dp, client, full);
    writeFileSync(path.join(BENCH_DIR, "out", `dataplane-${name}-operator.log`), result.operatorOutput);
    writeFileSync(path.join(BENCH_DIR, "out", `dataplane-${name}-records.json`), JSON.stringify(result.records));
    for (const f of result.figures) {
      log(
        `  ${f.name}: ${CLIENT_KINDS.map((k) => `${k} ${f.kinds[k].failedDefect}+${f.kinds[k].failedByDesign}/${f.kinds[k].requests}`).join(", ")}`,
      );
    }
    return {
      label: spec.label,
      kubeProxyArgs: spec.minSyncPeriod ? [`--iptables-min-sync-period=${spec.minSyncPeriod}`] : [],
      phases: result.figures.map((f) => ({ ...f, outages: f.outages.slice(0, 40), rules: f.rules.slice(0, 40) })),
      timeline: timeline(result),
    };
  } finally {
    await dp.stop();
    await cp.stop();
  }
}

async function runPacing(): Promise<PacingResults> {
  log(`pacing: ${PACING.rounds} cutovers unpaced and ${PACING.rounds} paced on ${PACING.services} dual-stack Services`);
  const services = estate(PACING.services, ["clusterip-dual"]);
  const cp = await startControlPlane({ users: SCENARIO_USERS });
  const dp = await startDataPlane(cp, { pods: pods(services), keepLogsIn: path.join(BENCH_DIR, "out") }).catch(
    async (err: unknown) => {
      await cp.stop();
      throw err;
    },
  );
  try {
    const client = new KubeClient(cp.kubeConfig(), "ipv6mig-bench-pacing");
    const base = { namespace: "pacing", services, phases: [], batchSize: 1, pauseBetweenBatches: "0s", settleMs: 0 };
    await createEstate(cp, dp, client, base);
    const { variants, records } = await pacingExperiment(dp, client, {
      ...PACING,
      namespace: "pacing",
      services,
      rate: RATE,
    });
    writeFileSync(path.join(BENCH_DIR, "out", "dataplane-pacing-records.json"), JSON.stringify(records));
    for (const v of variants) log(`  ${v.variant}: ${JSON.stringify(v)}`);
    return { ...PACING, variants };
  } finally {
    await dp.stop();
    await cp.stop();
  }
}

async function main(): Promise<void> {
  if (process.argv.includes("--report")) {
    writeReports(JSON.parse(readFileSync(JSON_FILE, "utf8")) as DataplaneResults, files);
    return;
  }
  const reason = await dataPlaneUnavailable();
  if (reason) {
    console.error(`bench-dataplane: the data plane can't run here: ${reason}`);
    process.exitCode = 2;
    return;
  }
  mkdirSync(path.join(BENCH_DIR, "out"), { recursive: true });
  const config = {
    services: SERVICES,
    shapes: [...SHAPES],
    rate: RATE,
    timeoutMs: 1000,
    dnsWatchMs: 200,
    nftPollMs: 100,
    batchSize: 5,
    pauseBetweenBatches: "2s",
    settleMs: 6000,
  };
  const options: Omit<ScenarioOptions, "namespace"> = {
    services: estate(SERVICES),
    phases: ["DualStack", "IPv6Only", "DualStack", "Audit"],
    batchSize: config.batchSize,
    pauseBetweenBatches: config.pauseBetweenBatches,
    settleMs: config.settleMs,
    probe: { rate: RATE, timeoutMs: config.timeoutMs, dnsWatchMs: config.dnsWatchMs, nftPollMs: config.nftPollMs },
  };
  const runs: DataplaneRun[] = [];
  for (const name of RUN_NAMES.filter((n) => n !== "pacing")) runs.push(await runOnce(name, options));
  const pacing = RUN_NAMES.includes("pacing") ? await runPacing() : undefined;
  const results: DataplaneResults = {
    generatedAt: new Date().toISOString(),
    durationS: Math.round((performance.now() - started) / 1000),
    machine: {
      cpus: os.cpus().length,
      kernel: `${os.type()} ${os.release()}`,
      kubernetes:
        /k8s\.io\/kubernetes (v\S+)/.exec(readFileSync(path.join(repoRoot, "testenv/kube/go.mod"), "utf8"))?.[1] ?? "",
      coredns:
        /github\.com\/coredns\/coredns (v\S+)/.exec(
          readFileSync(path.join(repoRoot, "testenv/coredns/go.mod"), "utf8"),
        )?.[1] ?? "",
      node: process.version,
    },
    config,
    runs,
    ...(pacing ? { pacing } : {}),
  };
  writeFileSync(JSON_FILE, JSON.stringify(results, null, 1) + "\n");
  writeReports(results, files);
  log(`wrote ${path.relative(repoRoot, JSON_FILE)}, the README and reliability sections and the timelines`);
}

await main();
