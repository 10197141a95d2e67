// The MigrationPlan reconciler: reads the caches, asks src/migration what each selected Service becomes next,
// makes the writes of one batch, and writes the plan's status (at most once per reconcile, and only on change).
import { isForbidden, type KubeClient, ApiError, isConflict, isNotFound } from "../runtime/client.js";
import type { Clock } from "../runtime/clock.js";
import type { ReconcileResult, Reconciler } from "../runtime/controller.js";
import type { EventRecorder, ObjectReference } from "../runtime/events.js";
import type { Informer } from "../runtime/informer.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { WriteExpectations } from "../runtime/expectations.js";
import { keyOf, type KubeObject } from "../runtime/object.js";
import {
  FIELD_MANAGER,
  GROUP,
  HOLD_ANNOTATION,
  MIGRATION_PLANS,
  ORIGINAL_ANNOTATION,
  PLAN_ANNOTATION,
  STATE_LABEL,
  VERSION,
  type MigrationPlan,
  type MigrationPlanStatus,
  type PreflightStatus,
} from "../migration/api.js";
import {
  batchSizeOf,
  computeStatus,
  emptyTally,
  owningPlan,
  parseDuration,
  sameStatus,
  selects,
  settingsOf,
  type Tally,
} from "../migration/plan.js";
import {
  clusterIPOf,
  decide,
  familyState,
  originalSpec,
  restorableSpec,
  type Decision,
  type Hold,
  type Service,
} from "../migration/service.js";
import { capabilityFromRanges, probeIPv6ServiceRange, type Capability } from "./precondition.js";
import {
  cachedFindings,
  preflightStatus,
  scanWorkloads,
  type NetworkPolicyObject,
  type NodeObject,
} from "./preflight.js";
import { blockingByService, selectedService, serviceRangeFindings, type Finding } from "../migration/preflight.js";
import { ServiceWriter, WriteFailure } from "./service-writer.js";

export type Namespace = KubeObject;

/** EndpointSlice trimmed to what the gates read. */
export interface EndpointSlice extends KubeObject {
  addressType: string;
  readyEndpoints: number;
  nodeNames: string[];
}

export interface ServiceCIDR extends KubeObject {
  spec: { cidrs?: string[] };
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

export interface Caches {
  plans: Informer<MigrationPlan>;
  services: Informer<Service>;
  namespaces: Informer<Namespace>;
  endpointSlices: Informer<EndpointSlice>;
  /** Absent where the API server does not serve ServiceCIDR (before Kubernetes 1.33). */
  serviceCIDRs?: Informer<ServiceCIDR>;
  nodes: Informer<NodeObject>;
  networkPolicies: Informer<NetworkPolicyObject>;
}

const CONCURRENCY = 8;
const STALL_RETRY_MS = 60_000;
const PROBE_TTL_MS = 300_000;
/** A safety net only: the watch event of the write itself reconciles the plan again. */
const CACHE_CATCH_UP_MS = 5_000;

type Stall = { reason: string; message: string };

interface Planned {
  svc: Service;
  decision: Decision;
}

export class MigrationPlanReconciler implements Reconciler {
  private readonly writer: ServiceWriter;
  /**
   * The status this process last wrote, per plan UID. The plan cache can lag behind our own status write, and a
   * reconcile in that window must still see the last batch (for the pause) and not write the same status again.
   */
  private readonly written = new Map<string, { generation: number; status: MigrationPlanStatus }>();
  private readonly expectations: WriteExpectations;
  /**
   * A stall found by a write (Forbidden) holds until the plan changes, or until a retry after STALL_RETRY_MS
   * succeeds: without this the next reconcile, which makes no write during the pause, would report it cleared.
   */
  private probed: { at: number; capability: Capability } | undefined;
  private readonly scans = new Map<string, { generation: number; at: number; findings: Finding[] }>();
  private readonly reportedFindings = new Map<string, Set<string>>();
  private readonly stalls = new Map<string, { generation: number; stalled: Stall; until: number }>();

