// The migration's own metrics, on the manager's registry beside controller-runtime's. The gauges are set from
// the plan's computed status on every reconcile (level-based: a restarted or newly elected operator reports the
// same values at its first reconcile), and every series of a plan goes when the plan does. The counters and
// histograms count what this process did: Prometheus's rate() and increase() handle their reset on restart.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import {
  CUTOVER_RESULTS,
  METRIC_LABELS,
  METRICS,
  PLAN_PHASES,
  SERVICE_METRIC_STATES,
  SERVICE_STATES,
  TARGET_PHASES,
  type Batch,
  type MigrationPlanStatus,
  type ServiceState,
  type TargetPhase,
} from "../api/migrationplan.js";
import type { Finding } from "../migration/preflight.js";
import { compareStrings } from "../runtime/object.js";

const L = METRIC_LABELS;
/** Batches move up to hundreds of Services, each a write or two, and may pace first (a few seconds). */
const BATCH_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** A cutover is two writes; more than a few seconds means the API server or an admission webhook is slow. */
const CUTOVER_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type CutoverResult = (typeof CUTOVER_RESULTS)[keyof typeof CUTOVER_RESULTS];

/** What one reconcile computed for a plan. */
export interface PlanObservation {
  plan: string;
  target: TargetPhase;
  status: MigrationPlanStatus;
  /** Every finding, not only the 50 the status lists; absent: the reconcile ran no preflight. */
  findings?: readonly Finding[];
  /** Selected Services between the two writes of a cutover. */
  cuttingOver: number;
}

type Labels = Record<string, string>;
type Metric = Gauge | Counter | Histogram;

