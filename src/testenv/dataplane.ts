// A node's data plane beside the local control plane, for the traffic tests: one network namespace holding
// kube-proxy (nftables mode) and CoreDNS, built from Go modules by `testenv/build.sh --dataplane`, "pods" that
// are addresses on the namespace's loopback with small servers bound to them, and the clients of the probe
// (src/testenv/probe.ts). Every connection a client makes goes through kube-proxy's rules and every name
// through CoreDNS, as on a real node; nothing leaves the namespace, and stop() removes it with every process
// and nftables table in it, also after a failure.
//
// No kube-controller-manager runs, so the harness plays the EndpointSlice controller for the Services whose
// selector names one of its pods, and it does what that controller does (pkg/controller/endpointslice in
// k8s.io/kubernetes v1.37.2): one slice per family in spec.ipFamilies, a slice of a family the Service no
// longer has is deleted, and an ExternalName Service is left alone, slices and all ("services with Type
// ExternalName receive no endpoints from this controller"). So through a cutover the IPv6 slice stays, and
// kube-proxy finds the endpoints again the moment the Service comes back.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ENDPOINT_SLICES, KubeClient, core, isNotFound } from "../runtime/client.js";
import { Informer } from "../runtime/informer.js";
import type { KubeObject } from "../runtime/object.js";
import type { ControlPlane } from "./controlplane.js";
import { logTail, onExitCleanup, repoRoot, trackProcess } from "./controlplane.js";
import { relay } from "./relay.js";
import type { NodeAgentCall, NodeAgentConfig, NodeAgentReply, PodSpec } from "./node-agent.js";
import type { QueryType } from "./dns.js";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

/** Every namespace this harness makes starts so, followed by the pid that made it: a leftover is recognisable. */
export const NETNS_PREFIX = "ipv6mig-dp-";
export const NODE_NAME = "node-dual";
export const NODE_IPS = { v4: "10.250.0.1", v6: "fd00:10:250::1" } as const;
export const POD_CIDRS = ["10.244.0.0/24", "fd00:10:244::/64"];
export const CLUSTER_CIDRS = "10.244.0.0/16,fd00:10:244::/56";
/** Two CoreDNS servers for the same zone on one address: with `cache 30` (as clusters run it) and without. */
export const DNS_SERVERS = {
  cache: { server: "127.0.0.53", port: 53 },
  nocache: { server: "127.0.0.53", port: 1053 },
} as const;
export const CLUSTER_DOMAIN = "cluster.local";
export const POD_HTTP_PORT = 8080;
export const POD_ECHO_PORT = 7007;
/** The app label the Services select and the slices name: the harness's EndpointSlice controller keys on it. */
export const APP_LABEL = "app";
const KUBE_PROXY_HEALTHZ = "127.0.0.1:10256";
const KUBE_PROXY_METRICS = "127.0.0.1:10249";
const COREDNS_READY = "127.0.0.1:8181";
const COREDNS_HEALTH = "127.0.0.1:8180";
const NODES = core("nodes", "Node", false);
const SERVICES_ALL = core("services", "Service");
const FAMILIES = ["IPv4", "IPv6"] as const;

export interface DataPlaneOptions {
  pods: PodSpec[];
  /** kube-proxy's min-sync-period (its default is 1s); set only to measure its effect. */
  minSyncPeriod?: string;
  /** Where to keep kube-proxy's, CoreDNS's and the agents' logs when the data plane stops (else they go). */
  keepLogsIn?: string;
}

/** Why the data plane can't run here, or undefined when it can. */
export async function dataPlaneUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0)
    return "not root: creating a network namespace and kube-proxy's nftables rules need root";
  const installed = async (tool: string) =>
    run("sh", ["-c", `command -v ${tool}`]).then(
      () => true,
      () => false,
    );
  // As root, the build script installs Debian's nftables and conntrack when they are missing (and says so).
  if (!(await installed("nft")) || !(await installed("conntrack"))) await dataPlaneBinDir();
  for (const tool of ["ip", "nft"]) {
    if (!(await installed(tool))) {
      return `\`${tool}\` is not installed (Debian: ${tool === "ip" ? "iproute2" : "nftables"}; testenv/build.sh --dataplane installs nftables as root)`;
    }
  }
  const probe = `${NETNS_PREFIX}check-${process.pid}`;
  try {
    await run("ip", ["netns", "add", probe]);
  } catch (err) {
    return `cannot create a network namespace: ${err instanceof Error ? err.message.trim() : String(err)}`;
  } finally {
    await run("ip", ["netns", "del", probe]).catch(() => undefined);
  }
  return undefined;
}

