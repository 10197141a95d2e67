// Wires the caches, the MigrationPlan controller and the manager into the running operator.
import {
  ENDPOINT_SLICES,
  NAMESPACES,
  SERVICE_CIDRS,
  SERVICES,
  type KubeClient,
  isNotFound,
} from "../runtime/client.js";
import { realClock } from "../runtime/clock.js";
import { Controller } from "../runtime/controller.js";
import { EventRecorder } from "../runtime/events.js";
import { Informer } from "../runtime/informer.js";
import type { Logger } from "../runtime/log.js";
import { Manager } from "../runtime/manager.js";
import type { KubeObject } from "../runtime/object.js";
import { MIGRATION_PLANS, type MigrationPlan } from "../migration/api.js";
import { trimService, type Service } from "../migration/service.js";
import {
  MigrationPlanReconciler,
  SERVICE_NAME_LABEL,
  type Caches,
  type EndpointSlice,
  type Namespace,
  type ServiceCIDR,
} from "./migrationplan.js";
import { servesServiceCIDRs } from "./precondition.js";
import {
  NETWORK_POLICIES,
  NODES,
  trimNetworkPolicy,
  trimNode,
  type NetworkPolicyObject,
  type NodeObject,
} from "./preflight.js";

export interface OperatorOptions {
  client: KubeClient;
  logger: Logger;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  workers?: number;
  /** How often Pods and ConfigMaps are rescanned for preflight findings when nothing else asks for a scan. */
  preflightIntervalMs?: number;
}

/** Checks what the operator cannot run without, with a message a person can act on. */
export async function preflightAPI(client: KubeClient): Promise<void> {
  try {
    await client.list(MIGRATION_PLANS, undefined, { limit: 1 });
  } catch (err) {
    if (isNotFound(err)) {
      throw new Error(
        "the MigrationPlan CRD (migrationplans.ipv6migration.io) is not installed: kubectl apply -f crds/ (or -k config/default)",
        { cause: err },
      );
    }
    throw err;
  }
}

function trimEndpointSlice(raw: KubeObject): EndpointSlice {
  const slice = raw as KubeObject & {
    addressType?: string;
    endpoints?: { conditions?: { ready?: boolean }; nodeName?: string }[];
  };
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

const trimMeta = (raw: KubeObject): Namespace => ({
  metadata: { name: raw.metadata.name, resourceVersion: raw.metadata.resourceVersion, labels: raw.metadata.labels },
});

/** The reconciler's caches, each trimmed to what it reads; not started. */
export async function buildCaches(client: KubeClient, logger: Logger): Promise<Caches> {
  const plans = new Informer<MigrationPlan>(client, MIGRATION_PLANS, { logger });
  const services = new Informer<Service>(client, SERVICES, {
    logger,
    transform: (raw) => trimService(raw),
  });
  const namespaces = new Informer<Namespace>(client, NAMESPACES, { logger, transform: trimMeta });
  const endpointSlices = new Informer<EndpointSlice>(client, ENDPOINT_SLICES, {
    logger,
    transform: trimEndpointSlice,
    indexers: {
      service: (s) => {
        const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
        return svc ? [`${s.metadata.namespace ?? ""}/${svc}`] : [];
      },
    },
  });
  const serviceCIDRs = (await servesServiceCIDRs(client))
    ? new Informer<ServiceCIDR>(client, SERVICE_CIDRS, { logger })
    : undefined;
  if (!serviceCIDRs) logger.info("ServiceCIDR is not served: the IPv6 precondition is checked with a dry run");
  const nodes = new Informer<NodeObject>(client, NODES, { logger, transform: trimNode });
  const networkPolicies = new Informer<NetworkPolicyObject>(client, NETWORK_POLICIES, {
    logger,
    transform: trimNetworkPolicy,
  });
  return { plans, services, namespaces, endpointSlices, serviceCIDRs, nodes, networkPolicies };
}

export async function buildOperator(options: OperatorOptions): Promise<Manager> {
  const { client, logger } = options;
  const manager = new Manager({
    client,
    logger,
    metricsBindAddress: options.metricsBindAddress,
    healthProbeBindAddress: options.healthProbeBindAddress,
    leaderElection: options.leaderElect
      ? { namespace: options.leaderElectionNamespace, name: "ipv6-migration-operator.ipv6migration.io" }
      : undefined,
  });
  const caches = await buildCaches(client, logger);
  const { plans, services, namespaces, endpointSlices, serviceCIDRs, nodes, networkPolicies } = caches;
  manager.addInformer(plans);
  manager.addInformer(services);
  manager.addInformer(namespaces);
  manager.addInformer(endpointSlices);
  if (serviceCIDRs) manager.addInformer(serviceCIDRs);
  manager.addInformer(nodes);
  manager.addInformer(networkPolicies);
  const events = new EventRecorder(client, { component: "ipv6-migration-operator", logger });
  const reconciler = new MigrationPlanReconciler(
    client,
    caches,
    events,
    logger,
    realClock,
    options.preflightIntervalMs,
  );
  const controller = new Controller({
    name: "migrationplan",
    reconciler,
    workers: options.workers ?? 1,
    logger,
    metrics: manager.metrics,
  });
  controller.watch(plans);
  controller.watch(services, (svc) => reconciler.plansFor(svc));
  controller.watch(namespaces, () => reconciler.allPlans());
  if (serviceCIDRs) controller.watch(serviceCIDRs, () => reconciler.allPlans());
  controller.watch(nodes, () => reconciler.allPlans());
  controller.watch(networkPolicies, () => reconciler.allPlans());
  controller.watch(endpointSlices, (slice) => {
    const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    const svc = name ? services.store.get(`${slice.metadata.namespace ?? ""}/${name}`) : undefined;
    return svc ? reconciler.plansFor(svc) : [];
  });
  manager.addController(controller);
  return manager;
}
