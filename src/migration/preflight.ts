// The dependency audit before IPv6-only: what else would break when a Service loses its IPv4 address. Pure
// functions over trimmed objects; the reconciler gathers them (informers for Nodes and NetworkPolicies,
// paginated scans for Pods and ConfigMaps) and the CLI's audit prints the same findings.
import ipaddr from "ipaddr.js";
import { compareStrings, keyOf } from "../runtime/object.js";
import { matchesSelector } from "./plan.js";
import {
  CUTOVER_TIME_ANNOTATION,
  FINDING_REASONS,
  MAX_FINDINGS,
  type LabelSelector,
  type PreflightStatus,
  type Severity,
} from "../api/migrationplan.js";
import { clusterIPOf, familyOfAddress, type Service } from "./families.js";
import { managersOf, ownerFindings, type Managers, type OwnerSettings } from "./owners.js";

export const FINDING_KINDS = [
  "ServiceRange",
  "Node",
  "EndpointsOnIPv4OnlyNode",
  "NetworkPolicy",
  "HardcodedClusterIP",
  "StaleServiceLinks",
  "IPv4SpecValue",
  "ManagedByController",
  "ManagedByHelm",
  "ManagedByArgoCD",
  "ManagedByFlux",
  "FamilyFieldManager",
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];
type FindingReason = (typeof FINDING_REASONS)[keyof typeof FINDING_REASONS];

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** The object the finding is about, as Kind/namespace/name (or Kind/name). */
  object: string;
  reason: string;
  message: string;
  /** Keys (namespace/name) of the selected Services it blocks from going IPv6-only. */
  services?: string[];
}

export interface NodeInfo {
  name: string;
  internalIPs: string[];
  podCIDRs: string[];
}

