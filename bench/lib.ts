// What the benchmarks share: bulk creation, the operator and the baselines as child processes, waiting on a
// plan's conditions, and the two views of the API server's request counts (its /metrics and its audit log).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, closeSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Watch, type KubeConfig } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { MIGRATION_PLANS, type MigrationPlan } from "../src/api/migrationplan.js";
import { NAMESPACES, SERVICES, isNotFound, type KubeClient, resourcePath } from "../src/runtime/client.js";
import { findCondition } from "../src/runtime/object.js";
import { freePort, WRITE_VERBS, type ControlPlane } from "../src/testenv/controlplane.js";
import { shippedContainer } from "../test/operator.js";

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/src/cli/main.js: the operator's real entry point. */
export const CLI = path.join(here, "../src/cli/main.js");
export const LIST_BASELINE = path.join(here, "list-baseline.js");
/** Operator and helper logs, kept for a look after a surprising figure (git-ignored). */
export const OUT_DIR = path.join(here, "../../bench/out");

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export const round = (n: number, digits = 0): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs `make(i)` for i in [from, to) with `inFlight` requests outstanding. */
export async function forEachConcurrently(
  from: number,
  to: number,
  inFlight: number,
  make: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = from;
  const worker = async () => {
    for (let i = next++; i < to; i = next++) await make(i);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, Math.max(0, to - from)) }, worker));
}

/**
 * Plain HTTPS with one keep-alive connection pool: the floor's client, and how the bench fills the cluster. It
 * is not KubeClient on purpose: KubeClient gets a new undici Agent from client-node for every request (see the
 * README), and a floor must not carry that cost.
 */
export class RawClient {
  private readonly agent: Agent;
  private readonly server: string;
  private readonly token: string;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    if (!cluster || !user?.token) throw new Error("RawClient needs a cluster and a token user");
    this.server = cluster.server.replace(/\/$/, "");
    this.token = user.token;
    this.agent = new Agent({
      connect: { ca: cluster.caData ? Buffer.from(cluster.caData, "base64") : undefined },
      keepAliveTimeout: 60_000,
    });
  }

  async send<T>(method: "POST" | "PATCH", route: string, body: unknown, contentType = "application/json"): Promise<T> {
    const response = await request(this.server + route, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.token}`, "content-type": contentType, accept: "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.body.text();
    if (response.statusCode >= 300) throw new Error(`${method} ${route}: ${response.statusCode} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }

  create<T>(route: string, body: unknown): Promise<T> {
    return this.send<T>("POST", route, body);
  }

  mergePatch<T>(route: string, body: unknown): Promise<T> {
    return this.send<T>("PATCH", route, body, "application/merge-patch+json");
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export async function createNamespaces(client: RawClient, names: string[]): Promise<void> {
  await forEachConcurrently(0, names.length, 16, (i) =>
    client.create(resourcePath(NAMESPACES), { metadata: { name: names[i] } }),
  );
}

/** A plain ClusterIP Service, as most of a real cluster's are. */
export function serviceBody(name: string): unknown {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, labels: { app: name } },
    spec: { selector: { app: name }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
  };
}

export interface ServiceRef {
  namespace: string;
  name: string;
}

/** Creates Services i in [from, to): svc-<i> in namespaces[i % namespaces.length], 16 in flight. */
export async function createServices(
  client: RawClient,
  namespaces: string[],
  from: number,
  to: number,
): Promise<ServiceRef[]> {
  const refs: ServiceRef[] = [];
  for (let i = from; i < to; i++) refs.push({ namespace: namespaces[i % namespaces.length] ?? "", name: `svc-${i}` });
  await forEachConcurrently(0, refs.length, 16, (i) => {
    const ref = refs[i];
    return client.create(resourcePath(SERVICES, ref.namespace), serviceBody(ref.name));
  });
  return refs;
}

export function planBody(name: string, namespaces: string[], extra: Partial<MigrationPlan["spec"]> = {}): unknown {
  return {
    apiVersion: "ipv6migration.io/v1alpha1",
    kind: "MigrationPlan",
    metadata: { name },
    spec: { targetPhase: "Audit", selector: { namespaces }, ...extra },
  };
}

/**
 * Deletes a plan and waits until its operator has let it go (removed the finalizer). Called while that operator
 * still runs, so that the next run's operator starts on a cluster holding its own plan only, and its time is not
 * the deletion of the one before.
 */
export async function deletePlan(client: KubeClient, name: string, timeoutMs = 60_000): Promise<void> {
  await client.delete(MIGRATION_PLANS, undefined, name);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      await client.get(MIGRATION_PLANS, undefined, name);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await sleep(100);
  }
  throw new Error(`plan ${name} was still there ${timeoutMs} ms after its deletion`);
}

