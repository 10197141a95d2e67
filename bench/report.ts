// bench/README.md and bench/audit-scaling.svg from the results, so the figures in them are always the last run's.
import type { RequestCounts } from "./lib.js";
import { median } from "./lib.js";
import type { AuditPoint, Results } from "./results.js";

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const x = (ratio: number) => `${ratio.toFixed(2)}×`;
const opt = (ms: number | undefined) => (ms === undefined ? "—" : s(ms));
const runs = (values: number[], fmt: (v: number) => string) => values.map(fmt).join(", ");

function countsLine(counts: RequestCounts): string {
  const entries = Object.entries(counts).filter(([, v]) => v > 0);
  return entries.length ? entries.map(([k, v]) => `${k}: ${Math.round(v)}`).join("; ") : "none";
}

/**
 * The figures of issue #14 as `make bench` measured them before its changes (the run of 2026-11-25, and for RSS
 * as shipped a run by hand of `ipv6-migrate operator` without NODE_OPTIONS), quoted next to this run's.
 */
const BEFORE_14 = {
  shipped3k: "316 MiB vs 39 MiB (8.10×)",
  deployment10k: "177 MiB vs 56 MiB (3.19×)",
  growth: "26 MiB (client-go 27 MiB)",
  rollout1k: "2.29×",
  requests: "1 dry run + 1 PATCH + 1.002 Event",
  audit10k: "1.44×",
  statusWrites: "unmeasured",
};

const n = (count: number) => count.toLocaleString("en");
const rss = (op: number, go: number) => `${mib(op)} vs ${mib(go)} (${x(op / go)})`;

