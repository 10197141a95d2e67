// The MigrationPlan reconciler, as controller-runtime's: one short Reconcile over named steps, each readable on
// its own. It reads a snapshot of the caches, asks src/migration what each selected Service becomes next and
// which of those writes to make now, makes them, and writes the plan's status (only on change). What it does
// next follows from the cluster and the plan's status alone; the only state kept in memory is write expectations
// (has the cache seen our own writes yet?) and caches of facts that are read again when absent.
import { ApiError, isConflict, isForbidden, isNotFound, isNotServed, type KubeClient } from "../runtime/client.js";
import type { Clock } from "../runtime/clock.js";
import type { ReconcileResult, Reconciler } from "../runtime/controller.js";
import type { EventRecorder, ObjectReference } from "../runtime/events.js";
import { WriteExpectations } from "../runtime/expectations.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { keyOf, mergePatchTo, type Condition } from "../runtime/object.js";
import {
  CUTOVER_RESULTS,
  EVENT_REASONS,
  FIELD_MANAGER,
  GROUP,
  HOLD_ANNOTATION,
  MIGRATION_PLANS,
  ORIGINAL_ANNOTATION,
  PLAN_ANNOTATION,
  PROBLEMS,
  REASONS,
  SERVICE_STATES,
  STATE_LABEL,
  VERSION,
  PLAN_FINALIZER,
  type Batch,
  type DeletionPolicy,
  type MigrationPlan,
  type PreflightStatus,
} from "../api/migrationplan.js";
import { familyState, type Service } from "../migration/families.js";
import {
  accountFailed,
  accountMoved,
  canonicalJSON,
  computeStatus,
  emptyTally,
  holdMessage,
  planBeingDeleted,
  rolloutSettings,
  sameStatus,
  selects,
  settingsOf,
  type Tally,
} from "../migration/plan.js";
import { preflightStatus, type Finding } from "../migration/preflight.js";
import {
  afterWrites,
  planRollout,
  STALL_RETRY_MS,
  type BatchOutcome,
  type RolloutStep,
  type Stall,
  type Write,
} from "../migration/rollout.js";
import { restorableSpec } from "../migration/cutover.js";
import { originalSpec, type Hold } from "../migration/service.js";
import {
  assess,
  preflightSubjects,
  selectServices,
  snapshotFindings,
  type ClusterSnapshot,
  type Selection,
} from "../migration/snapshot.js";
import type { ConditionInput } from "../migration/guardrails.js";
import { NewServiceGuardrails } from "./guardrails.js";
import type { MigrationMetrics } from "./metrics.js";
import type { Capability } from "./precondition.js";
import { scanPreflight } from "./preflight.js";
import type { KubeProxyPacer } from "./pacer.js";
import { ServiceWriter, WriteFailure } from "./service-writer.js";
import { ipv6ServiceRange, snapshotFromCaches, type Caches } from "./snapshot.js";

/**
 * Service writes in flight at once within a batch, unless the operator is told otherwise (--write-concurrency).
 * Against kube-apiserver on 2 cores, a rollout's time stopped falling beyond about 8 (bench/README.md): each
 * write that allocates a ClusterIP is bound by the server's allocator, not by the round trip.
 */
export const DEFAULT_WRITE_CONCURRENCY = 8;
/** How long a dry-run probe's answer about the Service range is trusted, where ServiceCIDR is not served. */
const PROBE_TTL_MS = 300_000;
/**
 * At most one status write per plan in this interval, when only its counts changed (progress, summary): in a large
 * batch every write's watch event reconciles the plan, and each would otherwise write the status. A change of
 * phase, of a condition or of status.currentBatch is written at once.
 */
const STATUS_WRITE_INTERVAL_MS = 1_000;
/** A safety net only: the watch event of the write itself reconciles the plan again. */
const CACHE_CATCH_UP_MS = 5_000;

