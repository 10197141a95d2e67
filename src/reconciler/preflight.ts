// Preflight I/O. Nodes and NetworkPolicies are small and cached by informers (trimmed to what the checks read).
// Pods and ConfigMaps can be huge, so the operator never caches them: it scans them with paginated LISTs and
// keeps only the findings, page by page, so memory stays flat however many there are.
import { core, type KubeClient, type ResourceType } from "../runtime/client.js";
import type { KubeObject } from "../runtime/object.js";
import { clusterIPOf } from "../migration/families.js";
import type { ClusterSnapshot } from "../migration/snapshot.js";
import {
  byClusterIP,
  hardcodedIPFindings,
  serviceRangeFindings,
  staleServiceLinkFindings,
  workloadOf,
  type ConfigMapInfo,
  type Finding,
  type IPBlockPeer,
  type NetworkPolicyInfo,
  type NodeInfo,
  type PodInfo,
  type SelectedService,
} from "../migration/preflight.js";

export const PODS = core("pods", "Pod");
export const CONFIGMAPS = core("configmaps", "ConfigMap");
export const NODES = core("nodes", "Node", false);
export const NETWORK_POLICIES: ResourceType = {
  group: "networking.k8s.io",
  version: "v1",
  resource: "networkpolicies",
  kind: "NetworkPolicy",
  namespaced: true,
};

interface Container {
  name: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string }[];
}

interface PodObject extends KubeObject {
  spec?: { enableServiceLinks?: boolean; containers?: Container[]; initContainers?: Container[] };
}

interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

export function podInfo(pod: PodObject): PodInfo {
  const values: { key: string; value: string }[] = [];
  for (const [kind, containers] of [
    ["container", pod.spec?.containers ?? []],
    ["initContainer", pod.spec?.initContainers ?? []],
  ] as const) {
    for (const c of containers) {
      for (const e of c.env ?? []) if (e.value) values.push({ key: `${kind} ${c.name} env ${e.name}`, value: e.value });
      (c.args ?? []).forEach((a, i) => values.push({ key: `${kind} ${c.name} args[${i}]`, value: a }));
      (c.command ?? []).forEach((a, i) => values.push({ key: `${kind} ${c.name} command[${i}]`, value: a }));
    }
  }
  return {
    namespace: pod.metadata.namespace ?? "",
    name: pod.metadata.name,
    creationTimestamp: pod.metadata.creationTimestamp ?? "",
    enableServiceLinks: pod.spec?.enableServiceLinks !== false,
    workload: workloadOf({
      name: pod.metadata.name,
      labels: pod.metadata.labels,
      ownerReferences: pod.metadata.ownerReferences,
    }),
    values,
  };
}

async function forEachPage<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  namespace: string,
  pageSize: number,
  visit: (items: T[]) => void,
): Promise<number> {
  let continueToken: string | undefined;
  let count = 0;
  do {
    const page = await client.list<T>(type, namespace, { limit: pageSize, continue: continueToken });
    visit(page.items);
    count += page.items.length;
    continueToken = page.metadata.continue || undefined;
  } while (continueToken);
  return count;
}

/**
 * What is read beyond the snapshot, on the preflight's own schedule: the Service-range finding (its message counts
 * the IPv6 ClusterIPs in use cluster-wide) and the Pods and ConfigMaps of the selected Services' namespaces.
 */
export async function scanPreflight(
  client: KubeClient,
  snapshot: ClusterSnapshot,
  subjects: SelectedService[],
): Promise<ScanResult> {
  const ranges: Finding[] = [];
  if (snapshot.serviceRanges) {
    let ipv6InUse = 0;
    for (const svc of snapshot.services) if (clusterIPOf(svc.spec, "IPv6")) ipv6InUse++;
    ranges.push(...serviceRangeFindings(snapshot.serviceRanges, ipv6InUse));
  }
  const workloads = await scanWorkloads(client, subjects);
  return { ...workloads, findings: [...ranges, ...workloads.findings] };
}

export interface ScanResult {
  findings: Finding[];
  pods: number;
  configMaps: number;
}

/**
 * Namespaces scanned at once. One after the other, 50 namespaces were 100 round trips, most of an audit's time
 * at 1,000 Services (bench/README.md); a few at once keep each page's memory small (the pages of one namespace are
 * still read one by one).
 */
const SCAN_NAMESPACES_IN_FLIGHT = 4;