export function renderReadme(r: Results): string {
  const m = r.machine;
  const mem = r.memory;
  const lines: string[] = [];
  const p = (line = "") => lines.push(line);
  const audit = (size: number) => r.audit.points.find((pt) => pt.services === size);
  const rollout = (size: number) => r.rollouts.find((ro) => ro.services === size);
  const first = r.audit.points[0];
  const tenK = audit(10_000) ?? r.audit.points.at(-1);

  p("# Benchmarks");
  p();
  p("The operator, started through its real entry point (`ipv6-migrate operator`), against a floor measured in the");
  p("same run on the same local control plane (etcd + kube-apiserver from `testenv/`). Every timing at the first");
  p(`size is run ${r.reps} times and the median is reported; the larger rollouts, minutes each, once. The individual`);
  p("runs are in [results.json](results.json). This file, `results.json` and `audit-scaling.svg` are written by the");
  p("benchmark itself.");
  p();
  p("```sh");
  p("make bench        # build + testenv + node dist/bench/run.js");
  p(
    "# a quick look: BENCH_SIZES=1000,5000 BENCH_REPS=1 BENCH_STEADY_S=10 BENCH_ROLLOUT=200,500 BENCH_SWEEP=4,8 node dist/bench/run.js",
  );
  p("```");
  p();
  p(`The last run took ${Math.floor(r.durationS / 60)} min ${r.durationS % 60} s (${r.generatedAt}). Logs of every`);
  p("operator and helper process are kept in `bench/out/` (not committed).");
  p();
  p("## Machine");
  p();
  p("| | |");
  p("| --- | --- |");
  p(`| CPU | ${m.cpus} × ${m.cpuModel} |`);
  p(`| memory | ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB |`);
  p(`| kernel | ${m.kernel} |`);
  p(`| Node | ${m.node} (@kubernetes/client-node ${m.clientNode}) |`);
  p(`| Go | ${m.go} (k8s.io/client-go ${m.clientGo}) |`);
  p(`| Kubernetes (kube-apiserver) | ${m.kubernetes} |`);
  p(`| etcd | ${m.etcd} |`);
  p();
  p("## Summary (issue #14)");
  p();
  p("Each figure is a ratio against a floor measured in the same run on the same kind of control plane.");
  p();
  p("| figure | before #14 | this run | goal |");
  p("| --- | --- | --- | --- |");
  for (const size of [3000, 10_000]) {
    const ro = rollout(size);
    if (!ro) continue;
    p(
      `| RSS as shipped (\`ipv6-migrate operator\`, no outside flags), ${n(size)} Services, after a rollout, vs client-go's informer | ${size === 3000 ? BEFORE_14.shipped3k : "—"} | ${rss(ro.memory.operatorRssBytes, ro.memory.clientGoRssBytes)} | ≤ ${size === 3000 ? "2.5" : "2"}× |`,
    );
  }
  p(
    `| RSS with ${n(mem.services)} Services, with the Deployment's env, vs client-go's informer | ${BEFORE_14.deployment10k} | ${rss(mem.operatorRssMedianBytes, mem.clientGoRssMedianBytes)} | ≤ 2× |`,
  );
  if (first && tenK && first !== tenK) {
    const grow = (values: (pt: AuditPoint) => number[]) => median(values(tenK)) - median(values(first));
    p(
      `| RSS growth from ${n(first.services)} to ${n(tenK.services)} Services (audit; as shipped / with the Deployment's env) | ${BEFORE_14.growth} | ${mib(grow((pt) => pt.operatorRssBytes))} / ${mib(grow((pt) => pt.deploymentRssBytes))} (client-go ${mib(grow((pt) => pt.clientGoRssBytes))}) | ≤ client-go's |`,
    );
  }
  for (const ro of r.rollouts) {
    p(
      `| dual-stack rollout, ${n(ro.services)} Services, batch 100%, vs raw PATCHes (${ro.concurrency} in flight) | ${ro.services === 1000 ? BEFORE_14.rollout1k : "—"} | ${s(ro.operatorMedianMs)} vs ${s(ro.baselineMedianMs)} (${x(ro.ratio)}) | ≤ 1.25× |`,
    );
  }
  for (const ro of r.rollouts) {
    const ps = ro.perService;
    p(
      `| requests per Service moved, ${n(ro.services)} Services | ${ro.services === 1000 ? BEFORE_14.requests : "—"} | ${ps.serviceDryRunPatches} dry run + ${ps.servicePatches} PATCH + ${ps.events} Event + ${ps.planStatus} status (${ps.total}) | 1 PATCH (+ at most 1 Event) |`,
    );
  }
  for (const size of [10_000, 20_000]) {
    const pt = audit(size);
    if (!pt) continue;
    p(
      `| audit of ${n(size)} Services, spawn → \`Audited\` (as shipped), vs a paginated LIST | ${size === 10_000 ? BEFORE_14.audit10k : "—"} | ${s(pt.operatorMedianMs)} vs ${s(pt.baselineMedianMs)} (${x(pt.ratio)}) | ≤ 1.2× |`,
    );
  }
  const big = r.rollouts.at(-1);
  if (big) {
    p(
      `| plan status writes during the ${n(big.services)}-Service rollout | ${BEFORE_14.statusWrites} | ${big.statusWrites.count} in ${s(big.operatorMedianMs)} (${big.statusWrites.perSecond.toFixed(2)}/s; at most ${big.statusWrites.maxInOneSecond} in any 1 s) | ≤ ~1/s per plan |`,
    );
  }
  const sweep = r.concurrencySweep;
  if (sweep.points.length) {
    const best = sweep.points.reduce((a, b) => (b.ms < a.ms ? b : a));
    p(
      `| raw PATCHes of ${n(sweep.services)} Services by number in flight (--write-concurrency defaults to ${r.rollouts[0]?.concurrency ?? ""}) | — | ${sweep.points.map((pt) => `${pt.concurrency}: ${s(pt.ms)}`).join(", ")}; fastest ${best.concurrency} | a sane default |`,
    );
  }
  p();

  p("## 1. Audit: time to `Audited`");
  p();
  p(`N Services, spread over ${r.audit.namespaces} namespaces, and a plan (targetPhase Audit) that names all`);
  p(
    `of them, created before the operator starts. One control plane serves ${r.audit.points.map((pt) => n(pt.services)).join(", ")} (Services are added,`,
  );
  p("never recreated); each run is a fresh operator process and a fresh plan.");
  p();
  p("- **operator**: spawn of `node dist/src/cli/main.js operator` until the plan's `Audited` condition is True at");
  p("  its generation, seen by a watch on the plan (so within milliseconds, without polling); as shipped (no");
  p("  `NODE_OPTIONS`: the program re-executes itself with its V8 flags, which is in its time), and again with the");
  p("  Deployment's env (config/manager: `NODE_OPTIONS`, `MALLOC_ARENA_MAX`);");
  p("- **floor**: spawn of `node dist/bench/list-baseline.js` until it has read the last page of");
  p("  `CoreV1Api.listServiceForAllNamespaces({ limit: 500, _continue })`, client-node's own API; timed from spawn");
  p("  too, so both pay Node's start and module loading, and both keep every object they read;");
  p("- **client-go** (for reference): spawn of `informer-baseline` until its Service informer `HasSynced`.");
  p();
  p(
    "| Services | operator (as shipped) | with the Deployment's env | floor | ratio (as shipped) | client-go informer synced |",
  );
  p("| --- | --- | --- | --- | --- | --- |");
  for (const pt of r.audit.points) {
    p(
      `| ${n(pt.services)} | ${s(pt.operatorMedianMs)} | ${s(median(pt.deploymentMs))} | ${s(pt.baselineMedianMs)} | ${x(pt.ratio)} | ${s(pt.clientGoSyncMedianMs)} |`,
    );
  }
  p();
  p("Where the operator's time goes (as shipped, medians, from its log) and what each process burnt in CPU:");
  p();
  p(
    "| Services | spawn → caches synced | → first preflight scan done | → `Audited` seen | operator CPU | floor: LIST alone | floor CPU |",
  );
  p("| --- | --- | --- | --- | --- | --- | --- |");
  for (const pt of r.audit.points) {
    p(
      `| ${n(pt.services)} | ${s(median(pt.operatorCachesSyncedMs))} | ${s(median(pt.operatorScanDoneMs))} | ${s(pt.operatorMedianMs)} | ${s(median(pt.operatorCpuMs))} | ${s(median(pt.baselineListMs))} | ${s(median(pt.baselineCpuMs))} |`,
    );
  }
  p();
  p("Runs (ms):");
  p();
  for (const pt of r.audit.points) {
    const ms = (v: number) => String(Math.round(v));
    p(
      `- ${n(pt.services)}: operator ${runs(pt.operatorMs, ms)}; with the Deployment's env ${runs(pt.deploymentMs, ms)}; floor ${runs(pt.baselineMs, ms)}; client-go ${runs(pt.clientGoSyncMs, ms)}`,
    );
  }
  p();
  p("![Audit time against the number of Services](audit-scaling.svg)");
  p();

  p("## 2. Dual-stack rollout");
  p();
  p(`N IPv4 ClusterIP Services over ${r.audit.namespaces} namespaces, a plan with`);
  p('`batchSize: "100%"` and `pauseBetweenBatches: "0s"`, audited first; then the plan is promoted to DualStack');
  p("with one PATCH and timed until `DualStackComplete` is True at the new generation. The operator runs as shipped.");
  p('The floor makes the same number of merge PATCHes (`{"spec":{"ipFamilyPolicy":"PreferDualStack"}}`) with as');
  p("many in flight as the operator's `--write-concurrency` (default), on a second identical set of Services. Each");
  p("side gets its own fresh control plane holding just its N Services: kube-apiserver's ClusterIP allocator does");
  p("work in proportion to the IPAddress objects that exist (see Notes), so a floor run after the operator's new");
  p("IPv6 addresses would pay more than the operator. Sides alternate in order from run to run. Neither the");
  p("operator's start nor its audit is in its time.");
  p();
  for (const ro of r.rollouts) {
    p(`### ${n(ro.services)} Services`);
    p();
    p(
      "| run | operator | floor: PATCH | the same through KubeClient | operator's batch, start → finish | operator CPU | apiserver + etcd CPU: operator / PATCH / KubeClient |",
    );
    p("| --- | --- | --- | --- | --- | --- | --- |");
    ro.reps.forEach((rep, i) => {
      const c = rep.serverCpuMs;
      p(
        `| ${i + 1} | ${s(rep.operatorMs)} | ${s(rep.baselineMs)} | ${opt(rep.kubeClientMs)} | ${Number.isFinite(rep.batchMs) ? s(rep.batchMs) : "—"} (${rep.batches} batch${rep.batches === 1 ? "" : "es"}) | ${s(rep.operatorCpuMs)} | ${s(c.operator)} / ${s(c.baseline)} / ${opt(c.kubeClient)} |`,
      );
    });
    p(`| **median** | **${s(ro.operatorMedianMs)}** | **${s(ro.baselineMedianMs)}** | | | | |`);
    p();
    p(`Ratio operator / floor: **${x(ro.ratio)}**.`);
    p();
  }
  p('The floors use one keep-alive connection pool (undici `Agent`), as client-go would; "through KubeClient" is');
  p("the same PATCHes made with `src/runtime/client.ts`, the operator's client, to show what the client itself");
  p("costs (first run only: it is a diagnosis, not a ratio).");
  p();

  p("## 3. Writes");
  p();
  p("The operator's writes come from kube-apiserver's audit log (the operator runs as its own user); the same");
  p("windows as `apiserver_request_total` counts them (every client, `dry_run` labelled, our one promotion");
  p("PATCH taken out) are listed below as a cross-check.");
  p();
  p("Per migrated Service, during the rollout (promotion → `DualStackComplete` + 5 s), median of the runs:");
  p();
  p("| Services | Service PATCH | Service PATCH, dry run | Events | plan status | other | total |");
  p("| --- | --- | --- | --- | --- | --- | --- |");
  for (const ro of r.rollouts) {
    const ps = ro.perService;
    p(
      `| ${n(ro.services)} | ${ps.servicePatches} | ${ps.serviceDryRunPatches} | ${ps.events} | ${ps.planStatus} | ${ps.other} | ${ps.total} |`,
    );
  }
  p();
  p("Plan status writes during each rollout (from the audit log), and the operator's own counts at its end");
  p("(`status_writes_total`, `events_recorded_total{result}`, which include the audit before the rollout):");
  p();
  p(
    "| Services | run | status writes in the rollout | per second | most in any 1 s | operator: status writes / Events written / dropped / failed |",
  );
  p("| --- | --- | --- | --- | --- | --- |");
  for (const ro of r.rollouts) {
    ro.reps.forEach((rep, i) => {
      const e = rep.operatorEvents;
      p(
        `| ${n(ro.services)} | ${i + 1} | ${rep.statusWriteAtMs.length} | ${(rep.statusWriteAtMs.length / (rep.operatorMs / 1000)).toFixed(2)} | ${maxPerSecond(rep.statusWriteAtMs)} | ${e["status writes"] ?? 0} / ${e.written ?? 0} / ${e.dropped ?? 0} / ${e.failed ?? 0} |`,
      );
    });
  }
  p();
  const sp = r.writes.steadyPerMinute;
  p(
    `At steady state (${sp.windowS} s of waiting after \`DualStackComplete\` + 5 s, in the first run), writes per minute:`,
  );
  p();
  p("| Service and plan | Events | other | total (operator) | kube-apiserver's own (Leases, IPAddresses) |");
  p("| --- | --- | --- | --- | --- |");
  p(`| ${sp.serviceAndPlan} | ${sp.events} | ${sp.other} | ${sp.total} | ${sp.apiserverOwn} |`);
  p();
  p("Every run, by verb and resource:");
  p();
  for (const ro of r.rollouts) {
    ro.reps.forEach((rep, i) => {
      const tag = `${n(ro.services)} run ${i + 1}`;
      p(`- ${tag}, rollout, audit log: ${countsLine(rep.rolloutWrites)}`);
      p(`- ${tag}, rollout, /metrics: ${countsLine(rep.rolloutWritesMetrics)}`);
      const st = rep.steady;
      if (st) {
        p(`- ${tag}, steady ${st.windowS} s, audit log: ${countsLine(st.writes)}`);
        p(`- ${tag}, steady ${st.windowS} s, /metrics: ${countsLine(st.writesMetrics)}`);
      }
      p(`- ${tag}: ${rep.reconciles} reconciles in all${st ? `, ${st.reconciles} of them in the steady window` : ""}`);
    });
  }
  p();

  p("## 4. Memory");
  p();
  p("VmRSS from `/proc/<pid>/status`, read from outside both processes. The floor is");
  p("`testenv/kube/cmd/informer-baseline`: client-go's `SharedInformerFactory` with a Service informer (JSON, like");
  p("the operator), built by `testenv/build.sh --tools`. Heap: V8's used heap (the operator's");
  p("`nodejs_heap_size_used_bytes`) and Go's `HeapInuse`, with Go's live heap after a forced GC for reference.");
  p();
  p("After a rollout, as shipped: the operator 3 s after `DualStackComplete` + 5 s; client-go's informer started");
  p("on the same cluster after the operator stopped, 3 s after `HasSynced` (the same, now dual-stack, Services):");
  p();
  p("| Services | operator RSS | operator heap used | client-go RSS | ratio | runs: operator / client-go |");
  p("| --- | --- | --- | --- | --- | --- |");
  for (const ro of r.rollouts) {
    p(
      `| ${n(ro.services)} | ${mib(ro.memory.operatorRssBytes)} | ${mib(ro.memory.operatorHeapUsedBytes)} | ${mib(ro.memory.clientGoRssBytes)} | ${x(ro.memory.ratio)} | ${runs(
        ro.reps.map((rep) => rep.operatorRssBytes),
        mib,
      )} / ${runs(
        ro.reps.map((rep) => rep.clientGoRssBytes),
        mib,
      )} |`,
    );
  }
  p();
  p("During the audit, 3 s after `Audited` (operator) or after `HasSynced` (client-go):");
  p();
  p(
    "| Services | operator RSS, as shipped | heap used | with the Deployment's env | heap used | client-go RSS | client-go heap in use | client-go live heap | ratio as shipped / with the Deployment's env | list floor: client-node loaded / holding the Services |",
  );
  p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const pt of r.audit.points) {
    const op = median(pt.operatorRssBytes);
    const dep = median(pt.deploymentRssBytes);
    const go = median(pt.clientGoRssBytes);
    p(
      `| ${n(pt.services)} | ${mib(op)} | ${mib(median(pt.operatorHeapUsedBytes))} | ${mib(dep)} | ${mib(median(pt.deploymentHeapUsedBytes))} | ${mib(go)} | ${mib(median(pt.clientGoHeapInuseBytes))} | ${mib(median(pt.clientGoLiveHeapBytes))} | ${x(op / go)} / ${x(dep / go)} | ${mib(median(pt.nodeClientRssAfterImportBytes))} / ${mib(median(pt.baselineRssBytes))} |`,
    );
  }
  p();
  p(`At ${n(mem.services)} Services, with the Deployment's env: operator RSS / client-go RSS = **${x(mem.ratio)}**.`);
  p();

  p("## 5. Writes in flight");
  p();
  p(`Raw merge PATCHes (to PreferDualStack) of ${n(sweep.services)} Services, each count on a fresh cluster:`);
  p();
  p("| in flight | time |");
  p("| --- | --- |");
  for (const pt of sweep.points) p(`| ${pt.concurrency} | ${s(pt.ms)} |`);
  p();
  lines.push(notes(r));
  return lines.join("\n") + "\n";
}