export interface MigrationPlanReconcilerOptions {
  client: KubeClient;
  caches: Caches;
  events: EventRecorder;
  logger: Logger;
  clock: Clock;
  /** How often Pods and ConfigMaps are rescanned when nothing else asks for a scan. */
  preflightIntervalMs?: number;
  /** Every Service write goes through it; shared with the controller that finishes orphaned cutovers. */
  writer?: ServiceWriter;
  /** Makes kube-proxy sync just before each batch of cutovers (./pacer.ts); none: cutovers are not paced. */
  pacer?: KubeProxyPacer;
  /** The ipv6migration_* metrics (./metrics.ts); none: not measured. */
  metrics?: MigrationMetrics;
  /** Service writes in flight at once within a batch; DEFAULT_WRITE_CONCURRENCY by default. */
  writeConcurrency?: number;
  /** Told of every status write (for status_writes_total). */
  onStatusWrite?: () => void;
}

export class MigrationPlanReconciler implements Reconciler {
  private readonly client: KubeClient;
  private readonly caches: Caches;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly preflightIntervalMs: number;
  private readonly writer: ServiceWriter;
  /** The admission policies of spec.newServices. */
  private readonly guardrails: NewServiceGuardrails;
  private readonly pacer: KubeProxyPacer | undefined;
  private readonly metrics: MigrationMetrics | undefined;
  private readonly writeConcurrency: number;
  private readonly onStatusWrite: () => void;
  /** When each plan's status was last written by this process. */
  private readonly statusWrittenAt = new Map<string, number>();
  /** Plan writes (status, finalizer) the cache has not shown yet (the Service writes have theirs, in the writer). */
  private readonly planWrites: WriteExpectations;
  /** Caches of facts, not of decisions: when absent (after a restart) they are read again. */
  private probed: { at: number; capability: Capability } | undefined;
  private readonly scans = new Map<string, { generation: number; at: number; findings: Finding[]; stale?: boolean }>();

  constructor(options: MigrationPlanReconcilerOptions) {
    this.client = options.client;
    this.caches = options.caches;
    this.events = options.events;
    this.log = options.logger;
    this.clock = options.clock;
    this.preflightIntervalMs = options.preflightIntervalMs ?? 300_000;
    this.planWrites = new WriteExpectations(options.clock);
    this.writer =
      options.writer ?? new ServiceWriter(options.client, options.logger, new WriteExpectations(options.clock));
    this.guardrails = new NewServiceGuardrails(options.client, options.logger, options.clock, this.preflightIntervalMs);
    this.pacer = options.pacer;
    this.metrics = options.metrics;
    this.writeConcurrency = options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY;
    this.onStatusWrite = options.onStatusWrite ?? (() => undefined);
  }

  /** The plans a Service event concerns: those that select it, and the one whose annotation it carries. */
  plansFor(svc: Service): string[] {
    const nsLabels = this.caches.namespaces.store.get(svc.metadata.namespace ?? "")?.metadata.labels ?? {};
    const out = new Set<string>();
    for (const plan of this.caches.plans.store.list()) if (selects(plan, svc, nsLabels)) out.add(plan.metadata.name);
    const annotated = svc.metadata.annotations?.[PLAN_ANNOTATION];
    if (annotated) out.add(annotated);
    return [...out];
  }

  allPlans(): string[] {
    return this.caches.plans.store.keys();
  }

  /**
   * A Pod or ConfigMap named by a finding of a plan's last scan ("ConfigMap/ns/name") changed or went away: that
   * plan scans again at its next reconcile, so a fixed finding clears within seconds, not at the preflight
   * interval. Returns the plans to reconcile.
   */
  scannedObjectChanged(object: string): string[] {
    const plans: string[] = [];
    for (const [name, scan] of this.scans) {
      if (!scan.findings.some((f) => f.object === object)) continue;
      scan.stale = true;
      plans.push(name);
    }
    return plans;
  }