/** The directory of kube-proxy and coredns, building them on first use. */
export async function dataPlaneBinDir(): Promise<string> {
  const { stdout } = await run(path.join(repoRoot, "testenv/build.sh"), ["--dataplane"], {
    maxBuffer: 1 << 20,
    env: process.env,
  });
  return stdout.trim().split("\n").pop() ?? "";
}

/** Network namespaces of this harness left by a process that no longer runs, and kube-proxy tables on the host. */
export async function dataPlaneLeftovers(): Promise<{ namespaces: string[]; hostTables: string[] }> {
  const names = (await run("ip", ["netns", "list"])).stdout
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(NETNS_PREFIX));
  let tables: string[] = [];
  try {
    tables = (await run("nft", ["list", "tables"])).stdout.split("\n").filter((line) => line.includes("kube-proxy"));
  } catch {
    // no nft: no tables either
  }
  return { namespaces: names, hostTables: tables };
}

interface SliceOwner {
  svc: string;
  namespace: string;
  pod: PodSpec;
}

interface ServiceLike extends KubeObject {
  spec: { type?: string; selector?: Record<string, string>; ipFamilies?: string[]; clusterIP?: string };
}

const namespaces = new Set<string>();
let cleanupRegistered = false;
/** A run that ends early must not leave a namespace behind (its processes are SIGKILLed with the control plane's). */
function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  onExitCleanup(() => {
    for (const name of namespaces) spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  });
}

export class DataPlane {
  readonly netns: string;
  readonly dir: string;
  readonly pods: PodSpec[];
  bin = "";
  private readonly client: KubeClient;
  private relayServer: net.Server | undefined;
  private relayPort = 0;
  private nodeAgent: ChildProcess | undefined;
  private kubeProxy: ChildProcess | undefined;
  private coreDNS: ChildProcess | undefined;
  private readonly others = new Set<ChildProcess>();
  private informer: Informer<ServiceLike> | undefined;
  private readonly slices = new Map<string, Set<string>>();
  private readonly chains = new Map<string, Promise<void>>();
  private rpcId = 0;
  private readonly rpcWaiters = new Map<number, (reply: NodeAgentReply) => void>();
  /** Slice writes the harness's EndpointSlice controller made, and those that failed (a test checks both). */
  readonly sliceWrites: { t: number; op: "create" | "delete"; name: string; error?: string }[] = [];

  constructor(
    private readonly cp: ControlPlane,
    private readonly options: DataPlaneOptions,
  ) {
    this.netns = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
    this.dir = mkdtempSync(path.join(os.tmpdir(), "ipv6mig-dp-"));
    this.pods = options.pods;
    this.client = new KubeClient(cp.kubeConfig(), "ipv6mig-dataplane-harness");
  }

