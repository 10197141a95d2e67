// Wires the caches, the MigrationPlan controller and the manager into the running operator.
import { type KubeClient, isNotFound } from "../runtime/client.js";
import { realClock } from "../runtime/clock.js";
import { WriteExpectations } from "../runtime/expectations.js";
import { keyOf, type KubeObject } from "../runtime/object.js";
import { Controller } from "../runtime/controller.js";
import { EventRecorder } from "../runtime/events.js";
import type { Logger } from "../runtime/log.js";
import { Manager, type SecureMetricsOptions } from "../runtime/manager.js";
import { GROUP, MIGRATION_PLANS, OPERATOR_NAME } from "../api/migrationplan.js";
import { DEFAULT_WRITE_CONCURRENCY, MigrationPlanReconciler } from "./migrationplan.js";

export { DEFAULT_WRITE_CONCURRENCY };
import { inCutover, OrphanedCutoverReconciler } from "./cutover.js";
import { MigrationMetrics } from "./metrics.js";
import { KubeProxyPacer } from "./pacer.js";
import { ServiceWriter, type WriteHooks } from "./service-writer.js";
import { buildCaches, sliceServiceKey } from "./snapshot.js";

export const DEFAULT_CUTOVER_PACING_MS = 150;

export interface OperatorOptions {
  client: KubeClient;
  logger: Logger;
  metricsBindAddress: string;
  /** /metrics over HTTPS for scrapers whose token may get it (TokenReview, SubjectAccessReview); else plain HTTP. */
  secureMetrics?: SecureMetricsOptions;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  workers?: number;
  /** How often Pods and ConfigMaps are rescanned for preflight findings when nothing else asks for a scan. */
  preflightIntervalMs?: number;
  /** A seam for the fault suite (test/fixtures/fault-operator.ts); production passes none. */
  writeHooks?: WriteHooks;
  /**
   * How long after its pacer write the operator waits before a batch of cutovers (./pacer.ts), in the
   * leader-election namespace, its own; 0 turns pacing off. Default 150 ms.
   */
  cutoverPacingMs?: number;
  /** Service writes in flight at once within a batch (DEFAULT_WRITE_CONCURRENCY by default). */
  writeConcurrency?: number;
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

export async function buildOperator(options: OperatorOptions): Promise<Manager> {
  const { client, logger } = options;
  const manager = new Manager({
    client,
    logger,
    metricsBindAddress: options.metricsBindAddress,
    secureMetrics: options.secureMetrics,
    healthProbeBindAddress: options.healthProbeBindAddress,
    leaderElection: options.leaderElect
      ? { namespace: options.leaderElectionNamespace, name: `${OPERATOR_NAME}.${GROUP}` }
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
  // One writer for both controllers: each must know when the cache has seen the other's writes.
  const writer = new ServiceWriter(client, logger, new WriteExpectations(realClock), options.writeHooks);
  const events = new EventRecorder(client, {
    component: OPERATOR_NAME,
    logger,
    onResult: (result) => manager.metrics.events.inc({ result }),
    waitForIdle: () => writer.whenIdle(),
  });
  const pacingMs = options.cutoverPacingMs ?? DEFAULT_CUTOVER_PACING_MS;
  const pacer =
    pacingMs > 0
      ? new KubeProxyPacer(
          client,
          services,
          { namespace: options.leaderElectionNamespace, leadMs: pacingMs },
          realClock,
          logger,
        )
      : undefined;
  if (pacer) writer.onWrite(() => pacer.changed());
  const reconciler = new MigrationPlanReconciler({
    client,
    caches,
    events,
    logger,
    clock: realClock,
    preflightIntervalMs: options.preflightIntervalMs,
    writer,
    pacer,
    metrics: new MigrationMetrics(manager.metrics.registry),
    writeConcurrency: options.writeConcurrency,
    onStatusWrite: () => manager.metrics.statusWrites.inc({ kind: "MigrationPlan" }),
  });
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
    const key = sliceServiceKey(slice);
    const svc = key ? services.store.get(key) : undefined;
    return svc ? reconciler.plansFor(svc) : [];
  });
  // A Pod's env and args never change, so only its deletion can fix a finding; a ConfigMap's data can change.
  const rescan = (kind: string, obj: KubeObject) => {
    for (const plan of reconciler.scannedObjectChanged(`${kind}/${keyOf(obj)}`)) controller.queue.add(plan);
  };
  manager.addInformer(caches.podMetadata).addEventHandler({ onDelete: (pod) => rescan("Pod", pod) });
  manager.addInformer(caches.configMapMetadata).addEventHandler({
    onUpdate: (_old, cm) => rescan("ConfigMap", cm),
    onDelete: (cm) => rescan("ConfigMap", cm),
  });
  manager.addController(controller);

  const orphans = new OrphanedCutoverReconciler(caches, writer, events, logger);
  const cutovers = new Controller({ name: "cutover", reconciler: orphans, logger, metrics: manager.metrics });
  cutovers.watch(services, (svc) => (inCutover(svc) ? [keyOf(svc)] : []));
  cutovers.watch(plans, () => orphans.inFlight());
  cutovers.watch(namespaces, () => orphans.inFlight());
  manager.addController(cutovers);
  return manager;
}