  async reconcile(name: string, signal: AbortSignal = new AbortController().signal): Promise<ReconcileResult> {
    const cached = this.caches.plans.store.get(name);
    if (!cached) {
      this.scans.delete(name);
      this.statusWrittenAt.delete(name);
      this.guardrails.forget(name);
      this.metrics?.forget(name);
      return undefined;
    }
    if (!this.planWrites.satisfied(name, cached.metadata.resourceVersion)) return { requeueAfterMs: CACHE_CATCH_UP_MS };
    const deleting = cached.metadata.deletionTimestamp !== undefined;
    const finalized = cached.metadata.finalizers?.includes(PLAN_FINALIZER) === true;
    if (deleting && !finalized) return undefined;
    if (!finalized) return this.setFinalizer(cached, true);
    const plan = deleting ? planBeingDeleted(cached) : cached;

    let rollout;
    try {
      rollout = rolloutSettings(plan);
    } catch (err) {
      return this.writeStatus(plan, emptyTally(), {
        stalled: { reason: REASONS.invalidSpec, message: errorMessage(err) },
      });
    }
    const now = this.clock.now();
    const snapshot = snapshotFromCaches(this.caches);
    const selection = selectServices(plan, snapshot);
    if (this.cacheBehind(plan, selection)) return { requeueAfterMs: CACHE_CATCH_UP_MS };

    const findings = await this.preflight(plan, snapshot, selection);
    const { tally, decisions } = assess(selection, snapshot, settingsOf(plan, new Date(now).toISOString()), findings);
    const input = {
      generation: plan.metadata.generation ?? 0,
      target: plan.spec.targetPhase ?? "Audit",
      status: plan.status,
      settings: rollout,
      decisions,
      selected: tally.selected,
      failed: tally.failed,
      ipv6ServiceRange: await this.ipv6ServiceRange(snapshot),
      now,
    };
    const newServices = await this.guardrails.sync(plan, deleting, input.ipv6ServiceRange);
    if (deleting && deletionDone(cached, tally, decisions)) return this.setFinalizer(cached, false);
    const step = planRollout(input);
    if (this.pacer && step.writes.some((w) => w.decision.action === "cutover") && !this.pacer.fresh()) {
      // kube-proxy syncs the pacer's change first (./pacer.ts); then the cutovers are decided again from the cache,
      // so their resourceVersions are not as old as the wait.
      await this.pacer.pace(signal);
      return { requeueAfterMs: 0 };
    }
    const outcome = await this.write(plan, step, tally, signal);
    const after = afterWrites(input, step, outcome, tally.pending, this.clock.now());
    if (after.finished && after.batch) {
      this.metrics?.batchFinished(plan.metadata.name, input.target, after.batch);
      this.event(
        plan,
        "Normal",
        EVENT_REASONS.batchFinished,
        `batch ${after.batch.number}: ${outcome.moved} moved, ${outcome.failed} failed`,
      );
    }
    // Pods and ConfigMaps are rescanned at the preflight interval, so a fixed finding clears by itself.
    const requeueAfterMs = Math.min(after.requeueAfterMs ?? Infinity, this.preflightIntervalMs);
    return this.writeStatus(
      plan,
      tally,
      {
        stalled: after.stalled,
        batch: after.batch,
        retryAt: after.retryAt,
        capability: input.ipv6ServiceRange,
        preflight: preflightStatus(findings),
        findings,
        // A Service found between a cutover's two writes: the resume of an interrupted (or stuck) cutover.
        cuttingOver: decisions.filter((d) => d.decision.action === "resume").length,
        newServices,
        ...(deleting ? { deleting: cached.spec.deletionPolicy ?? "Orphan" } : {}),
      },
      requeueAfterMs,
    );
  }

  /**
   * Not before the cache has seen this process's own writes: a Service as it was before them would count as still
   * to move (the status would go backwards) and be moved again. Their watch events reconcile the plan again.
   */
  private cacheBehind(plan: MigrationPlan, selection: Selection): boolean {
    const behind = selection.owned.filter((svc) => !this.writer.cacheHasSeen(svc)).length;
    if (behind > 0)
      this.log.debug("waiting for the cache to see this process's writes", {
        plan: plan.metadata.name,
        services: behind,
      });
    return behind > 0;
  }