export interface IPBlockPeer {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyInfo {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  ingress: { from: { ipBlock?: IPBlockPeer }[] }[];
  egress: { to: { ipBlock?: IPBlockPeer }[] }[];
}

export interface SelectedService {
  key: string;
  namespace: string;
  name: string;
  selector?: Record<string, string>;
  ipv4ClusterIP?: string;
  ipv6ClusterIP?: string;
  /** Nodes of its ready endpoints. */
  endpointNodes: string[];
  /** When the cutover to IPv6-only finished, if it did. */
  cutoverTime?: string;
  type?: string;
  /** Addresses the Service keeps whatever its families: an IPv6-only Service would keep IPv4 ones. */
  externalIPs?: string[];
  loadBalancerSourceRanges?: string[];
  loadBalancerIP?: string;
  /** Who would apply the Service again after a move (src/migration/owners.ts). */
  managers?: Managers;
}

/** What the checks read of a selected Service, given the nodes of its ready endpoints. */
export function selectedService(svc: Service, endpointNodes: string[]): SelectedService {
  return {
    key: keyOf(svc),
    namespace: svc.metadata.namespace ?? "",
    name: svc.metadata.name,
    selector: svc.spec.selector,
    ipv4ClusterIP: clusterIPOf(svc.spec, "IPv4"),
    ipv6ClusterIP: clusterIPOf(svc.spec, "IPv6"),
    endpointNodes,
    cutoverTime: svc.metadata.annotations?.[CUTOVER_TIME_ANNOTATION],
    type: svc.spec.type,
    externalIPs: svc.spec.externalIPs,
    loadBalancerSourceRanges: svc.spec.loadBalancerSourceRanges,
    loadBalancerIP: svc.spec.loadBalancerIP,
    managers: managersOf(svc),
  };
}

export interface PodInfo {
  namespace: string;
  name: string;
  creationTimestamp: string;
  enableServiceLinks: boolean;
  /** "Deployment/web", "StatefulSet/db", or "Pod/name" for a bare pod. */
  workload: string;
  /** Env values and args, keyed by where they are: "container app env DB_HOST", "container app args[2]". */
  values: { key: string; value: string }[];
}

export interface ConfigMapInfo {
  namespace: string;
  name: string;
  data: Record<string, string>;
}

const familyOfCIDR = (cidr: string): "IPv4" | "IPv6" | undefined =>
  ipaddr.isValidCIDR(cidr) ? (ipaddr.parseCIDR(cidr)[0].kind() === "ipv6" ? "IPv6" : "IPv4") : undefined;

/** The Service ranges: families, the IPv6 range's kind (ipaddr.js) and size, and how many more Services fit. */
export function serviceRangeFindings(cidrs: string[], ipv6ClusterIPsInUse: number): Finding[] {
  const findings: Finding[] = [];
  const v6 = cidrs.filter((c) => familyOfCIDR(c) === "IPv6");
  const families = [...new Set(cidrs.map(familyOfCIDR).filter(Boolean))].join(", ") || "none";
  if (v6.length === 0) {
    findings.push({
      kind: "ServiceRange",
      severity: "Blocking",
      object: "ServiceCIDR",
      reason: FINDING_REASONS.noIPv6ServiceRange,
      message: `Service ranges ${cidrs.join(", ") || "(none)"}: families ${families}; no IPv6 range, so no Service can get an IPv6 ClusterIP`,
    });
    return findings;
  }
  for (const cidr of v6) {
    const [address, prefix] = ipaddr.parseCIDR(cidr);
    const kind = address.range();
    const size = 2 ** (128 - prefix);
    // The first address of the range is not handed out (the subnet-router anycast address).
    const free = Math.max(0, size - 1 - ipv6ClusterIPsInUse);
    const good = kind === "uniqueLocal" || kind === "unicast";
    findings.push({
      kind: "ServiceRange",
      severity: good ? "Info" : "Warning",
      object: `ServiceCIDR/${cidr}`,
      reason: good ? `IPv6Range_${kind}` : `UnusualIPv6Range_${kind}`,
      message:
        `IPv6 Service range ${cidr} is ${kind}${good ? "" : " (not unique-local or global unicast: e.g. documentation space is not routable)"}; ` +
        `${size} addresses, ${ipv6ClusterIPsInUse} in use, room for ${free} more Services (families: ${families})`,
    });
  }
  return findings;
}

function hasFamily(values: string[], family: "IPv4" | "IPv6", cidr = false): boolean {
  return values.some((v) =>
    cidr
      ? familyOfCIDR(v) === family
      : ipaddr.isValid(v) && (ipaddr.process(v).kind() === "ipv6" ? "IPv6" : "IPv4") === family,
  );
}

/** Nodes without an IPv6 InternalIP or IPv6 pod range can't serve IPv6 traffic to their pods. */
export function nodeFindings(nodes: NodeInfo[]): Finding[] {
  const out: Finding[] = [];
  for (const node of nodes) {
    const missing: string[] = [];
    if (!hasFamily(node.internalIPs, "IPv6")) missing.push("IPv6 InternalIP");
    if (!hasFamily(node.podCIDRs, "IPv6", true)) missing.push("IPv6 pod range (spec.podCIDRs)");
    if (missing.length === 0) continue;
    out.push({
      kind: "Node",
      severity: "Warning",
      object: `Node/${node.name}`,
      reason: FINDING_REASONS.nodeWithoutIPv6,
      message: `node ${node.name} has no ${missing.join(" and no ")} (InternalIPs ${node.internalIPs.join(", ") || "none"}, podCIDRs ${node.podCIDRs.join(", ") || "none"})`,
    });
  }
  return out;
}

export function ipv4OnlyNodes(nodes: NodeInfo[]): Set<string> {
  return new Set(nodeFindings(nodes).map((f) => f.object.slice("Node/".length)));
}

/** A selected Service with ready endpoints on such a node would lose them after the cutover. */
export function endpointNodeFindings(services: SelectedService[], badNodes: Set<string>): Finding[] {
  const out: Finding[] = [];
  for (const svc of services) {
    const on = svc.endpointNodes.filter((n) => badNodes.has(n));
    if (on.length === 0) continue;
    out.push({
      kind: "EndpointsOnIPv4OnlyNode",
      severity: "Blocking",
      object: `Service/${svc.key}`,
      reason: FINDING_REASONS.endpointsOnIPv4OnlyNode,
      message: `Service ${svc.key} has ready endpoints on nodes without IPv6: ${on.join(", ")}`,
      services: [svc.key],
    });
  }
  return out;
}

/**
 * NetworkPolicy rules whose ipBlocks cover IPv4 only (a cidr or except with no IPv6 counterpart in the same rule):
 * after the cutover the traffic they allow is denied, or the traffic they exclude is let through.
 */
export function networkPolicyFindings(policy: NetworkPolicyInfo, services: SelectedService[]): Finding[] {
  const affected = services
    .filter((s) => s.namespace === policy.namespace && s.selector && matchesSelector(policy.podSelector, s.selector))
    .map((s) => s.key);
  const out: Finding[] = [];
  const check = (direction: "ingress" | "egress", index: number, peers: { ipBlock?: IPBlockPeer }[]) => {
    const blocks = peers.map((p) => p.ipBlock).filter((b): b is IPBlockPeer => b !== undefined);
    if (blocks.length === 0) return;
    const cidrs = blocks.flatMap((b) => [b.cidr, ...(b.except ?? [])]);
    if (!hasFamily(cidrs, "IPv4", true) || hasFamily(cidrs, "IPv6", true)) return;
    out.push({
      kind: "NetworkPolicy",
      severity: affected.length > 0 ? "Blocking" : "Warning",
      object: `NetworkPolicy/${policy.namespace}/${policy.name}`,
      reason: FINDING_REASONS.ipv4OnlyIPBlock,
      message: `${direction}[${index}] of NetworkPolicy ${policy.namespace}/${policy.name} has ipBlocks for IPv4 only (${cidrs.join(", ")}); after the cutover the traffic it matches is IPv6${affected.length ? `; selects the pods of ${affected.join(", ")}` : ""}`,
      ...(affected.length ? { services: affected } : {}),
    });
  };
  policy.ingress.forEach((rule, i) => check("ingress", i, rule.from));
  policy.egress.forEach((rule, i) => check("egress", i, rule.to));
  return out;
}

/**
 * Dotted quads as whole tokens, the way a ClusterIP is written in a value: 10.96.0.1 is not inside 10.96.0.10 nor
 * in a hostname, and a sentence may end after it ("10.96.0.1.").
 */
const IPV4_TOKEN = /(?<![0-9A-Za-z.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9A-Za-z]|\.\d)/g;

/** The selected Services by their IPv4 ClusterIP, for hardcodedIPFindings; built once per scan. */
export type ClusterIPIndex = Map<string, { svc: SelectedService; order: number }>;

export function byClusterIP(services: SelectedService[]): ClusterIPIndex {
  const index: ClusterIPIndex = new Map();
  services.forEach((svc, order) => {
    if (svc.ipv4ClusterIP && svc.ipv4ClusterIP !== "None") index.set(svc.ipv4ClusterIP, { svc, order });
  });
  return index;
}

/**
 * A Service's current IPv4 ClusterIP written literally into a Pod's env or args, or a ConfigMap's data. Each
 * value's addresses are looked up in the index: a match of every value against every Service was, with thousands
 * of Services, most of a scan's CPU even for namespaces without a Pod.
 */
export function hardcodedIPFindings(byIP: ClusterIPIndex, pods: PodInfo[], configMaps: ConfigMapInfo[]): Finding[] {
  const out: Finding[] = [];
  const scan = (object: string, entries: { key: string; value: string }[]) => {
    const keysOf = new Map<string, { svc: SelectedService; order: number; keys: string[] }>();
    for (const { key, value } of entries) {
      for (const [address] of value.matchAll(IPV4_TOKEN)) {
        const hit = byIP.get(address);
        if (!hit) continue;
        const found = keysOf.get(address) ?? { ...hit, keys: [] };
        keysOf.set(address, found);
        if (found.keys.at(-1) !== key) found.keys.push(key);
      }
    }
    for (const { svc, keys } of [...keysOf.values()].sort((a, b) => a.order - b.order)) {
      out.push({
        kind: "HardcodedClusterIP",
        severity: "Blocking",
        object,
        reason: FINDING_REASONS.hardcodedClusterIP,
        message: `${object} holds ${svc.key}'s ClusterIP ${svc.ipv4ClusterIP!} in ${keys.join(", ")}; use the Service's DNS name`,
        services: [svc.key],
      });
    }
  };
  for (const pod of pods) scan(`Pod/${pod.namespace}/${pod.name}`, pod.values);
  for (const cm of configMaps) {
    scan(
      `ConfigMap/${cm.namespace}/${cm.name}`,
      Object.entries(cm.data).map(([key, value]) => ({ key: `data.${key}`, value })),
    );
  }
  return out;
}

/** After a cutover: pods that started before it still hold <SVC>_SERVICE_HOST with the old address. */
export function staleServiceLinkFindings(services: SelectedService[], pods: PodInfo[]): Finding[] {
  const out: Finding[] = [];
  for (const svc of services) {
    if (!svc.cutoverTime) continue;
    const cutover = Date.parse(svc.cutoverTime);
    const stale = pods.filter(
      (p) => p.namespace === svc.namespace && p.enableServiceLinks && Date.parse(p.creationTimestamp) < cutover,
    );
    const byWorkload = new Map<string, number>();
    for (const pod of stale) byWorkload.set(pod.workload, (byWorkload.get(pod.workload) ?? 0) + 1);
    for (const [workload, count] of byWorkload) {
      const env = `${svc.name.toUpperCase().replace(/-/g, "_")}_SERVICE_HOST`;
      out.push({
        kind: "StaleServiceLinks",
        severity: "Warning",
        object: `${workload.split("/")[0]}/${svc.namespace}/${workload.split("/").slice(1).join("/")}`,
        reason: FINDING_REASONS.staleServiceLinks,
        message: `${count} pod(s) of ${workload} in ${svc.namespace} started before ${svc.key}'s cutover and hold ${env} with its old address; restart them (kubectl rollout restart)`,
        services: [svc.key],
      });
    }
  }
  return out;
}

/** The workload a pod belongs to: a ReplicaSet made by a Deployment is named after the Deployment. */
export function workloadOf(pod: {
  name: string;
  labels?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; controller?: boolean }[];
}): string {
  const owner = pod.ownerReferences?.find((o) => o.controller) ?? pod.ownerReferences?.[0];
  if (!owner) return `Pod/${pod.name}`;
  const hash = pod.labels?.["pod-template-hash"];
  if (owner.kind === "ReplicaSet" && hash && owner.name.endsWith(`-${hash}`)) {
    return `Deployment/${owner.name.slice(0, -hash.length - 1)}`;
  }
  return `${owner.kind}/${owner.name}`;
}

