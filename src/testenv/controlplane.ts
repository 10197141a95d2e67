// A local control plane (etcd + kube-apiserver, built from Go modules by testenv/build.sh) for the tests and
// for `ipv6-migrate demo`. Like controller-runtime's envtest it runs no scheduler, controller-manager or
// kubelet: what it tests is what the API server itself decides.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomInt } from "node:crypto";
import { createWriteStream, existsSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";

export type ServiceFamilies = "dual" | "ipv4" | "ipv6-dual" | "ipv6";

/** Service ranges per variant: the first range is the cluster's primary family. */
export const SERVICE_RANGES: Record<ServiceFamilies, string[]> = {
  dual: ["10.96.0.0/16", "fd00:10:96::/108"],
  ipv4: ["10.96.0.0/16"],
  "ipv6-dual": ["fd00:10:96::/108", "10.96.0.0/16"],
  ipv6: ["fd00:10:96::/108"],
};

export interface ControlPlaneOptions {
  families?: ServiceFamilies;
  /** Overrides the ranges of `families`, e.g. to try a global or documentation IPv6 range. */
  serviceClusterIPRanges?: string[];
  /** Extra kube-apiserver flags, as `--name=value`. */
  apiServerArgs?: string[];
  /** More token users, e.g. an operator identity in system:masters whose requests the audit log tells apart. */
  users?: { name: string; groups?: string[] }[];
  /** Keep etcd and apiserver output in the temp dir (always kept while running; removed on stop). */
  quiet?: boolean;
}

export interface TokenUser {
  name: string;
  token: string;
  groups: string[];
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root, from dist/src/testenv/ or src/testenv/. */
export const repoRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? "../../.." : "../..");

const running = new Set<ChildProcess>();
const exitCleanups: (() => void)[] = [];
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test run that ends early (failure, Ctrl-C) must not leave etcd or kube-apiserver behind.
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
    for (const cleanup of exitCleanups) cleanup();
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      // A program with its own handler (the demo's --keep) stops the control plane itself, gracefully.
      if (process.listenerCount(signal) > 1) return;
      for (const child of running) child.kill("SIGKILL");
      process.exit(130);
    });
  }
}

/** A child process of the test environment: SIGKILLed if this process exits (or is interrupted) before it. */
export function trackProcess(child: ChildProcess): void {
  installExitHook();
  running.add(child);
  child.once("exit", () => running.delete(child));
}

/** Synchronous clean-up to run if this process exits with the environment still up (e.g. a network namespace). */
export function onExitCleanup(cleanup: () => void): void {
  installExitHook();
  exitCleanups.push(cleanup);
}

/** The last lines of `<dir>/<name>.log`, for an error message; empty when there is no log. */
export function logTail(dir: string, name: string, lines = 40): string {
  try {
    return readFileSync(path.join(dir, `${name}.log`), "utf8")
      .split("\n")
      .slice(-lines)
      .join("\n");
  } catch {
    return "";
  }
}

/** Resolves the directory of etcd, kube-apiserver and kubectl, building them on first use. */
export async function binDir(): Promise<string> {
  if (process.env.TESTENV_BIN_DIR) return process.env.TESTENV_BIN_DIR;
  return buildScript([]);
}

/** The directory of the test helpers (kstatus-check, lua-health), rebuilt when their source changes. */
export function toolsDir(): Promise<string> {
  return buildScript(["--tools"]);
}

async function buildScript(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(path.join(repoRoot, "testenv/build.sh"), args, {
    maxBuffer: 1 << 20,
    env: process.env,
  });
  return stdout.trim().split("\n").pop() ?? "";
}

/**
 * A port nothing listens on, chosen below the kernel's ephemeral range. A port the kernel hands out for
 * `listen(0)` is an ephemeral one, and between our closing it and the server binding it any outbound connection
 * may take it as its source port: CI saw kube-apiserver exit with EADDRINUSE so, and a restarted apiserver's
 * port is exposed the same way while it is down.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralPortRange();
  const span = ephemeralLow - FIRST_PORT;
  for (let attempt = 0; span > 1000 && attempt < 50; attempt++) {
    const port = await listenOnce(FIRST_PORT + randomInt(span)).catch(() => undefined);
    if (port !== undefined) return port;
  }
  return listenOnce(0);
}

/** Above the ports daemons are commonly configured with. */
const FIRST_PORT = 10_000;