/** The most of these moments (ms) within any 1 s. */
export function maxPerSecond(atMs: number[]): number {
  const sorted = [...atMs].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] ?? 0) - (sorted[j] ?? 0) >= 1000) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/**
 * What the figures say about the operator. The reasoning was written after reading runs (and CPU profiles of the
 * operator, `node --cpu-prof`, taken while making the changes of #14); the figures in it are the last run's.
 */
function notes(r: Results): string {
  const first = r.audit.points[0];
  const last = r.audit.points.at(-1);
  const ro1 = r.rollouts[0];
  const kcRep = ro1?.reps.find((rep) => rep.kubeClientMs !== undefined);
  const perK = (c: { from: number; to: number; ms: number }) => `${s((c.ms * 1000) / (c.to - c.from))}`;
  const c0 = r.audit.creates[0];
  const cN = r.audit.creates.at(-1);
  const out: string[] = ["## Notes: what the figures say about the operator", ""];
  out.push(
    "1. **What #14 changed.** (a) Fixed cost: the CLI loads client-node's `dist/config.js` instead of its index, and",
    "   a resolve hook (`src/runtime/startup.ts`, `src/runtime/client-node-deps.ts`) gives `config.js` its two names",
    "   from the generated code without the generated APIs and models, undici's dispatchers without its index",
    "   (fetch, WebSocket, caches, mocks), and OIDC and SOCKS support only when a kubeconfig asks for them; the",
    "   informers watch through `KubeClient` instead of client-node's `Watch` (which needs fetch): 78 MiB of RSS",
    "   after loading everything the operator uses, against 130 MiB with the index. (b) V8's limits: `ipv6-migrate",
    "   operator` re-executes itself once (`process.execve`, same pid) with `--max-semi-space-size=2`,",
    "   `--heap-growing-percent=20`, `--max-opt=1` (the baseline compiler only: after a 3,000-Service rollout 98 MiB",
    "   of RSS instead of 116, for 25% more operator CPU in the rollout and the same rollout time), a 1 s",
    "   memory-reducer delay and, in a container, `--max-old-space-size` at 75% of its memory limit, each unless",
    "   the user gave it; `MALLOC_ARENA_MAX=2` unless set. (c) The in-place PATCH has no dry run (its answer's",
    "   families are checked, and a wrong answer is put back); the cutover keeps its dry run. (d) Events go out at",
    "   most 2 at a time, and a routine one only once no Service write is in flight: a batch's Events follow its",
    "   writes instead of sharing the API server with them (Warnings go at once). So the Event counts of the",
    "   requests-per-Service rows are those written by 5 s after `DualStackComplete`; the rest follow, and until",
    "   they are sent their queue is held in memory (so the memory figures after a rollout include it), as plain",
    "   data: 1.0 KiB per queued Event (10,000 queued: 9.9 MiB of heap, measured with `--expose-gc`; 25.3 MiB as",
    "   Event objects with their request closures, as they were first queued). (e) `KubeClient` sends with",
    "   undici's `request()` instead of `fetch()`, whose WHATWG Request/Headers/stream objects were a third of the",
    "   operator's CPU in a rollout. (f) A status write that changes only counts waits a second after the plan's",
    "   last one. (g) The audit's classification copies specs without `structuredClone` and parses each address once.",
    "   (h) Later, from CPU profiles and a heap snapshot of a 20,000-Service audit and a 3,000-Service rollout: a",
    "   plan being deleted is not scanned (the bench's previous run's plan, deleted as the next operator started,",
    "   cost that operator a whole scan); a value's hard-coded ClusterIPs are looked up in an index instead of",
    "   matching every Service against every value of every page; a Service's address of a family is read from",
    "   the apiserver's pairing of `clusterIPs` with `ipFamilies` instead of parsed on every reconcile; `node:http`",
    "   and `node:https` are `require()`d (an ES import of them loads Node's own copy of undici); sorts compare code",
    "   units instead of `localeCompare` (ICU's collation tables were 2.5 MiB of the executable's pages); cached",
    "   Services share what thousands of them repeat (the trimmed `managedFields`, ipFamilies, policies, the state",
    "   label), which took the heap held by each cached Service from 2.1 KB to 1.75 KB after a rollout.",
  );
  if (kcRep?.kubeClientMs !== undefined) {
    out.push(
      `   The client alone: ${n(ro1?.services ?? 0)} PATCHes take ${s(kcRep.kubeClientMs)} through KubeClient against ${s(kcRep.baselineMs)} raw in the same run.`,
    );
  }
  out.push("");
  if (first && last) {
    out.push(
      "2. **Memory: what remains is mostly fixed.** Node alone" +
        (r.memory.bareNodeRssBytes ? ` is ${mib(r.memory.bareNodeRssBytes)}` : " is about 42 MiB") +
        "; Node's https/tls, undici (with its llhttp WebAssembly), winston and prom-client bring it to about 78 MiB",
      "   before the first request, against client-go's whole process at 28-40 MiB for these clusters. Of the",
      "   operator's RSS after a 3,000-Service rollout (`bench/memprobe.ts`, from `/proc/<pid>/smaps`), 41 MiB are",
      "   pages of the `node` executable itself (33 MiB for `node -e 0`; TLS and WebAssembly touch more of it, and",
      "   with Maglev and TurboFan 52 MiB), 39 MiB anonymous memory (mostly the V8 heap: 35 MiB committed, 22 MiB",
      "   used, of which the 3,000 cached Services are about 4.5 MiB) and 8 MiB of malloc's heap: 92 MiB in all. So",
      "   at 3,000 Services the ratio is bounded below by about 2× before any object is cached.",
      "   Semi-spaces of 2 MiB instead of 8 took 14 MiB off both",
      "   the audit's and the rollout's RSS (3-5% more CPU); 1 MiB, or glibc's trim and mmap thresholds, no more;",
      "   `--single-threaded-gc` added 28 MiB.",
      "   What grows with N is the",
      `   V8 heap: ${mib(median(first.operatorHeapUsedBytes))} used at ${n(first.services)} Services, ${mib(median(last.operatorHeapUsedBytes))} at ${n(last.services)} (as shipped).`,
      "",
    );
  }
  out.push(
    "3. **Not the operator, but it shapes every write figure here:** kube-apiserver v1.37.2's ClusterIP allocator",
    "   recomputes its allocated/available gauges after every allocation by listing and parsing every IPAddress",
    "   object (`pkg/registry/core/service/ipallocator/ipallocator.go`: `a.metrics.setAllocated(a.metricLabel,",
    "   a.Used())`, and `Free()` calls `Used()` again), so each new ClusterIP costs time in proportion to the",
    "   ClusterIPs that exist." +
      (c0 && cN
        ? ` Creating Services took ${perK(c0)} per 1,000 for the first ${n(c0.to)} and ${perK(cN)} per 1,000 from ${n(cN.from)} to ${n(cN.to)}`
        : "") +
      ` (${Math.round(r.audit.creates.reduce((sum, c) => sum + c.ms, 0) / 1000)} s of this run's ${Math.round(r.durationS)} s went to filling the audit's cluster).`,
    "   It is why PATCHes that add an IPv6 ClusterIP take seconds per thousand even for the floor, and why each",
    "   side of a rollout gets its own cluster.",
    "",
    ...rolloutNote(r),
    ...auditNote(r),
    "6. **Noise.** The machine (2 cores) is shared with other work: the same step varies by up to 2× between runs",
    "   (see the individual runs in the tables). Medians steady the ratios, not the absolute times; the larger",
    "   rollouts are single runs.",
  );
  return out.join("\n") + "\n";
}

