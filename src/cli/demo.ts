// `ipv6-migrate demo`: the whole job on a local control plane (etcd + kube-apiserver built from Go modules):
// an estate of Services, the operator, a plan promoted DualStack -> IPv6Only, live progress, and a before/after
// table. It leaves nothing running unless --keep is given.
import { createWriteStream } from "node:fs";
import path from "node:path";
import { ENDPOINT_SLICES, NAMESPACES, SERVICES, type KubeClient, KubeClient as Client } from "../runtime/client.js";
import { createLogger } from "../runtime/log.js";
import { findCondition } from "../runtime/object.js";
import {
  GROUP,
  MIGRATION_PLANS,
  OPERATOR_NAME,
  SERVICE_NAME_LABEL,
  STATE_LABEL,
  VERSION,
  type MigrationPlan,
} from "../api/migrationplan.js";
import { shapeOf, type Service } from "../migration/families.js";
import { buildOperator } from "../reconciler/operator.js";
import { repoRoot, startControlPlane, type ControlPlane } from "../testenv/controlplane.js";
import { dataPlaneUnavailable, podFor, startDataPlane, type DataPlane } from "../testenv/dataplane.js";
import { startProbe, type KindCounts, type Probe, type ProbeService } from "../testenv/probe.js";
import { CLIENT_KINDS, CLIENT_KIND_TITLES } from "../testenv/probe-protocol.js";
import { table } from "./table.js";

const PORT = [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }];

interface EstateEntry {
  namespace: string;
  service: Record<string, unknown> & { metadata: { name: string } };
  /** An IPv6 endpoint for the EndpointSlice the demo creates (no kubelet runs to make real ones). */
  ipv6Endpoint?: string;
}

/** A few teams' Services, one of each shape the operator knows. */
export function demoEstate(): EstateEntry[] {
  const svc = (name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}) => ({
    metadata: { name, labels: { app: name, ...labels } },
    spec,
  });
  return [
    {
      namespace: "shop",
      service: svc("frontend", { selector: { app: "frontend" }, ports: PORT }),
      ipv6Endpoint: "fd00:a::10",
    },
    { namespace: "shop", service: svc("cart", { selector: { app: "cart" }, ports: PORT }), ipv6Endpoint: "fd00:a::11" },
    {
      namespace: "shop",
      service: svc("checkout", {
        type: "NodePort",
        selector: { app: "checkout" },
        ports: [{ ...PORT[0], nodePort: 30080 }],
      }),
      ipv6Endpoint: "fd00:a::12",
    },
    {
      namespace: "shop",
      service: svc("ingress", { type: "LoadBalancer", selector: { app: "ingress" }, ports: PORT }),
      ipv6Endpoint: "fd00:a::13",
    },
    {
      namespace: "payments",
      service: svc("ledger", { clusterIP: "None", selector: { app: "ledger" }, ports: PORT }),
      ipv6Endpoint: "fd00:b::20",
    },
    {
      namespace: "payments",
      service: svc("api", { selector: { app: "api" }, ports: PORT }),
      ipv6Endpoint: "fd00:b::21",
    },
    {
      namespace: "payments",
      service: svc("bank-gateway", { type: "ExternalName", externalName: "gateway.bank.example" }),
    },
    { namespace: "legacy", service: svc("mainframe", { ports: PORT }) },
    {
      namespace: "legacy",
      service: svc("reports", { type: "NodePort", selector: { app: "reports" }, ports: PORT }),
      ipv6Endpoint: "fd00:c::30",
    },
  ];
}

export interface DemoOptions {
  keep: boolean;
  out: NodeJS.WriteStream;
}

interface Row {
  service: string;
  type: string;
  families: string;
  clusterIPs: string;
}

async function snapshot(client: KubeClient, namespaces: string[]): Promise<Map<string, Row>> {
  const rows = new Map<string, Row>();
  for (const ns of namespaces) {
    for (const s of (await client.list<Service>(SERVICES, ns)).items) {
      rows.set(`${ns}/${s.metadata.name}`, {
        service: `${ns}/${s.metadata.name}`,
        type: shapeOf(s),
        families: (s.spec.ipFamilies ?? []).join(",") || "-",
        clusterIPs: (s.spec.clusterIPs ?? []).join(",") || "-",
      });
    }
  }
  return rows;
}

