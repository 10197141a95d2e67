// The traffic probe, host side: it starts the client agent in the data plane's namespace, keeps its targets'
// ClusterIPs current from a watch on the Services (and records every Service change as the timeline the
// figures are judged against), collects the agent's records, and counts them. A library, so that the tests,
// the benchmark and the demo share it: start(), snapshot() while it runs, stop() for the records.
import readline from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { KubeClient, core } from "../runtime/client.js";
import { Informer } from "../runtime/informer.js";
import type { KubeObject } from "../runtime/object.js";
import { CLUSTER_DOMAIN, DNS_SERVERS, POD_ECHO_PORT, POD_HTTP_PORT, type DataPlane } from "./dataplane.js";
import {
  CLIENT_KINDS,
  type AgentRecord,
  type ClientKind,
  type ConnRecord,
  type DnsRecord,
  type ProbeConfig,
  type ProbeTarget,
  type RequestRecord,
  type RuleRecord,
} from "./probe-protocol.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVICES_ALL = core("services", "Service");

export interface ProbeService {
  namespace: string;
  name: string;
  /** The name the backend answers (the pod's). */
  backend: string;
  port: number;
}

/** A Service as the probe saw it change: the timeline the failures are judged against. */
export interface ServiceChange {
  t: number;
  s: string;
  type: string;
  families: string[];
  clusterIPs: string[];
}

export interface ProbeRecords {
  requests: RequestRecord[];
  dns: DnsRecord[];
  rules: RuleRecord[];
  conns: ConnRecord[];
  services: ServiceChange[];
  startedAt: number;
  stoppedAt: number;
  config: ProbeConfig;
}

export type KindCounts = Record<ClientKind, { ok: number; failed: number }>;

interface ServiceLike extends KubeObject {
  spec: { type?: string; clusterIP?: string; clusterIPs?: string[]; ipFamilies?: string[] };
}

export const DEFAULT_PROBE_CONFIG: ProbeConfig = {
  rate: 200,
  dns: { cache: { ...DNS_SERVERS.cache }, nocache: { ...DNS_SERVERS.nocache } },
  clientDns: "cache",
  timeoutMs: 1000,
  dnsWatchMs: 100,
  nftPollMs: 100,
  longLived: true,
};

const emptyCounts = (): KindCounts =>
  Object.fromEntries(CLIENT_KINDS.map((k) => [k, { ok: 0, failed: 0 }])) as KindCounts;

export class Probe {
  readonly records: ProbeRecords;
  private readonly targets = new Map<string, ProbeTarget>();
  private readonly informer: Informer<ServiceLike>;
  private agent: ReturnType<DataPlane["spawnInNetns"]> | undefined;
  private readonly counts = emptyCounts();
  private ready: Promise<void> | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly dp: DataPlane,
    client: KubeClient,
    services: ProbeService[],
    config: Partial<ProbeConfig> = {},
  ) {
    const full = { ...DEFAULT_PROBE_CONFIG, ...config };
    this.records = {
      requests: [],
      dns: [],
      rules: [],
      conns: [],
      services: [],
      startedAt: 0,
      stoppedAt: 0,
      config: full,
    };
    for (const svc of services) {
      const key = `${svc.namespace}/${svc.name}`;
      this.targets.set(key, {
        key,
        fqdn: `${svc.name}.${svc.namespace}.svc.${CLUSTER_DOMAIN}`,
        backend: svc.backend,
        port: svc.port,
        podPort: POD_HTTP_PORT,
        echoPort: POD_ECHO_PORT,
        headless: false,
      });
    }
    this.informer = new Informer<ServiceLike>(client, SERVICES_ALL);
    this.informer.addEventHandler({
      onAdd: (svc) => this.observe(svc),
      onUpdate: (_old, svc) => this.observe(svc),
    });
  }

  private observe(svc: ServiceLike): void {
    const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
    const target = this.targets.get(key);
    if (!target) return;
    const spec = svc.spec;
    const clusterIPs = (spec.clusterIPs ?? []).filter((ip) => ip !== "None");
    this.records.services.push({
      t: performance.timeOrigin + performance.now(),
      s: key,
      type:
        spec.type === "ExternalName"
          ? "ExternalName"
          : spec.clusterIP === "None"
            ? "Headless"
            : (spec.type ?? "ClusterIP"),
      families: spec.type === "ExternalName" ? [] : (spec.ipFamilies ?? []),
      clusterIPs,
    });
    target.headless = spec.clusterIP === "None";
    // A literal client keeps the address it was given, even after the Service has lost it.
    for (const ip of clusterIPs) {
      if (ip.includes(":")) target.v6 = ip;
      else target.v4 = ip;
    }
    this.send();
  }

  private send(): void {
    this.agent?.stdin?.write(JSON.stringify({ op: "targets", targets: [...this.targets.values()] }) + "\n");
  }

  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    const agent = this.dp.spawnInNetns(
      "probe",
      process.execPath,
      [path.join(here, "probe-agent.js"), JSON.stringify(this.records.config)],
      "pipe",
    );
    this.dp.adopt(agent);
    this.agent = agent;
    this.exited = new Promise((resolve) => agent.once("exit", () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      agent.once("exit", (code) => reject(new Error(`probe agent exited with ${code}: ${this.dp.logTail("probe")}`)));
      readline.createInterface({ input: agent.stdout! }).on("line", (line) => {
        const record = JSON.parse(line) as AgentRecord;
        switch (record.e) {
          case "ready":
            this.records.startedAt = record.t;
            resolve();
            break;
          case "req":
            this.records.requests.push(record);
            this.counts[record.k][record.c ? "failed" : "ok"]++;
            break;
          case "dns":
            this.records.dns.push(record);
            break;
          case "rule":
            this.records.rules.push(record);
            break;
          case "conn":
            this.records.conns.push(record);
            break;
        }
      });
    });
    this.send();
    await this.ready;
    return this;
  }

  /** Requests so far per client kind, ok and failed. */
  snapshot(): KindCounts {
    return structuredClone(this.counts);
  }

  /** Stops the clients (letting requests in flight finish) and returns everything recorded. */
  async stop(): Promise<ProbeRecords> {
    this.agent?.stdin?.write(JSON.stringify({ op: "stop" }) + "\n");
    await this.exited;
    await this.informer.stop();
    this.records.stoppedAt = performance.timeOrigin + performance.now();
    this.records.requests.sort((a, b) => a.t - b.t);
    return this.records;
  }
}

/** Starts a probe over `services`; stop() it (in `after`), or DataPlane.stop() ends it too. */
export async function startProbe(
  dp: DataPlane,
  client: KubeClient,
  services: ProbeService[],
  config: Partial<ProbeConfig> = {},
): Promise<Probe> {
  return new Probe(dp, client, services, config).start();
}