/**
 * IPv4 values in the fields the API server keeps whatever the Service's families (it checks no family there):
 * after IPv6Only the external IPs are no longer served, the source ranges admit no client, and the load balancer
 * can't take the address. Parsed with ipaddr.js, IPv4-mapped IPv6 counting as IPv4 as Kubernetes counts it.
 */
export function ipv4ValueFindings(services: SelectedService[]): Finding[] {
  const out: Finding[] = [];
  const isIPv4 = (ip: string) => familyOfAddress(ip) === "IPv4";
  for (const svc of services) {
    if (svc.type === "ExternalName") continue;
    const found = (reason: FindingReason, field: string, values: string[], effect: string) =>
      out.push({
        kind: "IPv4SpecValue",
        severity: "Blocking",
        object: `Service/${svc.key}`,
        reason,
        message: `spec.${field} of Service ${svc.key} holds IPv4 ${values.join(", ")}, which the API server keeps after IPv6Only: ${effect}`,
        services: [svc.key],
      });
    const externalIPs = (svc.externalIPs ?? []).filter(isIPv4);
    if (externalIPs.length > 0) {
      found(
        FINDING_REASONS.ipv4ExternalIPs,
        "externalIPs",
        externalIPs,
        "an IPv6-only Service is no longer served on them; replace them with IPv6 addresses or remove them",
      );
    }
    const ranges = (svc.loadBalancerSourceRanges ?? []).map((r) => r.trim()).filter((r) => familyOfCIDR(r) === "IPv4");
    if (ranges.length > 0) {
      found(
        FINDING_REASONS.ipv4LoadBalancerSourceRanges,
        "loadBalancerSourceRanges",
        ranges,
        "an IPv6-only load balancer admits no client through them; add the IPv6 ranges of the same clients and remove these",
      );
    }
    if (svc.loadBalancerIP && isIPv4(svc.loadBalancerIP)) {
      found(
        FINDING_REASONS.ipv4LoadBalancerIP,
        "loadBalancerIP",
        [svc.loadBalancerIP],
        "an IPv6-only load balancer can't take it; remove it (or ask the provider for an IPv6 address)",
      );
    }
  }
  return out;
}

