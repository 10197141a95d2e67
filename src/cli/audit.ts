// `ipv6-migrate audit`: a one-shot, read-only report of where each Service stands and what a plan would do
// with it. It reads with paginated LISTs and writes nothing (its dry-run probe, where ServiceCIDR is not
// served, persists nothing either).
import { dumpYaml } from "@kubernetes/client-node";
import { ENDPOINT_SLICES, NAMESPACES, SERVICE_CIDRS, SERVICES, type KubeClient } from "../runtime/client.js";
import { keyOf, type KubeObject } from "../runtime/object.js";
import type { MigrationPlan } from "../migration/api.js";
import { selects, settingsOf } from "../migration/plan.js";
import { clusterIPOf, decide, familyState, shapeOf, trimService, type Service } from "../migration/service.js";
import { blockingByService, selectedService, serviceRangeFindings, type Finding } from "../migration/preflight.js";
import {
  cachedFindings,
  NETWORK_POLICIES,
  NODES,
  preflightStatus,
  scanWorkloads,
  trimNetworkPolicy,
  trimNode,
} from "../reconciler/preflight.js";
import {
  capabilityFromRanges,
  probeIPv6ServiceRange,
  servesServiceCIDRs,
  type Capability,
} from "../reconciler/precondition.js";
import { table } from "./table.js";

export interface AuditOptions {
  namespaces: string[];
  excludeNamespaces: string[];
  /** Label selector over Services, e.g. "app=web" or "tier in (front)". */
  selector?: string;
}

export interface AuditedService {
  namespace: string;
  name: string;
  type: string;
  shape: string;
  state: string;
  ipFamilies: string[];
  ipFamilyPolicy: string;
  clusterIPs: string[];
  /** What a plan with targetPhase IPv6Only would do: move, none, skip or block, with the reason. */
  ipv6Only: { action: string; reason?: string; message?: string };
}

export interface AuditReport {
  cluster: { server: string; ipv6ServiceRange: Capability };
  summary: { services: number; ipv4Only: number; dualStack: number; ipv6Only: number; noClusterIP: number };
  services: AuditedService[];
  /** The dependency audit the operator makes before IPv6-only (the same findings as in a plan's status). */
  preflight: { counts: Record<string, number>; findings: Finding[] };
}

interface EndpointSliceObject extends KubeObject {
  addressType?: string;
  endpoints?: { conditions?: { ready?: boolean }; nodeName?: string }[];
}

/** Label selector strings as kubectl takes them, into a LabelSelector (equality and set-based forms). */
export function parseLabelSelector(selector: string | undefined): MigrationPlan["spec"]["selector"] {
  if (!selector) return undefined;
  const matchLabels: Record<string, string> = {};
  const matchExpressions: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[] =
    [];
  for (const part of selector.match(/([^,(]+(\([^)]*\))?)/g) ?? []) {
    const term = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*(==|=)\s*([\w.-]*)$/.exec(term))) matchLabels[m[1]] = m[3]!;
    else if ((m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(term)))
      matchExpressions.push({ key: m[1], operator: "NotIn", values: [m[2]] });
    else if ((m = /^([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term)))
      matchExpressions.push({
        key: m[1],
        operator: m[2] === "in" ? "In" : "NotIn",
        values: m[3].split(",").map((v) => v.trim()),
      });
    else if ((m = /^!([\w./-]+)$/.exec(term))) matchExpressions.push({ key: m[1], operator: "DoesNotExist" });
    else if ((m = /^([\w./-]+)$/.exec(term))) matchExpressions.push({ key: m[1], operator: "Exists" });
    else throw new Error(`--selector: cannot parse "${term}" (use key=value, key!=value, key in (a,b), key, !key)`);
  }
  return { serviceSelector: { matchLabels, matchExpressions } };
}

