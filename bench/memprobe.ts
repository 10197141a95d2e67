// Not part of `make bench`: a quick look at where the operator's RSS goes after a rollout, by mapping.
// node dist/bench/memprobe.js N CLI [node flags...] (with --heapsnapshot-signal=SIGUSR2, a heap snapshot at the end)
// node dist/bench/memprobe.js audit N REPS CLI "flags A" "flags B"...: spawn -> Audited and CPU, variants alternated
import { readFileSync } from "node:fs";
import { MIGRATION_PLANS } from "../src/api/migrationplan.js";
import { KubeClient } from "../src/runtime/client.js";
import { startControlPlane } from "../src/testenv/controlplane.js";
import { installCRD } from "../test/operator.js";
import {
  Child,
  conditionMet,
  cpuMs,
  createNamespaces,
  createServices,
  deletePlan,
  planBody,
  PlanWatcher,
  RawClient,
  rssBytes,
  sleep,
} from "./lib.js";

const auditMode = process.argv[2] === "audit";
const argv = process.argv.slice(auditMode ? 3 : 2);
const [nArg, cli, ...nodeFlags] = auditMode ? [argv[0], argv[2], ...argv.slice(3)] : argv;
const n = Number(nArg);
const USER = "ipv6-migration-operator";

/** `ipv6-migrate operator` as shipped (no NODE_OPTIONS), with the given node flags before the program. */
function operator(flags: string[], kubeconfig: string, logName: string): Child {
  return new Child(
    process.execPath,
    [
      ...flags,
      cli ?? "",
      "operator",
      `--kubeconfig=${kubeconfig}`,
      "--metrics-bind-address=0",
      "--health-probe-bind-address=0",
    ],
    logName,
    { env: { LOG_FORMAT: "json" }, unsetEnv: ["NODE_OPTIONS", "MALLOC_ARENA_MAX"], stdoutToLog: true },
  );
}

function smaps(pid: number): Record<string, number> {
  const text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  const out: Record<string, number> = {};
  let name = "";
  for (const line of text.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const file = head[1] ?? "";
      name = file.endsWith("/node") ? "node exe" : file === "[heap]" ? "malloc [heap]" : file ? "other files" : "anon";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]) / 1024;
  }
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  out["VmRSS"] = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

const cp = await startControlPlane({ families: "dual", users: [{ name: USER, groups: ["system:masters"] }] });
try {
  await installCRD(cp);
  const client = new KubeClient(cp.kubeConfig(), "memprobe");
  const raw = new RawClient(cp.kubeConfig());
  const namespaces = Array.from({ length: 50 }, (_, i) => `mem-${i}`);
  await createNamespaces(raw, namespaces);
  await createServices(raw, namespaces, 0, n);
  const kubeconfig = cp.writeKubeconfig(cp.user(USER));
  if (auditMode) {
    const reps = Number(argv[1]);
    const times: Record<string, number[][]> = {};
    for (let rep = 0; rep < reps; rep++) {
      for (const variant of nodeFlags) {
        const name = `audit-${rep}-${Object.keys(times).length}-${variant.length}`.replace(/[^a-z0-9-]/g, "");
        await client.create(MIGRATION_PLANS, undefined, planBody(name, namespaces));
        const w = await new PlanWatcher(client, name).start();
        const flags = variant.split(" ").filter(Boolean);
        const t0 = performance.now();
        const child = operator(flags, kubeconfig, "memprobe-audit.log");
        const t1 = await w.until((p) => conditionMet(p, "Audited"), "Audited", 300_000);
        const cpu = cpuMs(child.pid);
        await sleep(3000);
        const rss = rssBytes(child.pid) / 2 ** 20;
        w.stop();
        await deletePlan(client, name).finally(() => child.stop());
        (times[variant] ??= []).push([Math.round(t1 - t0), cpu, Math.round(rss)]);
      }
    }
    console.log(JSON.stringify({ n, times }));
    await raw.close();
  } else await rollout(client, raw, namespaces, kubeconfig);
} finally {
  await cp.stop();
}

async function rollout(client: KubeClient, raw: RawClient, namespaces: string[], kubeconfig: string): Promise<void> {
  await client.create(
    MIGRATION_PLANS,
    undefined,
    planBody("mem", namespaces, { rollout: { batchSize: "100%", pauseBetweenBatches: "0s" } }),
  );

  const watcher = await new PlanWatcher(client, "mem").start();
  const op = operator(nodeFlags, kubeconfig, `memprobe-${n}.log`);
  try {
    await watcher.until((p) => conditionMet(p, "Audited"), "Audited", 300_000);
    await sleep(3000);
    const audited = smaps(op.pid);
    const promoted = await client.patch<{ metadata: { generation: number } }>(
      MIGRATION_PLANS,
      undefined,
      "mem",
      { spec: { targetPhase: "DualStack" } },
      "merge",
    );
    const t0 = performance.now();
    const cpu0 = cpuMs(op.pid);
    await watcher.until(
      (p) => p.metadata.generation === promoted.metadata.generation && conditionMet(p, "DualStackComplete"),
      "DualStackComplete",
      1_800_000,
    );
    const ms = performance.now() - t0;
    const cpu = cpuMs(op.pid) - cpu0;
    await sleep(8000);
    console.log(
      JSON.stringify({
        n,
        cli,
        nodeFlags,
        rolloutS: Math.round(ms / 100) / 10,
        cpu,
        audited,
        rolledOut: smaps(op.pid),
      }),
    );
    // With --heapsnapshot-signal=SIG among the flags: a heap snapshot of the rolled-out operator, in the cwd.
    const signal = nodeFlags.find((f) => f.startsWith("--heapsnapshot-signal="))?.split("=")[1];
    if (signal) {
      process.kill(op.pid, signal);
      await sleep(20_000);
    }
  } finally {
    await op.stop();
    watcher.stop();
    await raw.close();
  }
}