/**
 * Findings that keep a Service from going IPv6-only through spec.ipv6Only.requirePreflight, by Service key. A
 * controller-owned Service has a gate of its own (spec.ipv6Only.allowControllerOwned, in decide()).
 */
export function blockingByService(findings: Finding[]): Map<string, Finding[]> {
  const out = new Map<string, Finding[]>();
  for (const f of findings) {
    if (f.severity !== "Blocking" || f.kind === "StaleServiceLinks" || f.kind === "ManagedByController") continue;
    for (const key of f.services ?? []) out.set(key, [...(out.get(key) ?? []), f]);
  }
  return out;
}

/**
 * The findings that come from cached objects (cheap: computed on every reconcile). The Service-range finding,
 * whose message counts the IPv6 ClusterIPs in use cluster-wide, is not among them: it is refreshed with each
 * scan, so that every Service created elsewhere does not rewrite every plan's status.
 */
export function cachedFindings(inputs: {
  nodes: NodeInfo[];
  networkPolicies: NetworkPolicyInfo[];
  services: SelectedService[];
  settings: OwnerSettings;
}): Finding[] {
  const namespaces = new Set(inputs.services.map((s) => s.namespace));
  return [
    ...ipv4ValueFindings(inputs.services),
    ...ownerFindings(inputs.services, inputs.settings),
    ...nodeFindings(inputs.nodes),
    ...endpointNodeFindings(inputs.services, ipv4OnlyNodes(inputs.nodes)),
    ...inputs.networkPolicies
      .filter((p) => namespaces.has(p.namespace))
      .flatMap((p) => networkPolicyFindings(p, inputs.services)),
  ];
}

/** The status section: counts by kind, and the most severe findings first, at most MAX_FINDINGS. */
export function preflightStatus(findings: Finding[]): PreflightStatus {
  const rank: Record<string, number> = { Blocking: 0, Warning: 1, Info: 2 };
  const sorted = [...findings].sort(
    (a, b) => (rank[a.severity] ?? 3) - (rank[b.severity] ?? 3) || compareStrings(a.object, b.object),
  );
  const counts: Record<string, number> = {};
  for (const f of findings) counts[f.kind] = (counts[f.kind] ?? 0) + 1;
  return {
    counts,
    findings: sorted
      .slice(0, MAX_FINDINGS)
      .map(({ kind, severity, object, reason, message }) => ({ kind, severity, object, reason, message })),
    ...(sorted.length > MAX_FINDINGS ? { findingsTruncated: sorted.length - MAX_FINDINGS } : {}),
  };
}