function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && low > 0 && high >= low) return [low, high];
  } catch {
    // not Linux: use Linux's defaults
  }
  return [32768, 60999];
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class ControlPlane {
  readonly dir: string;
  readonly families: ServiceFamilies;
  readonly serviceClusterIPRanges: string[];
  readonly admin: TokenUser;
  /** Unprivileged users: authenticated, with no role bound until a test binds one. */
  readonly users: TokenUser[];
  readonly kubeconfigPath: string;
  bin = "";
  etcdPort = 0;
  apiPort = 0;
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  private readonly extraArgs: string[];

  constructor(options: ControlPlaneOptions = {}) {
    this.families = options.families ?? "dual";
    this.serviceClusterIPRanges = options.serviceClusterIPRanges ?? SERVICE_RANGES[this.families];
    this.extraArgs = options.apiServerArgs ?? [];
    this.dir = mkdtempSync(path.join(os.tmpdir(), "ipv6mig-cp-"));
    const token = () => randomBytes(16).toString("hex");
    this.admin = { name: "admin", token: token(), groups: ["system:masters"] };
    this.users = [
      { name: "alice", token: token(), groups: [] },
      { name: "bob", token: token(), groups: [] },
      ...(options.users ?? []).map((u) => ({ name: u.name, token: token(), groups: u.groups ?? [] })),
    ];
    this.kubeconfigPath = path.join(this.dir, "kubeconfig");
  }

  get server(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  get etcdURL(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }

  /** Adds a token user; takes effect at the next apiserver (re)start. */
  addTokenUser(name: string, groups: string[] = []): TokenUser {
    const user = { name, token: randomBytes(16).toString("hex"), groups };
    this.users.push(user);
    this.writeTokenFile();
    return user;
  }

  async start(): Promise<this> {
    installExitHook();
    this.bin = await binDir();
    for (const name of ["etcd", "kube-apiserver"]) {
      if (!existsSync(path.join(this.bin, name))) throw new Error(`testenv: ${name} not found in ${this.bin}`);
    }
    this.etcdPort = await freePort();
    this.apiPort = await freePort();
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    writeFileSync(path.join(this.dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(path.join(this.dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
    this.writeTokenFile();
    // Audit every request at Metadata level: tests count a client's writes from the server's own record.
    writeFileSync(
      path.join(this.dir, "audit-policy.yaml"),
      'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["RequestReceived"]\nrules:\n- level: Metadata\n',
    );
    await this.startEtcd();
    await this.startAPIServer();
    this.writeKubeconfig();
    return this;
  }

  private writeTokenFile(): void {
    const lines = [this.admin, ...this.users].map((u) => `${u.token},${u.name},${u.name},"${u.groups.join(",")}"`);
    writeFileSync(path.join(this.dir, "tokens.csv"), lines.join("\n") + "\n");
  }

  private spawnLogged(name: string, args: string[]): ChildProcess {
    const log = createWriteStream(path.join(this.dir, `${name}.log`), { flags: "a" });
    const child = spawn(path.join(this.bin, name), args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    trackProcess(child);
    return child;
  }

  private async startEtcd(): Promise<void> {
    const peerPort = await freePort();
    this.etcd = this.spawnLogged("etcd", [
      `--data-dir=${path.join(this.dir, "etcd")}`,
      `--listen-client-urls=${this.etcdURL}`,
      `--advertise-client-urls=${this.etcdURL}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync",
      "--log-level=warn",
    ]);
    await this.waitFor("etcd", this.etcd, async () => (await fetch(`${this.etcdURL}/health`)).ok);
  }

  /** Starts kube-apiserver over the existing etcd (also used to restart it). */
  async startAPIServer(): Promise<void> {
    const primaryIsIPv6 = this.serviceClusterIPRanges[0]?.includes(":") ?? false;
    this.apiserver = this.spawnLogged("kube-apiserver", [
      `--etcd-servers=${this.etcdURL}`,
      "--bind-address=127.0.0.1",
      `--advertise-address=${primaryIsIPv6 ? "::1" : "127.0.0.1"}`,
      `--secure-port=${this.apiPort}`,
      `--cert-dir=${path.join(this.dir, "certs")}`,
      `--token-auth-file=${path.join(this.dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      `--service-cluster-ip-range=${this.serviceClusterIPRanges.join(",")}`,
      `--service-account-key-file=${path.join(this.dir, "sa.pub")}`,
      `--service-account-signing-key-file=${path.join(this.dir, "sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      // No controller-manager runs, so nothing would create the default ServiceAccount a Pod needs.
      "--disable-admission-plugins=ServiceAccount",
      "--allow-privileged=true",
      "--endpoint-reconciler-type=none",
      `--audit-policy-file=${path.join(this.dir, "audit-policy.yaml")}`,
      `--audit-log-path=${path.join(this.dir, "audit.log")}`,
      ...this.extraArgs,
    ]);
    await this.waitFor("kube-apiserver", this.apiserver, async () => (await this.get("/readyz")).status === 200);
  }

  /** Stops kube-apiserver alone (SIGTERM, or SIGKILL with `kill`), leaving etcd and its data in place. */
  async stopAPIServer(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await stopProcess(this.apiserver, signal);
    this.apiserver = undefined;
  }

  async restartAPIServer(): Promise<void> {
    await this.stopAPIServer();
    await this.startAPIServer();
  }

  async stop(): Promise<void> {
    await stopProcess(this.apiserver, "SIGTERM");
    await stopProcess(this.etcd, "SIGTERM");
    this.apiserver = undefined;
    this.etcd = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Compacts etcd up to its current revision, so older resourceVersions answer 410 Gone. */
  async compactEtcd(): Promise<number> {
    const post = async (route: string, body: unknown): Promise<{ header?: { revision?: string } }> => {
      const response = await fetch(`${this.etcdURL}${route}`, { method: "POST", body: JSON.stringify(body) });
      if (!response.ok) throw new Error(`etcd ${route}: ${response.status} ${await response.text()}`);
      return (await response.json()) as { header?: { revision?: string } };
    };
    const revision = Number(
      (await post("/v3/kv/range", { key: Buffer.from("/").toString("base64") })).header?.revision,
    );
    await post("/v3/kv/compaction", { revision, physical: true });
    return revision;
  }

  /** A KubeConfig for the admin or for one of the token users. */
  kubeConfig(user: TokenUser = this.admin): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "local", server: this.server, caData: this.caData(), skipTLSVerify: false }],
      users: [{ name: user.name, token: user.token }],
      contexts: [{ name: user.name, cluster: "local", user: user.name }],
      currentContext: user.name,
    });
    return kc;
  }

  /** kubeconfig as a file for a user, e.g. for kubectl or an operator subprocess. */
  writeKubeconfig(user: TokenUser = this.admin, file = user === this.admin ? this.kubeconfigPath : ""): string {
    const target = file || path.join(this.dir, `kubeconfig-${user.name}`);
    writeFileSync(target, this.kubeConfig(user).exportConfig());
    return target;
  }

  user(name: string): TokenUser {
    const user = this.users.find((u) => u.name === name);
    if (!user) throw new Error(`no token user ${name}`);
    return user;
  }

  /** Runs the built kubectl against this control plane. */
  async kubectl(args: string[], options: { user?: TokenUser; input?: string } = {}): Promise<KubectlResult> {
    const kubeconfig = options.user ? this.writeKubeconfig(options.user) : this.kubeconfigPath;
    return runKubectl(path.join(this.bin, "kubectl"), kubeconfig, args, options.input);
  }

  /** Requests the server has completed so far, from its audit log, optionally only those of one user. */
  auditEvents(user?: string): AuditEvent[] {
    let text: string;
    try {
      text = readFileSync(path.join(this.dir, "audit.log"), "utf8");
    } catch {
      return [];
    }
    const events: AuditEvent[] = [];
    for (const line of text.split("\n")) {
      if (!line) continue;
      const event = JSON.parse(line) as AuditEvent;
      if (event.stage !== "ResponseComplete") continue;
      if (user === undefined || event.user?.username === user) events.push(event);
    }
    return events;
  }

  logTail(name: "etcd" | "kube-apiserver", lines = 40): string {
    return logTail(this.dir, name, lines);
  }

  private caData(): string {
    // --cert-dir makes the apiserver write a self-signed CA and serving cert (for 127.0.0.1) into one file.
    return readFileSync(path.join(this.dir, "certs", "apiserver.crt")).toString("base64");
  }

  /** A raw GET as admin, for readiness and /metrics. */
  get(route: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const ca = existsSync(path.join(this.dir, "certs", "apiserver.crt"))
        ? readFileSync(path.join(this.dir, "certs", "apiserver.crt"))
        : undefined;
      const req = https.get(
        `${this.server}${route}`,
        { headers: { authorization: `Bearer ${this.admin.token}` }, ca, rejectUnauthorized: ca !== undefined },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.setTimeout(5000, () => req.destroy(new Error("timeout")));
    });
  }

  private async waitFor(name: string, child: ChildProcess, ready: () => Promise<boolean>): Promise<void> {
    let exited: number | null | undefined;
    child.once("exit", (code) => (exited = code));
    for (let attempt = 0; attempt < 600; attempt++) {
      if (exited !== undefined) {
        throw new Error(`testenv: ${name} exited with ${exited}:\n${this.logTail(name as "etcd")}`);
      }
      try {
        if (await ready()) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`testenv: ${name} was not ready after 60s:\n${this.logTail(name as "etcd")}`);
  }
}

export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user?: { username?: string };
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp?: string;
}

/** The audit verbs that change state. */
export const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

/** A request that changed one of `resources` (any resource when none is named); a dry run changes nothing. */
export function changedState(e: AuditEvent, ...resources: string[]): boolean {
  return (
    WRITE_VERBS.has(e.verb) &&
    !e.requestURI.includes("dryRun") &&
    (resources.length === 0 || resources.includes(e.objectRef?.resource ?? ""))
  );
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runKubectl(
  kubectl: string,
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Starts a control plane; the caller stops it (tests do so in `after`). */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const cp = new ControlPlane(options);
  try {
    return await cp.start();
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
