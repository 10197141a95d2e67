// In-flight cutovers belong to the operator, not to a plan. A Service left ExternalName between the two writes of
// a cutover carries its record (src/migration/cutover.ts); whatever became of the plan that started it (deleted,
// or no longer selecting it), this controller finishes it from that record. Where a plan still manages the
// Service, that plan's reconcile finishes it instead, so that one writer acts at a time.
import type { ReconcileResult, Reconciler } from "../runtime/controller.js";
import type { EventRecorder } from "../runtime/events.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { EVENT_REASONS, PLAN_ANNOTATION } from "../api/migrationplan.js";
import { cutoverRecord } from "../migration/cutover.js";
import type { Service } from "../migration/families.js";
import { owningPlan, selects } from "../migration/plan.js";
import { serviceRef } from "./migrationplan.js";
import type { ServiceWriter } from "./service-writer.js";
import type { Caches } from "./snapshot.js";

/** A safety net only: the watch event of the write itself reconciles the Service again. */
const CACHE_CATCH_UP_MS = 5_000;

/** Whether a Service is between the two writes of a cutover. */
export function inCutover(svc: Service): boolean {
  return svc.spec.type === "ExternalName" && cutoverRecord(svc) !== undefined;
}

export class OrphanedCutoverReconciler implements Reconciler {
  constructor(
    private readonly caches: Caches,
    private readonly writer: ServiceWriter,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {}

  /** The keys of every Service in a cutover: a plan's change or deletion may orphan any of them. */
  inFlight(): string[] {
    return this.caches.services.store
      .list()
      .filter(inCutover)
      .map((svc) => `${svc.metadata.namespace ?? ""}/${svc.metadata.name}`);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const svc = this.caches.services.store.get(key);
    const record = svc ? cutoverRecord(svc) : undefined;
    if (!svc || !record || svc.spec.type !== "ExternalName" || this.managed(svc)) return undefined;
    if (!this.writer.cacheHasSeen(svc)) return { requeueAfterMs: CACHE_CATCH_UP_MS };
    this.log.info("finishing a cutover whose plan is gone", { service: key, plan: record.plan });
    try {
      const result = await this.writer.resume(svc, record);
      this.events.event(
        serviceRef(result.service),
        "Normal",
        EVENT_REASONS.migrated,
        `finished the cutover ${record.plan} started: ${record.state}`,
      );
      if (result.warning)
        this.events.event(serviceRef(result.service), "Warning", EVENT_REASONS.addressNotKept, result.warning);
    } catch (err) {
      this.events.event(serviceRef(svc), "Warning", EVENT_REASONS.migrationFailed, errorMessage(err));
      throw err;
    }
    return undefined;
  }

  /** A plan selects the Service and keeps it: its own reconcile finishes the cutover. */
  private managed(svc: Service): boolean {
    const nsLabels = this.caches.namespaces.store.get(svc.metadata.namespace ?? "")?.metadata.labels ?? {};
    const claimants = this.caches.plans.store.list().filter((p) => selects(p, svc, nsLabels));
    return owningPlan(claimants, svc.metadata.annotations?.[PLAN_ANNOTATION]) !== undefined;
  }
}