/** Where the audit's time beyond the LIST goes, at the smallest and the largest size. */
function auditNote(r: Results): string[] {
  const first = r.audit.points[0];
  const last = r.audit.points.at(-1);
  if (!first || !last) return [];
  const steps = (pt: AuditPoint) =>
    `${s(median(pt.operatorCachesSyncedMs))} to caches synced, ${s(median(pt.operatorScanDoneMs) - median(pt.operatorCachesSyncedMs))} of preflight scan, ${s(pt.operatorMedianMs - median(pt.operatorScanDoneMs))} from there to \`Audited\``;
  return [
    `5. **Where the audit's time goes** (as shipped): at ${n(first.services)} Services ${steps(first)}, against the`,
    `   floor's ${s(first.baselineMedianMs)} in all (its LIST alone ${s(median(first.baselineListMs))}). At ${n(last.services)}: ${steps(last)}, against ${s(last.baselineMedianMs)}.`,
    "   The floor reads through client-node's generated API, which turns every item into its model classes; the",
    "   operator's informers keep the parsed JSON, trimmed. What the operator adds is the preflight scan (the Pods",
    "   and ConfigMaps of 50 namespaces, 4 at a time), the classification and the status write. With the",
    `   Deployment's env (its NODE_OPTIONS and MALLOC_ARENA_MAX) the same audit took ${s(median(last.deploymentMs))}.`,
    "",
  ];
}

