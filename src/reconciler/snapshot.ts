// The two ways a ClusterSnapshot (src/migration/snapshot.ts) is read from the API server: from the operator's
// informer caches, or from paginated LISTs for the one-shot `ipv6-migrate audit`. Every object is trimmed by the
// same functions either way, so both readers see the same facts.
import {
  ENDPOINT_SLICES,
  NAMESPACES,
  SERVICE_CIDRS,
  SERVICES,
  type KubeClient,
  type ResourceType,
} from "../runtime/client.js";
import { Informer } from "../runtime/informer.js";
import type { Logger } from "../runtime/log.js";
import type { KubeObject } from "../runtime/object.js";
import { MIGRATION_PLANS, SERVICE_NAME_LABEL, type MigrationPlan } from "../api/migrationplan.js";
import { trimService, type Service } from "../migration/families.js";
import type { ClusterSnapshot, EndpointSummary } from "../migration/snapshot.js";
import { capabilityFromRanges, probeIPv6ServiceRange, servesServiceCIDRs, type Capability } from "./precondition.js";
import {
  CONFIGMAPS,
  NETWORK_POLICIES,
  NODES,
  PODS,
  trimNetworkPolicy,
  trimNode,
  type NetworkPolicyObject,
  type NodeObject,
} from "./preflight.js";

export type Namespace = KubeObject;

/** An EndpointSlice trimmed to what the gates read: its family, its ready endpoints and their nodes. */
export interface EndpointSlice extends KubeObject {
  addressType: string;
  readyEndpoints: number;
  nodeNames: string[];
}

export interface ServiceCIDR extends KubeObject {
  spec: { cidrs?: string[] };
}

export interface Caches {
  plans: Informer<MigrationPlan>;
  services: Informer<Service>;
  namespaces: Informer<Namespace>;
  endpointSlices: Informer<EndpointSlice>;
  /** Absent where the API server does not serve ServiceCIDR (before Kubernetes 1.33). */
  serviceCIDRs?: Informer<ServiceCIDR>;
  nodes: Informer<NodeObject>;
  networkPolicies: Informer<NetworkPolicyObject>;
  /**
   * Pods and ConfigMaps, metadata only (PartialObjectMetadata, trimmed to name and version): their contents are
   * scanned with paginated LISTs, never cached; these tell when an object a finding names changes or goes.
   */
  podMetadata: Informer<KubeObject>;
  configMapMetadata: Informer<KubeObject>;
}

/** The Service an EndpointSlice belongs to, as "namespace/name". */
export function sliceServiceKey(slice: KubeObject): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name ? `${slice.metadata.namespace ?? ""}/${name}` : undefined;
}

export function trimEndpointSlice(raw: KubeObject): EndpointSlice {
  const slice = raw as KubeObject & {
    addressType?: string;
    endpoints?: { conditions?: { ready?: boolean }; nodeName?: string }[];
  };
  // discovery.k8s.io: an unset ready condition means ready.
  const ready = (slice.endpoints ?? []).filter((e) => e.conditions?.ready !== false);
  return {
    metadata: {
      name: slice.metadata.name,
      namespace: slice.metadata.namespace,
      resourceVersion: slice.metadata.resourceVersion,
      labels: { [SERVICE_NAME_LABEL]: slice.metadata.labels?.[SERVICE_NAME_LABEL] ?? "" },
    },
    addressType: slice.addressType ?? "",
    readyEndpoints: ready.length,
    nodeNames: [...new Set(ready.map((e) => e.nodeName).filter((n): n is string => !!n))],
  };
}

const trimToName = (raw: KubeObject): KubeObject => ({
  metadata: {
    name: raw.metadata.name,
    namespace: raw.metadata.namespace,
    resourceVersion: raw.metadata.resourceVersion,
  },
});

const trimNamespace = (raw: KubeObject): Namespace => ({
  metadata: { name: raw.metadata.name, resourceVersion: raw.metadata.resourceVersion, labels: raw.metadata.labels },
});

function summarise(slices: Iterable<EndpointSlice>): EndpointSummary {
  const summary: EndpointSummary = { ipv6Ready: 0, nodeNames: [] };
  for (const slice of slices) {
    if (slice.addressType === "IPv6") summary.ipv6Ready += slice.readyEndpoints;
    summary.nodeNames.push(...slice.nodeNames);
  }
  return summary;
}