  /**
   * The dependency audit. Ranges, Nodes, NetworkPolicies and endpoints come from the snapshot on every reconcile;
   * Pods and ConfigMaps are scanned when the plan's generation changes, before each IPv6Only batch (a scan older
   * than the last batch is redone), and otherwise at most every preflight interval; never for a plan being deleted.
   */
  private async preflight(plan: MigrationPlan, snapshot: ClusterSnapshot, selection: Selection): Promise<Finding[]> {
    const subjects = preflightSubjects(selection, snapshot);
    const generation = plan.metadata.generation ?? 0;
    const now = this.clock.now();
    const last = this.scans.get(plan.metadata.name);
    const lastBatch = Date.parse(plan.status?.currentBatch?.finishedAt ?? "") || 0;
    const due =
      !last ||
      last.stale === true ||
      last.generation !== generation ||
      now - last.at >= this.preflightIntervalMs ||
      (plan.spec.targetPhase === "IPv6Only" && lastBatch >= last.at);
    let scanned = last?.findings ?? [];
    // A plan being deleted moves nothing towards IPv6Only, the only move the scan's findings gate, and its status
    // goes with it: the scan (two paginated LISTs per namespace) would only delay the deletion.
    if (due && plan.metadata.deletionTimestamp === undefined) {
      const result = await scanPreflight(this.client, snapshot, subjects);
      scanned = result.findings;
      this.scans.set(plan.metadata.name, { generation, at: now, findings: scanned });
      this.log.debug("preflight scan", { plan: plan.metadata.name, pods: result.pods, configMaps: result.configMaps });
    }
    return [...snapshotFindings(snapshot, subjects, settingsOf(plan)), ...scanned];
  }

  /** From the ServiceCIDR cache where that API is served, else from a dry run (remembered for a while). */
  private async ipv6ServiceRange(snapshot: ClusterSnapshot): Promise<Capability> {
    if (snapshot.serviceRanges) return ipv6ServiceRange(this.client, snapshot);
    const now = this.clock.now();
    if (!this.probed || now - this.probed.at > PROBE_TTL_MS) {
      this.probed = { at: now, capability: await ipv6ServiceRange(this.client, snapshot) };
    }
    return this.probed.capability;
  }

  /** The step's writes, writeConcurrency at a time; a Forbidden answer stops them all (the rollout stalls). */
  private async write(
    plan: MigrationPlan,
    step: RolloutStep,
    tally: Tally,
    signal: AbortSignal,
  ): Promise<BatchOutcome> {
    if (step.batch) {
      const target = plan.spec.targetPhase ?? "Audit";
      this.event(
        plan,
        "Normal",
        EVENT_REASONS.batchStarted,
        `batch ${step.batch.number}: ${step.batch.size} Services towards ${target}`,
      );
    }
    const outcome: BatchOutcome = { moved: 0, failed: 0 };
    // Cutovers first, inside the kube-proxy sync period that the pacer write opened.
    const cutovers = step.writes.filter((w) => w.decision.action === "cutover");
    await this.writeConcurrently(plan, cutovers, tally, outcome, signal);
    const others = step.writes.filter((w) => w.decision.action !== "cutover");
    await this.writeConcurrently(plan, others, tally, outcome, signal);
    // The reconcile fails and is retried (at once when the manager sees the server answer again).
    if (outcome.unavailable !== undefined) throw outcome.unavailable;
    return outcome;
  }

