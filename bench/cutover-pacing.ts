// The experiment behind the IPv6Only gap: the operator's own cutover code (decide() and ServiceWriter.cutover,
// the two PATCHes through ExternalName) run on dual-stack Services one at a time, on an idle data plane, with
// and without a "pacer" write just before: a change to a Service of no one's (no selector, no endpoints) that
// makes every kube-proxy sync at once, so that the cutover's two writes land inside the min-sync-period that
// follows and are coalesced into one sync (where the IPv6 ClusterIP is unchanged, so no rule is removed).
//
// Why it works (k8s.io/kubernetes v1.37.2, pkg/proxy/runner/bounded_frequency_runner.go): kube-proxy runs
// syncProxyRules at once when it has been idle for its min-sync-period (1s by default), then waits that period
// after each run before the next; changes seen meanwhile are merged by ServiceChangeTracker.Update, which drops
// a change whose end state equals its start (pkg/proxy/servicechangetracker.go). An ExternalName Service is no
// Service to kube-proxy (ShouldSkipService), so the cutover's first write, arriving at an idle kube-proxy, is
// synced alone, and the second waits a full period: the kept IPv6 ClusterIP has no rule for ~1s, and the
// nftables "drop traffic to unallocated ClusterIPs" rule turns new connections into timeouts.
import { FIELD_MANAGER } from "../src/api/migrationplan.js";
import { decide, type PlanSettings } from "../src/migration/service.js";
import { type Service } from "../src/migration/families.js";
import { ServiceWriter } from "../src/reconciler/service-writer.js";
import { KubeClient, NAMESPACES, SERVICES } from "../src/runtime/client.js";
import { WriteExpectations } from "../src/runtime/expectations.js";
import { silentLogger } from "../src/runtime/log.js";
import type { DataPlane } from "../src/testenv/dataplane.js";
import { startProbe, type ProbeRecords } from "../src/testenv/probe.js";
import { SERVICE_PORT, type EstateService } from "../test/dataplane-scenario.js";

export const PACER_NAMESPACE = "pacing-system";
export const PACER_SERVICE = "kube-proxy-pacer";
const IPV6_KINDS = new Set(["name-aaaa", "name-he", "ip-v6"]);

export interface PacingOptions {
  namespace: string;
  services: EstateService[];
  /** Cutovers per variant (forward and back alternate). */
  rounds: number;
  /** Quiet time between cutovers, longer than kube-proxy's min-sync-period: each starts on an idle proxy. */
  idleMs: number;
  /** How long after the pacer write the cutover starts: time for every kube-proxy to see it and sync. */
  leadMs: number;
  rate: number;
}

export interface PacingVariant {
  variant: "unpaced" | "paced";
  cutovers: number;
  /** Cutovers after which the kept IPv6 ClusterIP was missing from kube-proxy's map at some poll. */
  withRuleGap: number;
  longestRuleGapMs: number;
  ipv6Requests: number;
  ipv6Failed: number;
  /** Milliseconds from the first write (to ExternalName) to the second, as the harness saw them. */
  medianWritesApartMs: number;
}