export function conditionMet(plan: MigrationPlan | undefined, type: string): boolean {
  if (!plan) return false;
  const generation = plan.metadata.generation;
  const c = findCondition(plan.status?.conditions, type);
  return plan.status?.observedGeneration === generation && c?.status === "True" && c.observedGeneration === generation;
}

/**
 * Follows one plan through a watch, so that the moment a condition turns True is seen within milliseconds and
 * without a poll loop competing with the operator for the two cores. A slow poll backs the watch up.
 */
export class PlanWatcher {
  private latest: MigrationPlan | undefined;
  private waiters: { check: (plan: MigrationPlan) => boolean; resolve: (at: number) => void }[] = [];
  private controller: AbortController | undefined;
  private poller: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly name: string,
  ) {}

  async start(): Promise<this> {
    await this.startWatch();
    this.poller = setInterval(() => {
      this.client.get<MigrationPlan>(MIGRATION_PLANS, undefined, this.name).then(
        (plan) => this.seen(plan),
        () => undefined,
      );
    }, 2000);
    return this;
  }

  private async startWatch(): Promise<void> {
    if (this.closed) return;
    this.controller = await new Watch(this.client.kubeConfig).watch(
      resourcePath(MIGRATION_PLANS),
      { fieldSelector: `metadata.name=${this.name}` },
      (type: string, obj: MigrationPlan) => {
        if (type === "ADDED" || type === "MODIFIED") this.seen(obj);
      },
      () => {
        // The server ends watches after a while: carry on with a new one.
        if (!this.closed) void this.startWatch().catch(() => undefined);
      },
    );
  }

  private seen(plan: MigrationPlan): void {
    const at = performance.now();
    const newer =
      !this.latest || Number(plan.metadata.resourceVersion) >= Number(this.latest.metadata.resourceVersion ?? 0);
    if (!newer) return;
    this.latest = plan;
    this.waiters = this.waiters.filter((w) => {
      if (!w.check(plan)) return true;
      w.resolve(at);
      return false;
    });
  }

  get plan(): MigrationPlan | undefined {
    return this.latest;
  }

  /** Resolves with performance.now() of the event in which `check` first held. */
  until(check: (plan: MigrationPlan) => boolean, what: string, timeoutMs: number): Promise<number> {
    if (this.latest && check(this.latest)) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
        timeoutMs,
      );
      this.waiters.push({
        check,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
    });
  }

  stop(): void {
    this.closed = true;
    clearInterval(this.poller);
    this.controller?.abort();
  }
}

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** User + system CPU time of a process so far, from /proc/<pid>/stat (in clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * kube-apiserver's and etcd's pids, found by their flags in /proc: the control plane keeps its children to
 * itself, and their CPU time tells whether a write path is bound by the server or by the client.
 */
export function controlPlanePids(cp: ControlPlane): number[] {
  const marks = [`--secure-port=${cp.apiPort}`, `--listen-client-urls=${cp.etcdURL}`];
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (marks.some((m) => args.includes(m))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export function totalCpuMs(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
}

/** One child process with its output in a log file, not in this process (1k log lines must cost us nothing). */
export class Child {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  readonly startedAt: number;

  constructor(
    command: string,
    args: string[],
    logName: string,
    options: { env?: Record<string, string>; unsetEnv?: string[]; stdoutToLog?: boolean } = {},
  ) {
    mkdirSync(OUT_DIR, { recursive: true });
    const fd = openSync(path.join(OUT_DIR, logName), "w");
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
    for (const name of options.unsetEnv ?? []) delete env[name];
    this.startedAt = performance.now();
    this.child = spawn(command, args, { stdio: ["ignore", options.stdoutToLog ? fd : "pipe", fd], env });
    closeSync(fd);
    this.exit = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve(signal ? -1 : code)));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolves with the first stdout line and the performance.now() at which it arrived. */
  firstLine(timeoutMs: number): Promise<{ line: string; at: number }> {
    return new Promise((resolve, reject) => {
      let buffer = "";
      const timer = setTimeout(() => reject(new Error(`no output from ${this.pid} after ${timeoutMs} ms`)), timeoutMs);
      const onData = (chunk: string) => {
        const at = performance.now();
        buffer += chunk;
        const nl = buffer.indexOf("\n");
        if (nl < 0) return;
        clearTimeout(timer);
        this.child.stdout?.off("data", onData);
        resolve({ line: buffer.slice(0, nl), at });
      };
      this.child.stdout?.setEncoding("utf8").on("data", onData);
      void this.exit.then((code) => {
        clearTimeout(timer);
        reject(new Error(`process ${this.pid} exited with ${code} before printing`));
      });
    });
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 15_000);
    const code = await this.exit;
    clearTimeout(timer);
    return code;
  }
}

/**
 * How the operator is started: "shipped" as a user runs `ipv6-migrate operator` (no NODE_OPTIONS nor
 * MALLOC_ARENA_MAX from outside: what the program sets for itself), "deployment" with config/manager's env.
 */
export type OperatorEnv = "shipped" | "deployment";

/** The operator through `ipv6-migrate operator`, with /metrics on a free port for its heap and request counts. */
export class OperatorChild extends Child {
  constructor(
    readonly metricsPort: number,
    kubeconfig: string,
    logName: string,
    mode: OperatorEnv = "deployment",
    extraArgs: string[] = [],
  ) {
    super(
      process.execPath,
      [
        CLI,
        "operator",
        `--kubeconfig=${kubeconfig}`,
        `--metrics-bind-address=127.0.0.1:${metricsPort}`,
        // Plain HTTP: the bench reads its heap and request counts without a token.
        "--metrics-secure=false",
        "--health-probe-bind-address=0",
        // Debug adds one line per reconcile here ("preflight scan"), whose timestamp splits the audit time.
        "--log-level=debug",
        ...extraArgs,
      ],
      logName,
      // As config/manager runs it, its NODE_OPTIONS and MALLOC_ARENA_MAX shape both the speed and the RSS; as
      // shipped, none from this process's environment either.
      {
        env: mode === "deployment" ? { ...shippedContainer().env, LOG_FORMAT: "json" } : { LOG_FORMAT: "json" },
        unsetEnv: mode === "shipped" ? ["NODE_OPTIONS", "MALLOC_ARENA_MAX"] : [],
        stdoutToLog: true,
      },
    );
  }

  static async start(
    kubeconfig: string,
    logName: string,
    mode: OperatorEnv = "deployment",
    extraArgs: string[] = [],
  ): Promise<OperatorChild> {
    return new OperatorChild(await freePort(), kubeconfig, logName, mode, extraArgs);
  }

  async metrics(): Promise<Sample[]> {
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    return parsePrometheus(await response.text());
  }
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, enough of it for counters and gauges. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ""] = l[2] ?? "";
    out.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return out;
}