  private async writeConcurrently(
    plan: MigrationPlan,
    writes: Write[],
    tally: Tally,
    outcome: BatchOutcome,
    signal: AbortSignal,
  ): Promise<void> {
    const queue = [...writes];
    const worker = async () => {
      // Shutting down: no new Service is started; one in the middle of its writes is finished.
      for (
        let next = queue.shift();
        next && !outcome.stalled && outcome.unavailable === undefined && !signal.aborted;
        next = queue.shift()
      ) {
        await this.writeOne(plan, next, tally, outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.writeConcurrency, writes.length) }, worker));
  }

  private async writeOne(
    plan: MigrationPlan,
    { svc, decision }: Write,
    tally: Tally,
    outcome: BatchOutcome,
  ): Promise<void> {
    try {
      const updated = await this.apply(plan, svc, decision);
      if (updated) {
        outcome.moved++;
        accountMoved(tally, svc, updated);
      }
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) return; // the cache was behind: the next reconcile sees the change
      if (isNotServed(err)) {
        // No answer, a 5xx, or a 429 still there after the client's retries (API Priority and Fairness squeezing
        // this user): the server could not serve, which says nothing about the Service. A kube-apiserver that has
        // just started answers 500 "range is full" until its ClusterIP allocator has synced (the outage test):
        // such a write is tried again, not held against the Service.
        outcome.unavailable ??= err instanceof Error ? err : new Error(errorMessage(err));
        return;
      }
      if (isForbidden(err)) {
        const e = err as ApiError;
        outcome.stalled = {
          reason: REASONS.forbidden,
          message: `${e.verb} ${e.path} was forbidden: ${e.status.message ?? ""}`,
        };
        this.event(plan, "Warning", EVENT_REASONS.forbidden, outcome.stalled.message);
        return;
      }
      outcome.failed++;
      const reason =
        err instanceof WriteFailure
          ? err.reason
          : err instanceof ApiError
            ? err.reason || REASONS.writeRefused
            : REASONS.writeFailed;
      const message = errorMessage(err);
      accountFailed(tally, svc, reason, message);
      this.event(plan, "Warning", EVENT_REASONS.serviceFailed, `${keyOf(svc)}: ${message}`);
      this.events.event(serviceRef(svc), "Warning", EVENT_REASONS.migrationFailed, message);
      await this.recordHold(svc, {
        kind: PROBLEMS.failed,
        generation: svc.metadata.generation ?? 0,
        planGeneration: plan.metadata.generation ?? 0,
        reason,
        message: message.slice(0, 512),
      });
    }
  }

  /** Makes the writes of one decision; returns the Service when it reached its next state. */
  private async apply(plan: MigrationPlan, svc: Service, decision: Write["decision"]): Promise<Service | undefined> {
    const before = describeIPs(svc);
    let result;
    switch (decision.action) {
      case "patch":
        result = await this.writer.patchInPlace(svc, decision.patch, decision.expect);
        break;
      case "cutover": {
        const started = this.clock.now();
        const seconds = () => (this.clock.now() - started) / 1000;
        try {
          result = await this.writer.cutover(svc, decision.toExternalName, decision.record);
        } catch (err) {
          // A stale cache (conflict, gone) is not a failed cutover: the next reconcile decides again.
          if (!isConflict(err) && !isNotFound(err)) {
            this.metrics?.cutover(plan.metadata.name, CUTOVER_RESULTS.failed, seconds());
          }
          throw err;
        }
        this.metrics?.cutover(plan.metadata.name, CUTOVER_RESULTS.succeeded, seconds());
        break;
      }
      case "resume":
        this.log.info("finishing an interrupted cutover", { service: keyOf(svc) });
        result = await this.writer.resume(svc, decision.record);
        break;
      case "block":
        await this.writer.mark(svc, {
          labels: { [STATE_LABEL]: SERVICE_STATES.blocked },
          annotations: {
            [PLAN_ANNOTATION]: plan.metadata.name,
            [ORIGINAL_ANNOTATION]: JSON.stringify(originalSpec(svc) ?? restorableSpec(svc.spec)),
          },
        });
        this.event(
          plan,
          "Warning",
          EVENT_REASONS.serviceBlocked,
          `${keyOf(svc)}: ${decision.reason}: ${decision.message}`,
        );
        return undefined;
      case "hold":
        await this.recordHold(svc, decision.hold);
        this.event(plan, "Warning", EVENT_REASONS.serviceDrifted, `${keyOf(svc)}: ${holdMessage(decision.hold)}`);
        this.events.event(serviceRef(svc), "Warning", EVENT_REASONS.drifted, holdMessage(decision.hold));
        return undefined;
      default:
        return undefined;
    }
    const after = describeIPs(result.service);
    this.events.event(serviceRef(result.service), "Normal", EVENT_REASONS.migrated, `${before} -> ${after}`);
    if (result.warning)
      this.events.event(serviceRef(result.service), "Warning", EVENT_REASONS.addressNotKept, result.warning);
    this.log.info("service migrated", { service: keyOf(svc), from: before, to: after, plan: plan.metadata.name });
    return result.service;
  }

  private async recordHold(svc: Service, hold: Hold): Promise<void> {
    try {
      await this.writer.mark(svc, {
        labels: { [STATE_LABEL]: hold.kind === PROBLEMS.drifted ? SERVICE_STATES.drifted : SERVICE_STATES.failed },
        annotations: { [HOLD_ANNOTATION]: JSON.stringify(hold) },
      });
    } catch (err) {
      this.log.warn("could not record the hold on the Service", { service: keyOf(svc), error: errorMessage(err) });
    }
  }

  /**
   * Writes the status when it changed, with an Event for a new stall and for each finding the previous status did
   * not list: derived from the status, so a restarted operator does not report the same findings again.
   */
  private async writeStatus(
    plan: MigrationPlan,
    tally: Tally,
    parts: {
      stalled?: Stall;
      batch?: Batch;
      retryAt?: string;
      capability?: Capability;
      preflight?: PreflightStatus;
      /** All the findings, for the metrics (the status lists at most MAX_FINDINGS). */
      findings?: Finding[];
      cuttingOver?: number;
      newServices?: ConditionInput;
      deleting?: DeletionPolicy;
    },
    requeueAfterMs?: number,
  ): Promise<ReconcileResult> {
    const status = computeStatus({
      plan,
      tally,
      stalled: parts.stalled,
      batch: parts.batch ?? plan.status?.currentBatch,
      retryAt: parts.retryAt,
      preflight: parts.preflight,
      deleting: parts.deleting,
      newServices: parts.newServices,
      clusterDualStackCapable: parts.capability ?? { status: undefined, message: "" },
      now: () => new Date(this.clock.now()).toISOString(),
    });
    // From the status computed now, written or not: the gauges say what the plan's status says.
    this.metrics?.observePlan({
      plan: plan.metadata.name,
      target: plan.spec.targetPhase ?? "Audit",
      status,
      findings: parts.findings,
      cuttingOver: parts.cuttingOver ?? 0,
    });
    if (!sameStatus(plan.status, status)) {
      const name = plan.metadata.name;
      const wait = (this.statusWrittenAt.get(name) ?? -Infinity) + STATUS_WRITE_INTERVAL_MS - this.clock.now();
      if (wait > 0 && sameStage(plan.status, status)) {
        return { requeueAfterMs: Math.max(0, Math.min(requeueAfterMs ?? Infinity, wait)) };
      }
      if (parts.stalled && plan.status?.phase !== "Stalled") {
        this.event(plan, "Warning", EVENT_REASONS.stalled, `${parts.stalled.reason}: ${parts.stalled.message}`);
      }
      this.reportNewFindings(plan, status.preflight);
      this.log.debug("writing the plan's status", {
        plan: plan.metadata.name,
        changed: changedParts(plan.status, status),
        summary: status.summary,
      });
      const updated = await this.client.patch<MigrationPlan>(
        MIGRATION_PLANS,
        undefined,
        plan.metadata.name,
        // Keys the new status no longer has (a reason gone from skippedByReason) are removed, not kept.
        { status: mergePatchTo(plan.status, status) },
        "merge",
        {
          subresource: "status",
          fieldManager: FIELD_MANAGER,
        },
      );
      this.planWrites.wrote(plan.metadata.name, plan.metadata.resourceVersion, updated.metadata.resourceVersion);
      this.statusWrittenAt.set(name, this.clock.now());
      this.onStatusWrite();
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : undefined;
  }

  /**
   * Adds the finalizer to a plan seen for the first time, or removes it once its deletionPolicy is carried out.
   * The resourceVersion makes it a compare-and-swap on the list, which other controllers may also hold.
   */
  private async setFinalizer(plan: MigrationPlan, present: boolean): Promise<ReconcileResult> {
    const others = (plan.metadata.finalizers ?? []).filter((f) => f !== PLAN_FINALIZER);
    let updated: MigrationPlan;
    try {
      updated = await this.client.patch<MigrationPlan>(
        MIGRATION_PLANS,
        undefined,
        plan.metadata.name,
        {
          metadata: {
            resourceVersion: plan.metadata.resourceVersion,
            finalizers: present ? [...others, PLAN_FINALIZER] : others,
          },
        },
        "merge",
        { fieldManager: FIELD_MANAGER },
      );
    } catch (err) {
      if (!isForbidden(err)) throw err;
      // Without its finalizer a plan can't promise what its deletionPolicy says: stall, naming the refused call.
      const e = err as ApiError;
      const stalled = {
        reason: REASONS.forbidden,
        message: `${e.verb} ${e.path} was forbidden: ${e.status.message ?? ""}`,
      };
      return this.writeStatus(plan, emptyTally(), { stalled }, STALL_RETRY_MS);
    }
    if (present)
      this.planWrites.wrote(plan.metadata.name, plan.metadata.resourceVersion, updated.metadata.resourceVersion);
    else
      this.log.info("plan deleted", { plan: plan.metadata.name, deletionPolicy: plan.spec.deletionPolicy ?? "Orphan" });
    return undefined;
  }

  private reportNewFindings(plan: MigrationPlan, preflight: PreflightStatus | undefined): void {
    const id = (f: { object: string; reason: string; message: string }) => `${f.object}|${f.reason}|${f.message}`;
    const reported = new Set((plan.status?.preflight?.findings ?? []).map(id));
    for (const f of preflight?.findings ?? []) {
      if (reported.has(id(f))) continue;
      this.event(
        plan,
        f.severity === "Info" ? "Normal" : "Warning",
        EVENT_REASONS.preflightFinding,
        `${f.severity} ${f.kind} ${f.object}: ${f.message}`,
      );
    }
  }

  private event(plan: MigrationPlan, type: "Normal" | "Warning", reason: string, message: string): void {
    this.events.event(planRef(plan), type, reason, message);
  }
}