/** What the rollout's time beyond the raw PATCHes is made of, from the first size's runs. */
function rolloutNote(r: Results): string[] {
  const ro = r.rollouts[0];
  if (!ro) return [];
  const serverOp = median(ro.reps.map((rep) => rep.serverCpuMs.operator));
  const serverFloor = median(ro.reps.map((rep) => rep.serverCpuMs.baseline));
  const opCpu = median(ro.reps.map((rep) => rep.operatorCpuMs));
  const batch = median(ro.reps.map((rep) => rep.batchMs).filter(Number.isFinite));
  return [
    `4. **What the rollout pays beyond the raw PATCHes** (${n(ro.services)} Services, medians): the operator's own batch,`,
    `   first write to last, took ${s(batch)} of its ${s(ro.operatorMedianMs)} (the rest: the reconcile after the promotion,`,
    "   with the preflight scan a new generation asks for, and the final status). kube-apiserver + etcd burnt",
    `   ${s(serverOp)} of CPU on the operator's rollout against ${s(serverFloor)} on the floor's PATCHes: each of the operator's`,
    "   PATCHes also writes the Service's record (labels, the original and applied specs as annotations), every",
    "   written Service goes out on the operator's watch, and one `Migrated` Event per Service is written behind the",
    `   writes. The operator itself used ${s(opCpu)} of CPU, on the same 2 cores as the server.`,
    "",
  ];
}