  constructor(
    private readonly client: KubeClient,
    private readonly caches: Caches,
    private readonly events: EventRecorder,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly preflightIntervalMs = 300_000,
  ) {
    this.expectations = new WriteExpectations(clock);
    this.writer = new ServiceWriter(client, log, this.expectations);
  }

  /** The plans a Service event concerns: those that select it, and the one whose annotation it carries. */
  plansFor(svc: Service): string[] {
    const nsLabels = this.namespaceLabels(svc.metadata.namespace ?? "");
    const out = new Set<string>();
    for (const plan of this.caches.plans.store.list()) if (selects(plan, svc, nsLabels)) out.add(plan.metadata.name);
    const annotated = svc.metadata.annotations?.[PLAN_ANNOTATION];
    if (annotated) out.add(annotated);
    return [...out];
  }

  allPlans(): string[] {
    return this.caches.plans.store.keys();
  }

  private namespaceLabels(namespace: string): Record<string, string> | undefined {
    return this.caches.namespaces.store.get(namespace)?.metadata.labels ?? {};
  }

  private ipv6ReadyEndpoints(svc: Service): number {
    let ready = 0;
    for (const slice of this.caches.endpointSlices.store.byIndex("service", keyOf(svc))) {
      if (slice.addressType === "IPv6") ready += slice.readyEndpoints;
    }
    return ready;
  }