/**
 * Whether a plan being deleted has nothing left to do, judged at the start of a reconcile from the cluster alone:
 * no cutover in flight (Orphan), or no Service left to restore (Rollback).
 */
function deletionDone(plan: MigrationPlan, tally: Tally, decisions: Write[]): boolean {
  if (decisions.some((d) => d.decision.action === "resume")) return false;
  if ((plan.spec.deletionPolicy ?? "Orphan") === "Orphan") return true;
  return tally.pending === 0 && tally.blocked === 0 && tally.failed === 0 && tally.drifted === 0;
}

/**
 * Whether two statuses differ in counts only: the same phase and batch, and every condition with the same status and
 * reason. A finished batch is never held back: the next batch's number and its pause are read from the written
 * status, so a batch left unwritten would be numbered again and start without its pause.
 */
function sameStage(before: MigrationPlan["status"], after: NonNullable<MigrationPlan["status"]>): boolean {
  if (!before || before.phase !== after.phase || before.observedGeneration !== after.observedGeneration) return false;
  if (canonicalJSON(before.currentBatch) !== canonicalJSON(after.currentBatch)) return false;
  const stage = (conditions: Condition[] | undefined) =>
    JSON.stringify((conditions ?? []).map((c) => [c.type, c.status, c.reason, c.observedGeneration]).sort());
  return stage(before.conditions) === stage(after.conditions);
}