  /** `ip netns exec` execs its command, so the child's pid is the process's own. */
  spawnInNetns(name: string, command: string, args: string[], stdio: "pipe" | "log" = "log"): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.netns, command, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const log = createWriteStream(path.join(this.dir, `${name}.log`), { flags: "a" });
    if (stdio === "log") child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    trackProcess(child);
    return child;
  }

  /** A node-side process started by a user of the harness (the probe), stopped with the rest. */
  adopt(child: ChildProcess): void {
    this.others.add(child);
    child.once("exit", () => this.others.delete(child));
  }

  async start(): Promise<this> {
    registerCleanup();
    this.bin = await dataPlaneBinDir();
    for (const name of ["kube-proxy", "coredns"]) {
      if (!existsSync(path.join(this.bin, name))) throw new Error(`testenv: ${name} not found in ${this.bin}`);
    }
    await this.createNamespace();
    await this.startRelay();
    await this.startNodeAgent();
    await this.registerNode();
    const kubeconfig = this.writeNodeKubeconfig();
    this.startEndpointSliceController();
    await this.informer?.waitForSync();
    await this.startKubeProxy(kubeconfig);
    await this.startCoreDNS(kubeconfig);
    return this;
  }

  private async ip(...args: string[]): Promise<void> {
    await run("ip", ["-n", this.netns, ...args]);
  }

  private async createNamespace(): Promise<void> {
    await run("ip", ["netns", "add", this.netns]);
    namespaces.add(this.netns);
    await this.ip("link", "set", "lo", "up");
    // A default route, so that a connect() to a ClusterIP gets past the route lookup to kube-proxy's output
    // hook. Both ends of the veth stay in the namespace: a packet no rule catches goes nowhere.
    await this.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
    await this.ip("link", "set", "eth0", "up");
    await this.ip("link", "set", "eth0p", "up");
    await this.ip("addr", "add", `${NODE_IPS.v4}/24`, "dev", "eth0");
    await this.ip("-6", "addr", "add", `${NODE_IPS.v6}/64`, "dev", "eth0", "nodad");
    await this.ip("route", "add", "default", "dev", "eth0");
    await this.ip("-6", "route", "add", "default", "dev", "eth0");
    // This kernel has no dummy links: the pods' addresses live on the loopback, where nothing needs DAD.
    for (const pod of this.pods) {
      await this.ip("addr", "add", `${pod.v4}/32`, "dev", "lo");
      await this.ip("-6", "addr", "add", `${pod.v6}/128`, "dev", "lo", "nodad");
    }
  }

  /** The host end of the relay to kube-apiserver: a Unix socket, which crosses network namespaces. */
  private async startRelay(): Promise<void> {
    const socket = path.join(this.dir, "apiserver.sock");
    this.relayServer = relay(() => net.connect({ host: "127.0.0.1", port: this.cp.apiPort }));
    await new Promise<void>((resolve, reject) => {
      this.relayServer?.once("error", reject);
      this.relayServer?.listen(socket, () => resolve());
    });
    // Any free port number will do in the new namespace, whose loopback has nothing listening yet.
    this.relayPort = 6443;
  }

  private async startNodeAgent(): Promise<void> {
    const config: NodeAgentConfig = {
      relay: { port: this.relayPort, socket: path.join(this.dir, "apiserver.sock") },
      pods: this.pods,
      httpPort: POD_HTTP_PORT,
      echoPort: POD_ECHO_PORT,
    };
    const agent = this.spawnInNetns(
      "node-agent",
      process.execPath,
      [path.join(here, "node-agent.js"), JSON.stringify(config)],
      "pipe",
    );
    this.nodeAgent = agent;
    const ready = new Promise<void>((resolve, reject) => {
      agent.once("exit", (code) => reject(new Error(`node agent exited with ${code}: ${this.logTail("node-agent")}`)));
      readline.createInterface({ input: agent.stdout! }).on("line", (line) => {
        const message = JSON.parse(line) as NodeAgentReply & { ready?: boolean };
        if (message.ready) return resolve();
        this.rpcWaiters.get(message.id)?.(message);
        this.rpcWaiters.delete(message.id);
      });
    });
    await ready;
  }

  private rpc(request: NodeAgentCall): Promise<NodeAgentReply> {
    const id = ++this.rpcId;
    return new Promise((resolve) => {
      this.rpcWaiters.set(id, resolve);
      this.nodeAgent?.stdin?.write(JSON.stringify({ ...request, id }) + "\n");
    });
  }

  /** An HTTP GET from the node (inside the namespace). */
  async get(url: string, timeoutMs = 2000): Promise<NodeAgentReply> {
    return this.rpc({ op: "get", url, timeoutMs });
  }

  /** A DNS query from the node to one of the CoreDNS servers. */
  async dns(name: string, type: QueryType, server: keyof typeof DNS_SERVERS = "cache"): Promise<NodeAgentReply> {
    const { server: address, port } = DNS_SERVERS[server];
    return this.rpc({ op: "dns", server: address, port, name, type, timeoutMs: 2000 });
  }

  private async registerNode(): Promise<void> {
    await this.client.create(NODES, undefined, {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: NODE_NAME, labels: { "kubernetes.io/hostname": NODE_NAME } },
      spec: { podCIDR: POD_CIDRS[0], podCIDRs: POD_CIDRS },
      status: {
        addresses: [
          { type: "InternalIP", address: NODE_IPS.v4 },
          { type: "InternalIP", address: NODE_IPS.v6 },
          { type: "Hostname", address: NODE_NAME },
        ],
      },
    });
  }

  private writeNodeKubeconfig(): string {
    const file = path.join(this.dir, "kubeconfig-node");
    const kc = this.cp.kubeConfig();
    const ca = kc.getCurrentCluster()?.caData ?? "";
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        `- name: local\n  cluster:\n    server: https://127.0.0.1:${this.relayPort}\n    certificate-authority-data: ${ca}`,
        "users:",
        `- name: node\n  user:\n    token: ${this.cp.admin.token}`,
        "contexts:",
        "- name: node\n  context:\n    cluster: local\n    user: node",
        "current-context: node",
        "",
      ].join("\n"),
    );
    return file;
  }

  private async startKubeProxy(kubeconfig: string): Promise<void> {
    const args = [
      `--kubeconfig=${kubeconfig}`,
      "--proxy-mode=nftables",
      `--hostname-override=${NODE_NAME}`,
      `--cluster-cidr=${CLUSTER_CIDRS}`,
      `--metrics-bind-address=${KUBE_PROXY_METRICS}`,
      `--healthz-bind-address=${KUBE_PROXY_HEALTHZ}`,
      // 0 leaves the conntrack sysctls alone: some are global to the machine, and the host is not ours to tune.
      "--conntrack-max-per-core=0",
      "--conntrack-tcp-timeout-established=0",
      "--conntrack-tcp-timeout-close-wait=0",
      "--v=2",
      // The flag is named for iptables, but sets the one min-sync-period of the config, which nftables mode reads
      // (cmd/kube-proxy/app/options.go, processV1Alpha1Flags).
      ...(this.options.minSyncPeriod ? [`--iptables-min-sync-period=${this.options.minSyncPeriod}`] : []),
    ];
    this.kubeProxy = this.spawnInNetns("kube-proxy", path.join(this.bin, "kube-proxy"), args);
    await this.waitFor("kube-proxy", this.kubeProxy, async () => {
      const reply = await this.get(`http://${KUBE_PROXY_HEALTHZ}/healthz`);
      return reply.ok && reply.status === 200;
    });
  }

  private async startCoreDNS(kubeconfig: string): Promise<void> {
    const block = (port: number, extra: string[]) =>
      [
        `${CLUSTER_DOMAIN}:${port} {`,
        `    bind ${DNS_SERVERS.cache.server}`,
        "    errors",
        ...extra,
        `    kubernetes ${CLUSTER_DOMAIN} {`,
        `        kubeconfig ${kubeconfig} node`,
        "    }",
        "}",
      ].join("\n");
    const corefile = [
      block(DNS_SERVERS.cache.port, [`    ready ${COREDNS_READY}`, `    health ${COREDNS_HEALTH}`, "    cache 30"]),
      block(DNS_SERVERS.nocache.port, []),
      "",
    ].join("\n");
    writeFileSync(path.join(this.dir, "Corefile"), corefile);
    this.coreDNS = this.spawnInNetns("coredns", path.join(this.bin, "coredns"), [
      "-conf",
      path.join(this.dir, "Corefile"),
    ]);
    await this.waitFor("coredns", this.coreDNS, async () => {
      const reply = await this.get(`http://${COREDNS_READY}/ready`);
      return reply.ok && reply.status === 200;
    });
  }

  private async waitFor(name: string, child: ChildProcess, ready: () => Promise<boolean>): Promise<void> {
    let exited: number | null | undefined;
    child.once("exit", (code) => (exited = code));
    for (let attempt = 0; attempt < 600; attempt++) {
      if (exited !== undefined) throw new Error(`testenv: ${name} exited with ${exited}:\n${this.logTail(name)}`);
      if (await ready().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`testenv: ${name} was not ready after 60s:\n${this.logTail(name)}`);
  }

  logTail(name: string, lines = 40): string {
    return logTail(this.dir, name, lines);
  }

  /** kube-proxy's own counters, e.g. kubeproxy_sync_proxy_rules_duration_seconds_count. */
  async kubeProxyMetrics(): Promise<string> {
    const reply = await this.get(`http://${KUBE_PROXY_METRICS}/metrics`);
    return reply.body ?? "";
  }

  /** `nft list ruleset` in the namespace. */
  async ruleset(): Promise<string> {
    return (await run("ip", ["netns", "exec", this.netns, "nft", "list", "ruleset"])).stdout;
  }

  private startEndpointSliceController(): void {
    const owners = new Map(this.pods.map((pod) => [pod.name, pod]));
    const informer = new Informer<ServiceLike>(this.client, SERVICES_ALL);
    const reconcile = (svc: ServiceLike) => {
      const app = svc.spec.selector?.[APP_LABEL];
      const pod = app ? owners.get(app) : undefined;
      if (!pod || !svc.metadata.namespace) return;
      const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
      const previous = this.chains.get(key) ?? Promise.resolve();
      const next = previous.then(() =>
        this.reconcileSlices(svc, { svc: svc.metadata.name, namespace: svc.metadata.namespace ?? "", pod }),
      );
      this.chains.set(key, next);
    };
    informer.addEventHandler({ onAdd: reconcile, onUpdate: (_old, svc) => reconcile(svc) });
    informer.start();
    this.informer = informer;
  }

  private async reconcileSlices(svc: ServiceLike, owner: SliceOwner): Promise<void> {
    // As the real controller: an ExternalName Service gets no endpoints, and the ones it had are left alone.
    if (svc.spec.type === "ExternalName") return;
    const key = `${owner.namespace}/${owner.svc}`;
    const have = this.slices.get(key) ?? new Set<string>();
    this.slices.set(key, have);
    const want = new Set(svc.spec.ipFamilies ?? []);
    const headless = svc.spec.clusterIP === "None";
    for (const family of FAMILIES) {
      const name = `${owner.svc}-${family.toLowerCase()}`;
      const t = performance.timeOrigin + performance.now();
      try {
        if (want.has(family) && !have.has(family)) {
          await this.client.create(ENDPOINT_SLICES, owner.namespace, {
            apiVersion: "discovery.k8s.io/v1",
            kind: "EndpointSlice",
            metadata: {
              name,
              labels: {
                "kubernetes.io/service-name": owner.svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                // kube-proxy's informer leaves out the slices of headless Services by this label, as the
                // real controller sets it.
                ...(headless ? { "service.kubernetes.io/headless": "" } : {}),
              },
            },
            addressType: family,
            endpoints: [
              {
                addresses: [family === "IPv4" ? owner.pod.v4 : owner.pod.v6],
                conditions: { ready: true, serving: true, terminating: false },
                nodeName: NODE_NAME,
              },
            ],
            ports: [
              { name: "http", port: POD_HTTP_PORT, protocol: "TCP" },
              { name: "echo", port: POD_ECHO_PORT, protocol: "TCP" },
            ],
          });
          have.add(family);
          this.sliceWrites.push({ t, op: "create", name: `${owner.namespace}/${name}` });
        } else if (!want.has(family) && have.has(family)) {
          await this.client.delete(ENDPOINT_SLICES, owner.namespace, name).catch((err: unknown) => {
            if (!isNotFound(err)) throw err;
          });
          have.delete(family);
          this.sliceWrites.push({ t, op: "delete", name: `${owner.namespace}/${name}` });
        }
      } catch (err) {
        this.sliceWrites.push({
          t,
          op: want.has(family) ? "create" : "delete",
          name: `${owner.namespace}/${name}`,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }

  /** Every process in the namespace and the namespace itself; its nftables tables go with it. */
  async stop(): Promise<void> {
    await this.informer?.stop();
    await Promise.allSettled([...this.chains.values()]);
    const children = [...this.others, this.kubeProxy, this.coreDNS, this.nodeAgent].filter(
      (c): c is ChildProcess => c !== undefined,
    );
    await Promise.all(children.map((child) => stopChild(child)));
    if (namespaces.has(this.netns)) {
      // Anything else still in the namespace (there should be nothing) is killed before it goes.
      const pids = await this.namespacePids();
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      await run("ip", ["netns", "del", this.netns]);
      namespaces.delete(this.netns);
    }
    await new Promise<void>((resolve) => (this.relayServer ? this.relayServer.close(() => resolve()) : resolve()));
    await this.client.delete(NODES, undefined, NODE_NAME).catch(() => undefined);
    if (this.options.keepLogsIn) {
      for (const name of ["kube-proxy", "coredns", "node-agent", "probe"]) {
        const file = path.join(this.dir, `${name}.log`);
        if (existsSync(file)) copyFileSync(file, path.join(this.options.keepLogsIn, `${this.netns}-${name}.log`));
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The pids of the processes in the namespace, from the kernel (`ip netns pids`). */
  async namespacePids(): Promise<number[]> {
    try {
      const { stdout } = await run("ip", ["netns", "pids", this.netns]);
      return stdout.split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdin?.end();
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Starts a data plane over `cp`; the caller stops it (in `after`). */
export async function startDataPlane(cp: ControlPlane, options: DataPlaneOptions): Promise<DataPlane> {
  const dp = new DataPlane(cp, options);
  try {
    return await dp.start();
  } catch (err) {
    await dp.stop().catch(() => undefined);
    throw err;
  }
}

/** The pod of Service number i: one IPv4 and one IPv6 address from the node's podCIDRs. */
export function podFor(name: string, i: number): PodSpec {
  return { name, v4: `10.244.0.${10 + i}`, v6: `fd00:10:244::${(0x10 + i).toString(16)}` };
}