  /** From the ServiceCIDR cache where that API is served, else from a dry run (remembered for a while). */
  private async clusterIPv6Range(): Promise<Capability> {
    if (this.caches.serviceCIDRs) {
      return capabilityFromRanges(this.caches.serviceCIDRs.store.list().flatMap((c) => c.spec.cidrs ?? []));
    }
    const now = this.clock.now();
    if (!this.probed || now - this.probed.at > PROBE_TTL_MS) {
      this.probed = { at: now, capability: await probeIPv6ServiceRange(this.client) };
    }
    return this.probed.capability;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const cached = this.caches.plans.store.get(name);
    if (!cached || cached.metadata.deletionTimestamp) {
      if (cached?.metadata.uid) this.written.delete(cached.metadata.uid);
      return undefined;
    }
    const plan = this.withLastWrittenStatus(cached);
    const settings = settingsOf(plan, new Date(this.clock.now()).toISOString());
    const ref = planRef(plan);

    let batchSize: number;
    let pauseMs: number;
    try {
      pauseMs = parseDuration(plan.spec.rollout?.pauseBetweenBatches);
      batchSizeOf(plan.spec.rollout?.batchSize, 1);
      batchSize = 0;
    } catch (err) {
      return this.finish(plan, emptyTally(), { reason: "InvalidSpec", message: errorMessage(err) });
    }

    // Classify every selected Service from the cache: no GET per Service.
    const plans = this.caches.plans.store.list();
    const tally = emptyTally();
    const moves: Planned[] = [];
    const owned: Service[] = [];
    for (const svc of this.caches.services.store.list()) {
      const nsLabels = this.namespaceLabels(svc.metadata.namespace ?? "");
      if (!selects(plan, svc, nsLabels)) continue;
      const claimants = plans.filter((p) => selects(p, svc, nsLabels));
      const owner = owningPlan(claimants, svc.metadata.annotations?.[PLAN_ANNOTATION]);
      tally.selected++;
      if (owner && owner.metadata.name !== plan.metadata.name) {
        count(tally.skippedByReason, "ClaimedByOlderPlan");
        tally.skipped++;
        tally.problems.push(
          problem(
            svc,
            "Conflict",
            "ClaimedByOlderPlan",
            `also selected by the older plan ${owner.metadata.name}, which keeps it`,
          ),
        );
        continue;
      }
      owned.push(svc);
    }

    // Not before the cache has seen this process's own writes: a Service as it was before them would count as still
    // to move (the status would go backwards) and be moved again. Their watch events reconcile the plan again.
    const behind = owned.filter((svc) => !this.expectations.satisfied(keyOf(svc), svc.metadata.resourceVersion));
    if (behind.length > 0) {
      this.log.debug("waiting for the cache to see this process's writes", {
        plan: plan.metadata.name,
        services: behind.length,
      });
      return { requeueAfterMs: CACHE_CATCH_UP_MS };
    }

    const preflight = await this.preflight(plan, owned);
    for (const svc of owned) {
      const block = preflight.blocking.get(keyOf(svc))?.[0];
      const decision = decide(svc, settings, {
        ipv6ReadyEndpoints: this.ipv6ReadyEndpoints(svc),
        ...(block ? { preflightBlock: { reason: block.reason, message: `${block.object}: ${block.message}` } } : {}),
      });
      this.account(tally, svc, decision);
      if (decision.action === "patch" || decision.action === "cutover" || decision.action === "resume") {
        moves.push({ svc, decision });
      }
      // First sight of drift or of a gate: record it on the Service, metadata only, so `kubectl get svc -L`
      // shows it (the spec is left as it is).
      if (decision.action === "hold" && !svc.metadata.annotations?.[HOLD_ANNOTATION]) moves.push({ svc, decision });
      if (decision.action === "block" && svc.metadata.labels?.[STATE_LABEL] !== "blocked")
        moves.push({ svc, decision });
    }
    batchSize = batchSizeOf(plan.spec.rollout?.batchSize, tally.selected);

    // In-flight cutovers are always finished, even when suspended or stalled: never leave a Service ExternalName.
    const resumes = moves.filter((m) => m.decision.action === "resume");
    const capable = await this.clusterIPv6Range();
    let stalled: Stall | undefined;
    if (settings.target !== "Audit" && !capable.status) {
      stalled = { reason: "NoIPv6ServiceRange", message: `${capable.message}; no Service was changed` };
    }
    const failedHolds = tally.failed;
    if (!stalled && failedHolds > (plan.spec.rollout?.maxFailures ?? 0)) {
      stalled = {
        reason: "MaxFailuresReached",
        message: `${failedHolds} Services failed, more than spec.rollout.maxFailures (${plan.spec.rollout?.maxFailures ?? 0})`,
      };
    }

    const uid = plan.metadata.uid ?? "";
    const heldStall = this.stalls.get(uid);
    let requeueAfterMs: number | undefined;
    if (!stalled && heldStall && heldStall.generation === settings.planGeneration) {
      if (this.clock.now() < heldStall.until) {
        stalled = heldStall.stalled;
        requeueAfterMs = heldStall.until - this.clock.now();
      }
    } else if (heldStall) {
      this.stalls.delete(uid);
    }

    let candidates = stalled || plan.spec.suspend ? resumes : moves;
    let batch = plan.status?.currentBatch;
    const holdsToRecord = candidates.filter((m) => isMark(m.decision));
    const realMoves = candidates.filter((m) => !isMark(m.decision));
    if (realMoves.length > 0 && !stalled && !plan.spec.suspend) {
      const sinceLast = batch?.finishedAt ? this.clock.now() - Date.parse(batch.finishedAt) : Infinity;
      const waiting = batch?.finishedAt && sinceLast < pauseMs && realMoves.some((m) => m.decision.action !== "resume");
      if (waiting) {
        candidates = [...resumes, ...holdsToRecord];
        requeueAfterMs = pauseMs - sinceLast;
      } else {
        candidates = [...realMoves.sort(byKey).slice(0, batchSize), ...holdsToRecord];
      }
    }

    if (candidates.length > 0) {
      const moving = candidates.filter((m) => !isMark(m.decision));
      const startedAt = new Date(this.clock.now()).toISOString();
      if (moving.length > 0) {
        batch = { number: (batch?.number ?? 0) + 1, size: moving.length, startedAt };
        this.events.event(
          ref,
          "Normal",
          "BatchStarted",
          `batch ${batch.number}: ${moving.length} Services towards ${settings.target}`,
        );
      }
      const outcome = await this.runBatch(plan, candidates, tally);
      if (outcome.stalled) {
        stalled = outcome.stalled;
        this.stalls.set(uid, {
          generation: settings.planGeneration,
          stalled,
          until: this.clock.now() + STALL_RETRY_MS,
        });
        requeueAfterMs = STALL_RETRY_MS;
      } else if (outcome.moved > 0) {
        this.stalls.delete(uid);
      }
      if (outcome.stalled && outcome.moved === 0) {
        // Nothing moved: not a batch, so no pause is owed once the stall is fixed.
        batch = plan.status?.currentBatch;
      } else if (moving.length > 0 && batch) {
        batch = { ...batch, finishedAt: new Date(this.clock.now()).toISOString() };
        this.events.event(
          ref,
          "Normal",
          "BatchFinished",
          `batch ${batch.number}: ${outcome.moved} moved, ${outcome.failed} failed`,
        );
        if (tally.pending > 0 && !outcome.stalled) requeueAfterMs = pauseMs;
      }
    }
    // Scans of Pods and ConfigMaps repeat at the preflight interval, so a fixed finding clears by itself.
    requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, this.preflightIntervalMs);
    return this.finish(plan, tally, stalled, batch, capable, requeueAfterMs, preflight.status);
  }