/** Scans the Pods and ConfigMaps of the namespaces of the selected Services. */
export async function scanWorkloads(
  client: KubeClient,
  services: SelectedService[],
  pageSize = 500,
): Promise<ScanResult> {
  const byNamespace = new Map<string, SelectedService[]>();
  for (const s of services) {
    const list = byNamespace.get(s.namespace);
    if (list) list.push(s);
    else byNamespace.set(s.namespace, [s]);
  }
  const namespaces = [...byNamespace.keys()].sort();
  const byIP = byClusterIP(services);
  // Per namespace, so that the findings come out in the same order however the scans interleave.
  const found: Finding[][] = namespaces.map(() => []);
  let pods = 0;
  let configMaps = 0;
  const scan = async (i: number) => {
    const namespace = namespaces[i] ?? "";
    const inNamespace = byNamespace.get(namespace) ?? [];
    const findings = found[i] ?? [];
    pods += await forEachPage<PodObject>(client, PODS, namespace, pageSize, (items) => {
      const page = items.map(podInfo);
      findings.push(...hardcodedIPFindings(byIP, page, []), ...staleServiceLinkFindings(inNamespace, page));
    });
    configMaps += await forEachPage<ConfigMapObject>(client, CONFIGMAPS, namespace, pageSize, (items) => {
      const page: ConfigMapInfo[] = items.map((cm) => ({
        namespace: cm.metadata.namespace ?? "",
        name: cm.metadata.name,
        data: cm.data ?? {},
      }));
      findings.push(...hardcodedIPFindings(byIP, [], page));
    });
  };
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < namespaces.length; i = next++) await scan(i);
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_NAMESPACES_IN_FLIGHT, namespaces.length) }, worker));
  return { findings: mergeStaleLinks(found.flat()), pods, configMaps };
}

/** Stale-link findings of one workload found on several pages are one finding. */
function mergeStaleLinks(findings: Finding[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Map<string, Finding>();
  for (const f of findings) {
    if (f.kind !== "StaleServiceLinks") {
      out.push(f);
      continue;
    }
    const key = `${f.object}|${(f.services ?? []).join(",")}`;
    const prior = seen.get(key);
    if (!prior) {
      seen.set(key, f);
      out.push(f);
      continue;
    }
    const count = (m: string) => Number(/^(\d+) pod/.exec(m)?.[1] ?? 0);
    prior.message = prior.message.replace(/^\d+/, String(count(prior.message) + count(f.message)));
  }
  return out;
}

/** A Node as the cache holds it: only what the checks read. */
export interface NodeObject extends KubeObject {
  info: NodeInfo;
}

/** A NetworkPolicy as the cache holds it: only its pod selector and ipBlocks. */
export interface NetworkPolicyObject extends KubeObject {
  info: NetworkPolicyInfo;
}

export function trimNode(raw: KubeObject): NodeObject {
  const node = raw as KubeObject & {
    spec?: { podCIDRs?: string[]; podCIDR?: string };
    status?: { addresses?: { type: string; address: string }[] };
  };
  return {
    metadata: { name: node.metadata.name, resourceVersion: node.metadata.resourceVersion },
    info: {
      name: node.metadata.name,
      internalIPs: (node.status?.addresses ?? []).filter((a) => a.type === "InternalIP").map((a) => a.address),
      podCIDRs: node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []),
    },
  };
}

type RawPeer = { ipBlock?: IPBlockPeer };
export function trimNetworkPolicy(raw: KubeObject): NetworkPolicyObject {
  const np = raw as KubeObject & {
    spec?: {
      podSelector?: NetworkPolicyInfo["podSelector"];
      ingress?: { from?: RawPeer[] }[];
      egress?: { to?: RawPeer[] }[];
    };
  };
  const peers = (list: RawPeer[] | undefined) => (list ?? []).map((p) => (p.ipBlock ? { ipBlock: p.ipBlock } : {}));
  return {
    metadata: {
      name: np.metadata.name,
      namespace: np.metadata.namespace,
      resourceVersion: np.metadata.resourceVersion,
    },
    info: {
      namespace: np.metadata.namespace ?? "",
      name: np.metadata.name,
      podSelector: np.spec?.podSelector ?? {},
      ingress: (np.spec?.ingress ?? []).map((r) => ({ from: peers(r.from) })),
      egress: (np.spec?.egress ?? []).map((r) => ({ to: peers(r.to) })),
    },
  };
}