/** The reconciler's caches, each trimmed to what it reads; not started. */
export async function buildCaches(client: KubeClient, logger: Logger): Promise<Caches> {
  const serviceCIDRs = (await servesServiceCIDRs(client))
    ? new Informer<ServiceCIDR>(client, SERVICE_CIDRS, { logger })
    : undefined;
  if (!serviceCIDRs) logger.info("ServiceCIDR is not served: the IPv6 precondition is checked with a dry run");
  return {
    plans: new Informer<MigrationPlan>(client, MIGRATION_PLANS, { logger }),
    services: new Informer<Service>(client, SERVICES, { logger, transform: (raw) => trimService(raw) }),
    namespaces: new Informer<Namespace>(client, NAMESPACES, { logger, transform: trimNamespace }),
    endpointSlices: new Informer<EndpointSlice>(client, ENDPOINT_SLICES, {
      logger,
      transform: trimEndpointSlice,
      indexers: { service: (s) => [sliceServiceKey(s) ?? ""].filter(Boolean) },
    }),
    serviceCIDRs,
    nodes: new Informer<NodeObject>(client, NODES, { logger, transform: trimNode }),
    networkPolicies: new Informer<NetworkPolicyObject>(client, NETWORK_POLICIES, {
      logger,
      transform: trimNetworkPolicy,
    }),
    podMetadata: new Informer(client, PODS, { logger, metadataOnly: true, transform: trimToName }),
    configMapMetadata: new Informer(client, CONFIGMAPS, { logger, metadataOnly: true, transform: trimToName }),
  };
}

/** The snapshot as the caches hold it now: no copy of the Services, indexed lookups for the rest. */
export function snapshotFromCaches(caches: Caches): ClusterSnapshot {
  return {
    plans: caches.plans.store.list(),
    services: caches.services.store.list(),
    namespaceLabels: (ns) => caches.namespaces.store.get(ns)?.metadata.labels ?? {},
    endpoints: (key) => summarise(caches.endpointSlices.store.byIndex("service", key)),
    nodes: caches.nodes.store.list().map((n) => n.info),
    networkPolicies: caches.networkPolicies.store.list().map((p) => p.info),
    ...(caches.serviceCIDRs
      ? { serviceRanges: caches.serviceCIDRs.store.list().flatMap((c) => c.spec.cidrs ?? []) }
      : {}),
  };
}

async function listTrimmed<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  trim: (raw: KubeObject) => T,
): Promise<T[]> {
  return (await client.listAll<KubeObject>(type)).items.map(trim);
}

/** The snapshot from paginated LISTs, for a one-shot reader; `plans` are the plans to judge ownership by. */
export async function listSnapshot(client: KubeClient, plans: MigrationPlan[]): Promise<ClusterSnapshot> {
  const [services, namespaces, slices, nodes, policies, servesRanges] = await Promise.all([
    listTrimmed(client, SERVICES, (raw) => trimService(raw)),
    listTrimmed(client, NAMESPACES, trimNamespace),
    listTrimmed(client, ENDPOINT_SLICES, trimEndpointSlice),
    listTrimmed(client, NODES, trimNode),
    listTrimmed(client, NETWORK_POLICIES, trimNetworkPolicy),
    servesServiceCIDRs(client),
  ]);
  const labels = new Map(namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
  const bySvc = new Map<string, EndpointSlice[]>();
  for (const slice of slices) {
    const key = sliceServiceKey(slice);
    if (key) bySvc.set(key, [...(bySvc.get(key) ?? []), slice]);
  }
  const ranges = servesRanges
    ? (await client.listAll<ServiceCIDR>(SERVICE_CIDRS)).items.flatMap((c) => c.spec.cidrs ?? [])
    : undefined;
  return {
    plans,
    services,
    namespaceLabels: (ns) => labels.get(ns) ?? {},
    endpoints: (key) => summarise(bySvc.get(key) ?? []),
    nodes: nodes.map((n) => n.info),
    networkPolicies: policies.map((p) => p.info),
    ...(ranges ? { serviceRanges: ranges } : {}),
  };
}

/** From the snapshot's Service ranges where ServiceCIDR is served, else from a dry run. */
export async function ipv6ServiceRange(client: KubeClient, snapshot: ClusterSnapshot): Promise<Capability> {
  return snapshot.serviceRanges ? capabilityFromRanges(snapshot.serviceRanges) : probeIPv6ServiceRange(client);
}