  /**
   * The dependency audit. Ranges, Nodes, NetworkPolicies and endpoints come from the caches on every reconcile;
   * Pods and ConfigMaps are scanned when the plan's generation changes, before each IPv6Only batch (a scan older
   * than the last batch is redone), and otherwise at most every preflight interval.
   */
  private async preflight(
    plan: MigrationPlan,
    owned: Service[],
  ): Promise<{ status: PreflightStatus; blocking: Map<string, Finding[]> }> {
    const selected = owned.map((svc) =>
      selectedService(
        svc,
        this.caches.endpointSlices.store.byIndex("service", keyOf(svc)).flatMap((slice) => slice.nodeNames),
      ),
    );
    const findings = cachedFindings({
      nodes: this.caches.nodes.store
        .list()
        .map((n) => ({ name: n.metadata.name, internalIPs: n.internalIPs, podCIDRs: n.podCIDRs })),
      networkPolicies: this.caches.networkPolicies.store.list().map((p) => p.info),
      services: selected,
    });

    const uid = plan.metadata.uid ?? "";
    const generation = plan.metadata.generation ?? 0;
    const now = this.clock.now();
    const last = this.scans.get(uid);
    const lastBatch = Date.parse(plan.status?.currentBatch?.finishedAt ?? "") || 0;
    const due =
      !last ||
      last.generation !== generation ||
      now - last.at >= this.preflightIntervalMs ||
      ((plan.spec.targetPhase ?? "Audit") === "IPv6Only" && lastBatch >= last.at);
    let scan = last;
    if (due) {
      const result = await scanWorkloads(this.client, selected);
      const ranges: Finding[] = [];
      if (this.caches.serviceCIDRs) {
        let ipv6InUse = 0;
        for (const svc of this.caches.services.store.list()) if (clusterIPOf(svc.spec, "IPv6")) ipv6InUse++;
        const cidrs = this.caches.serviceCIDRs.store.list().flatMap((c) => c.spec.cidrs ?? []);
        ranges.push(...serviceRangeFindings(cidrs, ipv6InUse));
      }
      scan = { generation, at: now, findings: [...ranges, ...result.findings] };
      this.scans.set(uid, scan);
      this.log.debug("preflight scan", { plan: plan.metadata.name, pods: result.pods, configMaps: result.configMaps });
    }
    findings.push(...(scan?.findings ?? []));

    // An Event for each finding the first time this process sees it for the plan.
    const reported = this.reportedFindings.get(uid) ?? new Set<string>();
    const current = new Set<string>();
    for (const f of findings) {
      const id = `${f.object}|${f.reason}|${f.message}`;
      current.add(id);
      if (!reported.has(id)) {
        this.events.event(
          planRef(plan),
          f.severity === "Info" ? "Normal" : "Warning",
          "PreflightFinding",
          `${f.severity} ${f.kind} ${f.object}: ${f.message}`,
        );
      }
    }
    this.reportedFindings.set(uid, current);
    return { status: preflightStatus(findings), blocking: blockingByService(findings) };
  }