export function metricValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Requests counted by kube-apiserver, keyed "VERB resource[/subresource]" (+ " dry-run" where labelled). */
export type RequestCounts = Record<string, number>;

export async function apiserverRequests(cp: ControlPlane): Promise<RequestCounts> {
  const { status, body } = await cp.get("/metrics");
  if (status !== 200) throw new Error(`GET /metrics: ${status}`);
  const counts: RequestCounts = {};
  for (const s of parsePrometheus(body)) {
    if (s.name !== "apiserver_request_total") continue;
    const l = s.labels;
    const resource = `${l.resource ?? ""}${l.subresource ? `/${l.subresource}` : ""}`;
    const key = `${l.verb ?? ""} ${resource}${l.dry_run ? " dry-run" : ""}`;
    counts[key] = (counts[key] ?? 0) + s.value;
  }
  return counts;
}

export function diffCounts(after: RequestCounts, before: RequestCounts): RequestCounts {
  const out: RequestCounts = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d > 0) out[key] = d;
  }
  return sortCounts(out);
}

function sortCounts(counts: RequestCounts): RequestCounts {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

const METRIC_WRITE_VERBS = new Set(["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE"]);

export function onlyWrites(counts: RequestCounts): RequestCounts {
  return Object.fromEntries(Object.entries(counts).filter(([key]) => METRIC_WRITE_VERBS.has(key.split(" ")[0] ?? "")));
}

export function total(counts: RequestCounts, match: (key: string) => boolean = () => true): number {
  return Object.entries(counts)
    .filter(([key]) => match(key))
    .reduce((sum, [, v]) => sum + v, 0);
}

/** A user's completed writes from the audit log, from event index `from` on, keyed like RequestCounts. */
export function auditWrites(cp: ControlPlane, user: string, from: number): { counts: RequestCounts; end: number } {
  const events = cp.auditEvents(user);
  const counts: RequestCounts = {};
  for (const e of events.slice(from)) {
    if (!WRITE_VERBS.has(e.verb)) continue;
    const ref = e.objectRef ?? {};
    const dry = /[?&]dryRun=/.test(e.requestURI) ? " dry-run" : "";
    const key = `${e.verb.toUpperCase()} ${ref.resource ?? ""}${ref.subresource ? `/${ref.subresource}` : ""}${dry}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return { counts: sortCounts(counts), end: events.length };
}