export function renderSvg(r: Results): string {
  const points = r.audit.points;
  const W = 780;
  const H = 420;
  const left = 64;
  const right = 220;
  const top = 40;
  const bottom = 56;
  const maxN = Math.max(...points.map((p) => p.services));
  const maxMs = Math.max(...points.flatMap((p) => [p.operatorMedianMs, p.baselineMedianMs, p.clientGoSyncMedianMs]));
  const step = niceStep(maxMs / 1000);
  const yMax = Math.ceil(maxMs / 1000 / step) * step;
  const px = (n: number) => left + (n / maxN) * (W - left - right);
  const py = (ms: number) => H - bottom - (ms / 1000 / yMax) * (H - top - bottom);
  const series = [
    { name: "operator → Audited", color: "#d62728", values: points.map((p) => p.operatorMedianMs) },
    { name: "client-node LIST floor", color: "#1f77b4", values: points.map((p) => p.baselineMedianMs) },
    {
      name: "client-go informer sync",
      color: "#2ca02c",
      values: points.map((p) => p.clientGoSyncMedianMs),
      dash: true,
    },
  ];
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${left}" y="22" font-size="14" font-weight="bold">Audit: from process start to every Service read (operator: to Audited), median of ${r.reps}</text>`,
  );
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    const y = py(v * 1000).toFixed(1);
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmtTick(v)} s</text>`);
  }
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="#333"/><line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="#333"/>`,
  );
  for (const p of points) {
    const xx = px(p.services).toFixed(1);
    out.push(`<line x1="${xx}" x2="${xx}" y1="${H - bottom}" y2="${H - bottom + 5}" stroke="#333"/>`);
    out.push(`<text x="${xx}" y="${H - bottom + 18}" text-anchor="middle">${p.services.toLocaleString("en")}</text>`);
  }
  out.push(
    `<text x="${(left + W - right) / 2}" y="${H - 14}" text-anchor="middle">Services (${r.audit.namespaces} namespaces)</text>`,
  );
  series.forEach((sr, i) => {
    const path = points.map(
      (p, j) => `${j ? "L" : "M"}${px(p.services).toFixed(1)},${py(sr.values[j] ?? 0).toFixed(1)}`,
    );
    out.push(
      `<path d="${path.join(" ")}" fill="none" stroke="${sr.color}" stroke-width="2"${sr.dash ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    points.forEach((p, j) => {
      const v = sr.values[j] ?? 0;
      out.push(`<circle cx="${px(p.services).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3.5" fill="${sr.color}"/>`);
      if (i < 2) {
        out.push(
          `<text x="${(px(p.services) - 6).toFixed(1)}" y="${(py(v) - 8).toFixed(1)}" text-anchor="end" fill="${sr.color}">${(v / 1000).toFixed(2)} s</text>`,
        );
      }
    });
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${W - right + 12}" x2="${W - right + 32}" y1="${ly}" y2="${ly}" stroke="${sr.color}" stroke-width="2"${sr.dash ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    out.push(`<text x="${W - right + 36}" y="${ly}" dominant-baseline="middle">${sr.name}</text>`);
  });
  points.forEach((p, i) => {
    out.push(
      `<text x="${W - right + 12}" y="${top + 90 + i * 18}">${p.services.toLocaleString("en")}: ratio ${p.ratio.toFixed(2)}×</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function niceStep(max: number): number {
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * pow) return m * pow;
  return 10 * pow;
}

function fmtTick(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