  /** The cached plan, with the status this process wrote if the cache has not caught up with it yet. */
  private withLastWrittenStatus(plan: MigrationPlan): MigrationPlan {
    const last = this.written.get(plan.metadata.uid ?? "");
    if (!last || last.generation !== (plan.metadata.generation ?? 0)) return plan;
    const cachedAt = Date.parse(plan.status?.currentBatch?.finishedAt ?? "") || 0;
    const writtenAt = Date.parse(last.status.currentBatch?.finishedAt ?? "") || 0;
    return writtenAt > cachedAt || sameStatus(plan.status, last.status) ? { ...plan, status: last.status } : plan;
  }

  private account(tally: Tally, svc: Service, decision: Decision): void {
    countFamily(tally, svc, 1);
    switch (decision.action) {
      case "none":
        tally.atTarget++;
        break;
      case "skip":
        tally.skipped++;
        count(tally.skippedByReason, decision.reason);
        break;
      case "block":
        tally.blocked++;
        tally.problems.push(problem(svc, "Blocked", decision.reason, decision.message));
        break;
      case "hold":
        if (decision.hold.kind === "Drifted") tally.drifted++;
        else tally.failed++;
        tally.problems.push(problem(svc, decision.hold.kind, decision.hold.reason, holdMessage(decision.hold)));
        break;
      default:
        tally.pending++;
    }
  }

  private async runBatch(
    plan: MigrationPlan,
    batch: Planned[],
    tally: Tally,
  ): Promise<{ moved: number; failed: number; stalled?: Stall }> {
    let moved = 0;
    let failed = 0;
    let stalled: Stall | undefined;
    const queue = [...batch];
    const work = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (stalled) return;
        const { svc, decision } = next;
        try {
          const updated = await this.apply(plan, svc, decision);
          if (updated) {
            moved++;
            tally.pending--;
            tally.atTarget++;
            countFamily(tally, svc, -1);
            countFamily(tally, updated, 1);
          }
        } catch (err) {
          if (isConflict(err) || isNotFound(err)) continue; // the cache was behind: the next reconcile sees the change
          if (isForbidden(err)) {
            const e = err as ApiError;
            stalled = { reason: "Forbidden", message: `${e.verb} ${e.path} was forbidden: ${e.status.message ?? ""}` };
            this.events.event(planRef(plan), "Warning", "Forbidden", stalled.message);
            return;
          }
          failed++;
          tally.pending--;
          tally.failed++;
          const reason =
            err instanceof WriteFailure
              ? err.reason
              : err instanceof ApiError
                ? err.reason || "WriteRefused"
                : "WriteFailed";
          const message = errorMessage(err);
          tally.problems.push(problem(svc, "Failed", reason, message));
          this.events.event(planRef(plan), "Warning", "ServiceFailed", `${keyOf(svc)}: ${message}`);
          this.events.event(serviceRef(svc), "Warning", "MigrationFailed", message);
          await this.recordHold(svc, {
            kind: "Failed",
            generation: svc.metadata.generation ?? 0,
            planGeneration: plan.metadata.generation ?? 0,
            reason,
            message: message.slice(0, 512),
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, batch.length) }, work));
    return { moved, failed, stalled };
  }

  /** Makes the writes of one decision; returns the Service when it reached its next state. */
  private async apply(plan: MigrationPlan, svc: Service, decision: Decision): Promise<Service | undefined> {
    const before = describeIPs(svc);
    let result;
    switch (decision.action) {
      case "patch":
        result = await this.writer.patchInPlace(svc, decision.patch, decision.expect);
        break;
      case "cutover":
        result = await this.writer.cutover(svc, decision.toExternalName, decision.record);
        break;
      case "resume":
        this.log.info("finishing an interrupted cutover", { service: keyOf(svc) });
        result = await this.writer.resume(svc, decision.record);
        break;
      case "block":
        await this.writer.mark(svc, {
          labels: { [STATE_LABEL]: "blocked" },
          annotations: {
            [PLAN_ANNOTATION]: plan.metadata.name,
            [ORIGINAL_ANNOTATION]: JSON.stringify(originalSpec(svc) ?? restorableSpec(svc.spec)),
          },
        });
        this.events.event(
          planRef(plan),
          "Warning",
          "ServiceBlocked",
          `${keyOf(svc)}: ${decision.reason}: ${decision.message}`,
        );
        return undefined;
      case "hold":
        await this.recordHold(svc, decision.hold);
        this.events.event(planRef(plan), "Warning", "ServiceDrifted", `${keyOf(svc)}: ${holdMessage(decision.hold)}`);
        this.events.event(serviceRef(svc), "Warning", "Drifted", holdMessage(decision.hold));
        return undefined;
      default:
        return undefined;
    }
    const after = describeIPs(result.service);
    this.events.event(serviceRef(result.service), "Normal", "Migrated", `${before} -> ${after}`);
    if (result.warning) this.events.event(serviceRef(result.service), "Warning", "AddressNotKept", result.warning);
    this.log.info("service migrated", { service: keyOf(svc), from: before, to: after, plan: plan.metadata.name });
    return result.service;
  }

  private async recordHold(svc: Service, hold: Hold): Promise<void> {
    try {
      await this.writer.mark(svc, {
        labels: { [STATE_LABEL]: hold.kind === "Drifted" ? "drifted" : "failed" },
        annotations: { [HOLD_ANNOTATION]: JSON.stringify(hold) },
      });
    } catch (err) {
      this.log.warn("could not record the hold on the Service", { service: keyOf(svc), error: errorMessage(err) });
    }
  }

  private async finish(
    plan: MigrationPlan,
    tally: Tally,
    stalled?: Stall,
    batch?: MigrationPlanStatus["currentBatch"],
    capable?: Capability,
    requeueAfterMs?: number,
    preflight?: PreflightStatus,
  ): Promise<ReconcileResult> {
    const status = computeStatus({
      plan,
      tally,
      stalled,
      batch,
      preflight,
      clusterDualStackCapable: capable ?? { status: undefined, message: "" },
      now: () => new Date(this.clock.now()).toISOString(),
    });
    if (!sameStatus(plan.status, status)) {
      if (stalled && plan.status?.phase !== "Stalled") {
        this.events.event(planRef(plan), "Warning", "Stalled", `${stalled.reason}: ${stalled.message}`);
      }
      await this.client.patch(MIGRATION_PLANS, undefined, plan.metadata.name, { status }, "merge", {
        subresource: "status",
        fieldManager: FIELD_MANAGER,
      });
      this.written.set(plan.metadata.uid ?? "", { generation: plan.metadata.generation ?? 0, status });
    }
    return requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : undefined;
  }
}