interface Cutover {
  variant: PacingVariant["variant"];
  service: string;
  ip: string;
  start: number;
  end: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function settings(target: "IPv6Only" | "DualStack"): PlanSettings {
  return {
    plan: "pacing",
    planGeneration: 1,
    target,
    dualStackPolicy: "PreferDualStack",
    requireIPv6Endpoints: false,
    allowLoadBalancerRecreate: true,
    requirePreflight: false,
    now: new Date().toISOString(),
  };
}

export async function pacingExperiment(
  dp: DataPlane,
  client: KubeClient,
  options: PacingOptions,
): Promise<{ variants: PacingVariant[]; records: ProbeRecords }> {
  const writer = new ServiceWriter(client, silentLogger, new WriteExpectations());
  await client.create(NAMESPACES, undefined, { metadata: { name: PACER_NAMESPACE } });
  await client.create(SERVICES, PACER_NAMESPACE, {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: PACER_SERVICE },
    spec: { ipFamilyPolicy: "PreferDualStack", ports: [{ name: "pace", port: 1, protocol: "TCP" }] },
  });
  let pacerPort = 1;
  const pace = async () => {
    pacerPort = pacerPort === 1 ? 2 : 1;
    await client.patch(
      SERVICES,
      PACER_NAMESPACE,
      PACER_SERVICE,
      { spec: { ports: [{ name: "pace", port: pacerPort, protocol: "TCP" }] } },
      "merge",
      { fieldManager: FIELD_MANAGER },
    );
  };
  const probe = await startProbe(
    dp,
    client,
    options.services.map((s) => ({
      namespace: options.namespace,
      name: s.name,
      backend: s.pod.name,
      port: SERVICE_PORT,
    })),
    { rate: options.rate, dnsWatchMs: 200, longLived: true },
  );
  const cutovers: Cutover[] = [];
  try {
    await sleep(options.idleMs);
    for (let i = 0; i < options.rounds * 2; i++) {
      const variant = i % 2 === 0 ? "unpaced" : "paced";
      const entry = options.services[Math.floor(i / 2) % options.services.length];
      const svc = await client.get<Service>(SERVICES, options.namespace, entry.name);
      const toIPv6 = svc.spec.ipFamilies?.[0] === "IPv4";
      const decision = decide(svc, settings(toIPv6 ? "IPv6Only" : "DualStack"), { ipv6ReadyEndpoints: 1 });
      if (decision.action !== "cutover") throw new Error(`${entry.name}: expected a cutover, got ${decision.action}`);
      const ip = (svc.spec.clusterIPs ?? []).find((a) => a.includes(":")) ?? "";
      const start = performance.timeOrigin + performance.now();
      if (variant === "paced") {
        await pace();
        await sleep(options.leadMs);
      }
      await writer.cutover(svc, decision.toExternalName, decision.record);
      const end = performance.timeOrigin + performance.now();
      cutovers.push({ variant, service: `${options.namespace}/${entry.name}`, ip, start, end });
      await sleep(options.idleMs);
    }
  } finally {
    await probe.stop();
  }
  const records = probe.records;
  const variants: PacingVariant[] = [];
  for (const variant of ["unpaced", "paced"] as const) {
    const mine = cutovers.filter((c) => c.variant === variant);
    const result: PacingVariant = {
      variant,
      cutovers: mine.length,
      withRuleGap: 0,
      longestRuleGapMs: 0,
      ipv6Requests: 0,
      ipv6Failed: 0,
      medianWritesApartMs: 0,
    };
    const apart: number[] = [];
    for (const c of mine) {
      const windowEnd = c.end + options.idleMs - 200;
      const requests = records.requests.filter(
        (r) => r.s === c.service && IPV6_KINDS.has(r.k) && r.t >= c.start && r.t < windowEnd,
      );
      result.ipv6Requests += requests.length;
      result.ipv6Failed += requests.filter((r) => r.c).length;
      const removed = records.rules.find((r) => r.ip === c.ip && !r.present && r.t >= c.start && r.t < windowEnd);
      if (removed) {
        result.withRuleGap++;
        const back = records.rules.find((r) => r.ip === c.ip && r.present && r.t > removed.t);
        result.longestRuleGapMs = Math.max(result.longestRuleGapMs, Math.round((back?.t ?? windowEnd) - removed.t));
      }
      const changes = records.services.filter((s) => s.s === c.service && s.t >= c.start && s.t <= c.end + 500);
      const external = changes.find((s) => s.type === "ExternalName");
      const back = changes.find((s) => external && s.t > external.t && s.type !== "ExternalName");
      if (external && back) apart.push(back.t - external.t);
    }
    apart.sort((a, b) => a - b);
    result.medianWritesApartMs = Math.round(apart[Math.floor(apart.length / 2)] ?? 0);
    variants.push(result);
  }
  return { variants, records };
}