export class MigrationMetrics {
  private readonly services: Gauge;
  private readonly selected: Gauge;
  private readonly atTarget: Gauge;
  private readonly phase: Gauge;
  private readonly targetPhase: Gauge;
  private readonly findings: Gauge;
  private readonly batches: Counter;
  private readonly batchDuration: Histogram;
  private readonly cutovers: Counter;
  private readonly cutoverDuration: Histogram;
  /** The label sets of the findings gauge each plan has now: a kind that went away must go from /metrics too. */
  private readonly findingSeries = new Map<string, Labels[]>();
  /** Every series each plan has, to remove them with the plan (prom-client removes exact label sets only). */
  private readonly series = new Map<string, Map<Metric, Map<string, Labels>>>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.services = new Gauge({
      name: METRICS.services,
      help: "Services a MigrationPlan selects, by state: their families (ipv4-only, dual-stack, ipv6-only), or why they are not moving (blocked, failed, drifted), or between the two writes of a cutover (cutting-over)",
      labelNames: [L.plan, L.state],
      registers,
    });
    this.selected = new Gauge({
      name: METRICS.servicesSelected,
      help: "Services a MigrationPlan selects",
      labelNames: [L.plan],
      registers,
    });
    this.atTarget = new Gauge({
      name: METRICS.servicesAtTarget,
      help: "Selected Services already at the MigrationPlan's targetPhase",
      labelNames: [L.plan],
      registers,
    });
    this.phase = new Gauge({
      name: METRICS.planPhase,
      help: "1 for the MigrationPlan's status.phase, 0 for the other phases",
      labelNames: [L.plan, L.phase],
      registers,
    });
    this.targetPhase = new Gauge({
      name: METRICS.planTargetPhase,
      help: "1 for the MigrationPlan's spec.targetPhase, 0 for the other targets",
      labelNames: [L.plan, L.targetPhase],
      registers,
    });
    this.findings = new Gauge({
      name: METRICS.preflightFindings,
      help: "Preflight findings of a MigrationPlan, by kind and severity",
      labelNames: [L.plan, L.kind, L.severity],
      registers,
    });
    this.batches = new Counter({
      name: METRICS.batches,
      help: "Batches of Service moves a MigrationPlan finished",
      labelNames: [L.plan, L.targetPhase],
      registers,
    });
    this.batchDuration = new Histogram({
      name: METRICS.batchDuration,
      help: "How long a batch took, from its first write to its last answer",
      labelNames: [L.plan, L.targetPhase],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.cutovers = new Counter({
      name: METRICS.cutovers,
      help: "Cutovers of Services to IPv6-only (two writes through ExternalName), by result",
      labelNames: [L.plan, L.result],
      registers,
    });
    this.cutoverDuration = new Histogram({
      name: METRICS.cutoverDuration,
      help: "How long a cutover's two writes took",
      labelNames: [L.plan, L.result],
      buckets: CUTOVER_BUCKETS,
      registers,
    });
  }

  /** Sets every gauge of the plan from what the reconcile computed. */
  observePlan(o: PlanObservation): void {
    const plan = { [L.plan]: o.plan };
    const summary = o.status.summary;
    const counts: Record<ServiceState, number> = {
      [SERVICE_STATES.ipv4Only]: summary?.ipv4Only ?? 0,
      [SERVICE_STATES.dualStack]: summary?.dualStack ?? 0,
      [SERVICE_STATES.ipv6Only]: summary?.ipv6Only ?? 0,
      [SERVICE_STATES.blocked]: summary?.blocked ?? 0,
      [SERVICE_STATES.failed]: summary?.failed ?? 0,
      [SERVICE_STATES.drifted]: summary?.drifted ?? 0,
      [SERVICE_STATES.cuttingOver]: o.cuttingOver,
    };
    for (const state of SERVICE_METRIC_STATES) this.set(this.services, { ...plan, [L.state]: state }, counts[state]);
    this.set(this.selected, plan, summary?.selected ?? 0);
    this.set(this.atTarget, plan, summary?.atTarget ?? 0);
    for (const phase of PLAN_PHASES)
      this.set(this.phase, { ...plan, [L.phase]: phase }, o.status.phase === phase ? 1 : 0);
    for (const target of TARGET_PHASES) {
      this.set(this.targetPhase, { ...plan, [L.targetPhase]: target }, o.target === target ? 1 : 0);
    }
    if (o.findings) this.setFindings(o.plan, o.findings);
  }

  private setFindings(plan: string, findings: readonly Finding[]): void {
    const counts = new Map<string, { labels: Labels; n: number }>();
    for (const f of findings) {
      const key = `${f.kind}\0${f.severity}`;
      const entry = counts.get(key) ?? { labels: { [L.plan]: plan, [L.kind]: f.kind, [L.severity]: f.severity }, n: 0 };
      entry.n++;
      counts.set(key, entry);
    }
    for (const labels of this.findingSeries.get(plan) ?? []) {
      if (counts.has(`${labels[L.kind]}\0${labels[L.severity]}`)) continue;
      this.findings.remove(labels);
      this.series.get(plan)?.get(this.findings)?.delete(seriesKey(labels));
    }
    const series: Labels[] = [];
    for (const { labels, n } of counts.values()) {
      this.set(this.findings, labels, n);
      series.push(labels);
    }
    this.findingSeries.set(plan, series);
  }

  batchFinished(plan: string, target: TargetPhase, batch: Batch): void {
    const labels = { [L.plan]: plan, [L.targetPhase]: target };
    this.track(this.batches, labels).inc(labels);
    const started = Date.parse(batch.startedAt ?? "");
    const finished = Date.parse(batch.finishedAt ?? "");
    if (Number.isFinite(started) && Number.isFinite(finished)) {
      this.track(this.batchDuration, labels).observe(labels, Math.max(0, finished - started) / 1000);
    }
  }

  cutover(plan: string, result: CutoverResult, seconds: number): void {
    const labels = { [L.plan]: plan, [L.result]: result };
    this.track(this.cutovers, labels).inc(labels);
    this.track(this.cutoverDuration, labels).observe(labels, seconds);
  }

  /** The plan is gone: so are its series, counters included (a plan made again under its name starts at 0). */
  forget(plan: string): void {
    for (const [metric, all] of this.series.get(plan) ?? []) for (const labels of all.values()) metric.remove(labels);
    this.series.delete(plan);
    this.findingSeries.delete(plan);
  }

  private set(gauge: Gauge, labels: Labels, value: number): void {
    this.track(gauge, labels).set(labels, value);
  }

  private track<M extends Metric>(metric: M, labels: Labels): M {
    const plan = labels[L.plan] ?? "";
    let owned = this.series.get(plan);
    if (!owned) this.series.set(plan, (owned = new Map<Metric, Map<string, Labels>>()));
    let all = owned.get(metric);
    if (!all) owned.set(metric, (all = new Map<string, Labels>()));
    all.set(seriesKey(labels), labels);
    return metric;
  }
}

function seriesKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => compareStrings(a, b)));
}