/** Which parts of the status a write changes, for the debug log: top-level fields, and conditions by type. */
function changedParts(before: MigrationPlan["status"], after: NonNullable<MigrationPlan["status"]>): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before ?? {}), ...Object.keys(after)]) as Set<keyof typeof after>) {
    if (key === "conditions") continue;
    if (canonicalJSON(before?.[key]) !== canonicalJSON(after[key])) out.push(key);
  }
  for (const c of after.conditions ?? []) {
    const prior = before?.conditions?.find((p) => p.type === c.type);
    if (canonicalJSON(prior) !== canonicalJSON(c)) out.push(`${c.type}: ${prior?.reason ?? "-"} -> ${c.reason}`);
  }
  return out;
}

function describeIPs(svc: Service): string {
  const families = svc.spec.ipFamilies ?? [];
  return `${svc.spec.type ?? "ClusterIP"} ${familyState(svc.spec)} [${families.join(",")}] clusterIPs=${JSON.stringify(svc.spec.clusterIPs ?? [])}`;
}

export function planRef(plan: MigrationPlan): ObjectReference {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: MIGRATION_PLANS.kind,
    name: plan.metadata.name,
    uid: plan.metadata.uid,
  };
}

export function serviceRef(svc: Service): ObjectReference {
  return {
    apiVersion: "v1",
    kind: "Service",
    name: svc.metadata.name,
    namespace: svc.metadata.namespace,
    uid: svc.metadata.uid,
  };
}