/** One line per change on a pipe; a table redrawn in place on a terminal. */
class Progress {
  private lastLine = "";
  private drawn = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(plan: MigrationPlan, services: Map<string, Service>, traffic?: KindCounts): void {
    const s = plan.status;
    const line =
      `${plan.spec.targetPhase ?? "Audit"}: phase ${s?.phase ?? "-"}, ${s?.progress ?? "-"} at target, batch ${s?.currentBatch?.number ?? 0}, blocked ${s?.summary?.blocked ?? 0}` +
      (traffic ? `\n    traffic (ok/failed): ${trafficLine(traffic)}` : "");
    if (!this.out.isTTY) {
      if (line !== this.lastLine) this.out.write(`  ${line}\n`);
      this.lastLine = line;
      return;
    }
    const done = (s?.summary?.atTarget ?? 0) + (s?.summary?.skipped ?? 0);
    const total = s?.summary?.selected ?? 0;
    const width = 30;
    const filled = total ? Math.round((done / total) * width) : 0;
    const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}`;
    const rows = [...services.values()].map((svc) => [
      `${svc.metadata.namespace}/${svc.metadata.name}`,
      svc.metadata.labels?.[STATE_LABEL] ?? "-",
      (svc.spec.ipFamilies ?? []).join(",") || "-",
      (svc.spec.clusterIPs ?? []).join(",") || "-",
    ]);
    const text = [line, bar, table(["SERVICE", "STATE", "FAMILIES", "CLUSTER-IPS"], rows)].join("\n") + "\n";
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.out.write(text);
    this.drawn = text.split("\n").length - 1;
  }

  finish(): void {
    this.drawn = 0;
    this.lastLine = "";
  }
}

function trafficLine(counts: KindCounts): string {
  return CLIENT_KINDS.map((kind) => `${kind} ${counts[kind].ok}/${counts[kind].failed}`).join("  ");
}

/** The estate's pods, for the data plane: one per Service with a selector, named as its selector's app. */
function estatePods(estate: EstateEntry[]) {
  const apps = estate
    .map((e) => (e.service.spec as { selector?: Record<string, string> }).selector?.app)
    .filter((app): app is string => app !== undefined);
  return apps.map((app, i) => podFor(app, i));
}

export async function demo(options: DemoOptions): Promise<number> {
  const out = options.out;
  const say = (text: string) => out.write(`${text}\n`);
  say("Starting a local dual-stack control plane (etcd + kube-apiserver; the first run builds them, ~5 minutes)...");
  const cp: ControlPlane = await startControlPlane({ families: "dual" });
  let stopped = false;
  let dp: DataPlane | undefined;
  let probe: Probe | undefined;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await probe?.stop();
    await manager?.stop();
    await dp?.stop();
    await cp.stop();
  };
  let manager: Awaited<ReturnType<typeof buildOperator>> | undefined;
  try {
    const client = new Client(cp.kubeConfig(), "ipv6-migrate-demo");
    say(`  kube-apiserver ${cp.server}, Service ranges ${cp.serviceClusterIPRanges.join(", ")}`);
    const crd = await cp.kubectl(["apply", "--server-side", "-f", path.join(repoRoot, "crds")]);
    if (crd.code !== 0) throw new Error(`installing the CRD failed: ${crd.stderr}`);
    await cp.kubectl(["wait", "--for=condition=Established", "crd/migrationplans.ipv6migration.io", "--timeout=60s"]);

    const estate = demoEstate();
    const namespaces = [...new Set(estate.map((e) => e.namespace))];
    // Live traffic where a real data plane can run here (root, nftables); otherwise the demo says why not.
    const unavailable = await dataPlaneUnavailable();
    const pods = estatePods(estate);
    if (unavailable) say(`Live traffic is not shown: ${unavailable}.`);
    else {
      say("Starting a data plane: kube-proxy (nftables) and CoreDNS in a network namespace, a pod per Service...");
      dp = await startDataPlane(cp, { pods });
    }
    say(`Creating ${estate.length} Services in ${namespaces.join(", ")} (every shape), with IPv6 EndpointSlices...`);
    for (const ns of namespaces) await client.create(NAMESPACES, undefined, { metadata: { name: ns } });
    for (const entry of estate) {
      await client.create(SERVICES, entry.namespace, { apiVersion: "v1", kind: "Service", ...entry.service });
      // With a data plane, its EndpointSlice controller makes the slices of the pods it runs.
      if (entry.ipv6Endpoint && !dp) {
        await client.create(ENDPOINT_SLICES, entry.namespace, {
          metadata: {
            name: `${entry.service.metadata.name}-ipv6`,
            labels: { [SERVICE_NAME_LABEL]: entry.service.metadata.name },
          },
          addressType: "IPv6",
          endpoints: [{ addresses: [entry.ipv6Endpoint], conditions: { ready: true } }],
          ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        });
      }
    }
    const before = await snapshot(client, namespaces);

    const logFile = path.join(cp.dir, "operator.log");
    say(`Starting the operator (its JSON log: ${logFile})...`);
    const logStream = createWriteStream(logFile);
    manager = await buildOperator({
      client: new Client(cp.kubeConfig(), OPERATOR_NAME),
      logger: createLogger({ format: "json", stream: logStream }),
      metricsBindAddress: "0",
      healthProbeBindAddress: "0",
      leaderElect: false,
      leaderElectionNamespace: "default",
    });
    const running = manager.run([]);
    if (dp) {
      // The headless Service is left out: its name answers the pods' addresses, not a ClusterIP.
      const probed: ProbeService[] = estate
        .filter((e) => (e.service.spec as { clusterIP?: string }).clusterIP !== "None")
        .filter((e) => pods.some((p) => p.name === (e.service.spec as { selector?: { app?: string } }).selector?.app))
        .map((e) => ({
          namespace: e.namespace,
          name: e.service.metadata.name,
          backend: (e.service.spec as { selector: { app: string } }).selector.app,
          port: 80,
        }));
      say(`Sending traffic to ${probed.length} Services as five kinds of client:`);
      for (const kind of CLIENT_KINDS) say(`  ${kind}: ${CLIENT_KIND_TITLES[kind]}`);
      probe = await startProbe(dp, client, probed, { rate: 50 });
    }

    const plan = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "MigrationPlan",
      metadata: { name: "demo" },
      spec: {
        targetPhase: "DualStack",
        selector: { namespaces },
        rollout: { batchSize: 3, pauseBetweenBatches: "1s" },
      },
    };
    const progress = new Progress(out);
    const watchUntil = async (done: (p: MigrationPlan) => boolean, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const p = await client.get<MigrationPlan>(MIGRATION_PLANS, undefined, "demo");
        const services = new Map<string, Service>();
        for (const ns of namespaces) {
          for (const s of (await client.list<Service>(SERVICES, ns)).items) services.set(`${ns}/${s.metadata.name}`, s);
        }
        progress.update(p, services, probe?.snapshot());
        if (p.status?.observedGeneration === p.metadata.generation && done(p)) return p;
        if (Date.now() > deadline) throw new Error(`the plan did not get there in ${timeoutMs / 1000}s`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    const condition = (type: string) => (p: MigrationPlan) =>
      findCondition(p.status?.conditions, type)?.status === "True";

    say("\n== 1. MigrationPlan 'demo', targetPhase DualStack (batches of 3, 1s apart)");
    await client.create(MIGRATION_PLANS, undefined, plan);
    await watchUntil(condition("DualStackComplete"));
    progress.finish();

    say("\n== 2. Promote it: targetPhase IPv6Only (a cutover for ClusterIP and NodePort Services)");
    await client.patch(MIGRATION_PLANS, undefined, "demo", { spec: { targetPhase: "IPv6Only" } }, "merge");
    const blocked = await watchUntil((p) => p.status?.phase === "Blocked" || condition("IPv6OnlyComplete")(p));
    progress.finish();
    for (const problem of blocked.status?.problems ?? []) {
      say(`  ${problem.state}: ${problem.namespace}/${problem.name}: ${problem.reason}: ${problem.message}`);
    }
    if (blocked.status?.phase === "Blocked") {
      say("\n== 3. Allow the LoadBalancer to be recreated: spec.ipv6Only.allowLoadBalancerRecreate = true");
      await client.patch(
        MIGRATION_PLANS,
        undefined,
        "demo",
        { spec: { ipv6Only: { allowLoadBalancerRecreate: true } } },
        "merge",
      );
      await watchUntil((p) => condition("IPv6OnlyComplete")(p) && condition("Ready")(p));
      progress.finish();
    }

    const after = await snapshot(client, namespaces);
    say("\n== Before and after");
    const rows = [...before.keys()].map((key) => {
      const b = before.get(key)!;
      const a = after.get(key);
      return [key, b.type, b.families, b.clusterIPs, a?.families ?? "MISSING", a?.clusterIPs ?? "MISSING"];
    });
    say(table(["SERVICE", "SHAPE", "BEFORE", "BEFORE-CLUSTER-IPS", "AFTER", "AFTER-CLUSTER-IPS"], rows));
    if (probe) {
      const counts = probe.snapshot();
      say(`\nTraffic through the whole run (ok/failed): ${trafficLine(counts)}`);
      say(
        "  A-only and IPv4-literal clients lose the Services that became IPv6-only: that is the point of IPv6Only, not a defect;" +
          "\n  AAAA-only and IPv6-literal clients could not reach a Service before it had an IPv6 address.",
      );
    }
    const final = await client.get<MigrationPlan>(MIGRATION_PLANS, undefined, "demo");
    say(
      `\nPlan: phase ${final.status?.phase}, ${final.status?.progress} at target; skipped: ${JSON.stringify(final.status?.summary?.skippedByReason ?? {})}`,
    );

    say(`\nkubeconfig: ${cp.kubeconfigPath}`);
    const kubectl = path.join(cp.bin, "kubectl");
    for (const cmd of [
      "get mplan demo",
      "describe mplan demo",
      "get svc -A -L ipv6migration.io/state",
      "get events -A --field-selector reason=Migrated",
      'patch mplan demo --type=merge -p \'{"spec":{"targetPhase":"Audit"}}\'   # roll everything back',
    ]) {
      say(`  ${kubectl} --kubeconfig ${cp.kubeconfigPath} ${cmd}`);
    }
    if (options.keep) {
      say("\nThe control plane and the operator keep running (--keep). Press Ctrl-C to stop them and clean up.");
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
    } else {
      say("\n(These commands work while it runs: start it with `make demo DEMO_ARGS=--keep`.) Stopping everything.");
    }
    await stop();
    await running;
    logStream.end();
    return 0;
  } finally {
    await stop();
  }
}