export async function audit(client: KubeClient, options: AuditOptions): Promise<AuditReport> {
  const plan: MigrationPlan = {
    metadata: { name: "audit", generation: 1 },
    spec: {
      targetPhase: "IPv6Only",
      selector: {
        ...parseLabelSelector(options.selector),
        namespaces: options.namespaces,
        excludeNamespaces: options.excludeNamespaces,
      },
    },
  };
  const [services, namespaces, slices] = await Promise.all([
    client.listAll<Service>(SERVICES),
    client.listAll<KubeObject>(NAMESPACES),
    client.listAll<EndpointSliceObject>(ENDPOINT_SLICES),
  ]);
  const nsLabels = new Map(namespaces.items.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
  const ipv6Ready = new Map<string, number>();
  for (const slice of slices.items) {
    const svc = slice.metadata.labels?.["kubernetes.io/service-name"];
    if (!svc || slice.addressType !== "IPv6") continue;
    const key = `${slice.metadata.namespace ?? ""}/${svc}`;
    const ready = (slice.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
    ipv6Ready.set(key, (ipv6Ready.get(key) ?? 0) + ready);
  }
  const ipv6ServiceRange = (await servesServiceCIDRs(client))
    ? capabilityFromRanges(
        (
          await client.listAll<{ metadata: { name: string }; spec?: { cidrs?: string[] } }>(SERVICE_CIDRS)
        ).items.flatMap((c) => c.spec?.cidrs ?? []),
      )
    : await probeIPv6ServiceRange(client);

  const settings = settingsOf(plan);
  const selected = services.items
    .map((raw) => trimService(raw))
    .filter((svc) => selects(plan, svc, nsLabels.get(svc.metadata.namespace ?? "")));
  const findings = await preflightFindings(client, selected, slices.items, services.items);
  const blocking = blockingByService(findings);
  const out: AuditedService[] = [];
  for (const svc of selected) {
    const block = blocking.get(keyOf(svc))?.[0];
    const decision = decide(svc, settings, {
      ipv6ReadyEndpoints: ipv6Ready.get(keyOf(svc)) ?? 0,
      ...(block ? { preflightBlock: { reason: block.reason, message: `${block.object}: ${block.message}` } } : {}),
    });
    const ipv6Only =
      decision.action === "skip" || decision.action === "block"
        ? { action: decision.action, reason: decision.reason, message: decision.message }
        : decision.action === "none"
          ? { action: "none" }
          : decision.action === "cutover"
            ? { action: "cutover", message: decision.description }
            : decision.action === "patch"
              ? { action: "patch", message: decision.description }
              : { action: decision.action };
    out.push({
      namespace: svc.metadata.namespace ?? "",
      name: svc.metadata.name,
      type: svc.spec.type ?? "ClusterIP",
      shape: shapeOf(svc),
      state: familyState(svc.spec),
      ipFamilies: svc.spec.ipFamilies ?? [],
      ipFamilyPolicy: svc.spec.ipFamilyPolicy ?? "",
      clusterIPs: svc.spec.clusterIPs ?? [],
      ipv6Only,
    });
  }
  out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  const count = (state: string) => out.filter((s) => s.state === state).length;
  return {
    cluster: { server: client.kubeConfig.getCurrentCluster()?.server ?? "", ipv6ServiceRange },
    summary: {
      services: out.length,
      ipv4Only: count("ipv4-only"),
      dualStack: count("dual-stack"),
      ipv6Only: count("ipv6-only"),
      noClusterIP: count("no-cluster-ip"),
    },
    services: out,
    preflight: { counts: preflightStatus(findings).counts, findings },
  };
}

async function preflightFindings(
  client: KubeClient,
  selected: Service[],
  slices: EndpointSliceObject[],
  allServices: Service[],
): Promise<Finding[]> {
  const nodesBySvc = new Map<string, string[]>();
  for (const slice of slices) {
    const svc = slice.metadata.labels?.["kubernetes.io/service-name"];
    if (!svc) continue;
    const key = `${slice.metadata.namespace ?? ""}/${svc}`;
    const nodes = (slice.endpoints ?? []).filter((e) => e.conditions?.ready !== false).map((e) => e.nodeName ?? "");
    nodesBySvc.set(key, [...(nodesBySvc.get(key) ?? []), ...nodes.filter(Boolean)]);
  }
  const selectedInfo = selected.map((svc) => selectedService(svc, nodesBySvc.get(keyOf(svc)) ?? []));
  const [nodes, policies] = await Promise.all([
    client.listAll<KubeObject>(NODES),
    client.listAll<KubeObject>(NETWORK_POLICIES),
  ]);
  const cidrs = (await servesServiceCIDRs(client))
    ? (await client.listAll<{ metadata: { name: string }; spec?: { cidrs?: string[] } }>(SERVICE_CIDRS)).items.flatMap(
        (c) => c.spec?.cidrs ?? [],
      )
    : [];
  const findings = cidrs.length
    ? serviceRangeFindings(cidrs, allServices.filter((s) => clusterIPOf(s.spec, "IPv6")).length)
    : [];
  findings.push(
    ...cachedFindings({
      nodes: nodes.items
        .map(trimNode)
        .map((n) => ({ name: n.metadata.name, internalIPs: n.internalIPs, podCIDRs: n.podCIDRs })),
      networkPolicies: policies.items.map((p) => trimNetworkPolicy(p).info),
      services: selectedInfo,
    }),
  );
  findings.push(...(await scanWorkloads(client, selectedInfo)).findings);
  return findings;
}

export function formatAudit(report: AuditReport, output: "table" | "json" | "yaml"): string {
  if (output === "json") return JSON.stringify(report, null, 2);
  if (output === "yaml") return dumpYaml(report);
  const rows = report.services.map((s) => [
    s.namespace,
    s.name,
    s.shape,
    s.state,
    s.clusterIPs.join(",") || "-",
    s.ipv6Only.reason ? `${s.ipv6Only.action}: ${s.ipv6Only.reason}` : s.ipv6Only.action,
  ]);
  const range = report.cluster.ipv6ServiceRange;
  const s = report.summary;
  return [
    `Cluster ${report.cluster.server}: ${range.status ? "ready for IPv6 Services" : "NOT ready for IPv6 Services"}: ${range.message}`,
    "",
    table(["NAMESPACE", "NAME", "SHAPE", "STATE", "CLUSTER-IPS", "TO IPV6-ONLY"], rows),
    "",
    `${s.services} Services: ${s.ipv4Only} IPv4-only, ${s.dualStack} dual-stack, ${s.ipv6Only} IPv6-only, ${s.noClusterIP} without a ClusterIP`,
    "",
    "Preflight (what else would break when these Services go IPv6-only):",
    report.preflight.findings.length === 0
      ? "  no finding"
      : table(
          ["SEVERITY", "KIND", "OBJECT", "MESSAGE"],
          report.preflight.findings.map((f) => [f.severity, f.kind, f.object, f.message]),
        ),
  ].join("\n");
}