/** Metadata-only records (drift, a gate), made outside the batch count. */
function isMark(decision: Decision): boolean {
  return decision.action === "hold" || decision.action === "block";
}

function countFamily(tally: Tally, svc: Service, delta: number): void {
  const state = familyState(svc.spec);
  if (state === "ipv4-only") tally.ipv4Only += delta;
  else if (state === "dual-stack") tally.dualStack += delta;
  else if (state === "ipv6-only") tally.ipv6Only += delta;
}

function byKey(a: Planned, b: Planned): number {
  return keyOf(a.svc).localeCompare(keyOf(b.svc));
}

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function problem(svc: Service, state: "Blocked" | "Failed" | "Drifted" | "Conflict", reason: string, message: string) {
  return { namespace: svc.metadata.namespace ?? "", name: svc.metadata.name, state, reason, message };
}

function holdMessage(hold: Hold): string {
  return hold.kind === "Drifted"
    ? `changed back by ${hold.manager ?? "an unknown field manager"}: ${hold.message}; not retried until the Service or the plan changes`
    : `${hold.message}; not retried until the Service or the plan changes`;
}

function describeIPs(svc: Service): string {
  const families = svc.spec.ipFamilies ?? [];
  return `${svc.spec.type ?? "ClusterIP"} ${familyState(svc.spec)} [${families.join(",")}] clusterIPs=${JSON.stringify(svc.spec.clusterIPs ?? [])}`;
}

export function planRef(plan: MigrationPlan): ObjectReference {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "MigrationPlan",
    name: plan.metadata.name,
    uid: plan.metadata.uid,
  };
}

function serviceRef(svc: Service): ObjectReference {
  return {
    apiVersion: "v1",
    kind: "Service",
    name: svc.metadata.name,
    namespace: svc.metadata.namespace,
    uid: svc.metadata.uid,
  };
}
