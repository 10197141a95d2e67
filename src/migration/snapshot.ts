// One snapshot, two readers. What the migration decides about a cluster depends only on a ClusterSnapshot: the
// reconciler builds it from its informer caches, `ipv6-migrate audit` from paginated LISTs (both in
// src/reconciler/snapshot.ts), and both then take this same pure path: select -> preflight -> decide -> tally.
// So the CLI can never disagree with the operator.
import { keyOf } from "../runtime/object.js";
import { PLAN_ANNOTATION, PROBLEMS, REASONS, type MigrationPlan } from "../api/migrationplan.js";
import type { Service } from "./families.js";
import { account, emptyTally, owningPlan, problem, selects, type Tally } from "./plan.js";
import {
  blockingByService,
  cachedFindings,
  selectedService,
  type Finding,
  type NetworkPolicyInfo,
  type NodeInfo,
  type SelectedService,
} from "./preflight.js";
import { decide, type Decision, type PlanSettings } from "./service.js";

/** What the checks read of a Service's EndpointSlices: their readiness is computed once, when they are read. */
export interface EndpointSummary {
  /** Ready endpoints in slices of addressType IPv6. */
  ipv6Ready: number;
  /** Nodes of the ready endpoints, of either family. */
  nodeNames: string[];
}

export interface ClusterSnapshot {
  /** Every plan, for ownership: of the plans that select a Service, the oldest keeps it. */
  plans: readonly MigrationPlan[];
  services: Iterable<Service>;
  /** The labels of a namespace ({} when unknown). */
  namespaceLabels(namespace: string): Record<string, string>;
  /** A Service's EndpointSlices, summed, by Service key. */
  endpoints(serviceKey: string): EndpointSummary;
  nodes: NodeInfo[];
  networkPolicies: NetworkPolicyInfo[];
  /** The cluster's Service ranges (ServiceCIDR); undefined where that API is not served. */
  serviceRanges?: string[];
}

export interface Selection {
  /** The selected Services this plan manages. */
  owned: Service[];
  /** Selected and managed by an older plan: counted and listed, never touched. */
  claimed: { svc: Service; by: string }[];
}

export function selectServices(plan: MigrationPlan, snapshot: ClusterSnapshot): Selection {
  const selection: Selection = { owned: [], claimed: [] };
  for (const svc of snapshot.services) {
    const nsLabels = snapshot.namespaceLabels(svc.metadata.namespace ?? "");
    if (!selects(plan, svc, nsLabels)) continue;
    const claimants = snapshot.plans.filter((p) => selects(p, svc, nsLabels));
    const owner = owningPlan(claimants, svc.metadata.annotations?.[PLAN_ANNOTATION]);
    if (owner && owner.metadata.name !== plan.metadata.name) selection.claimed.push({ svc, by: owner.metadata.name });
    else selection.owned.push(svc);
  }
  return selection;
}

/** What the preflight checks read of each owned Service. */
export function preflightSubjects(selection: Selection, snapshot: ClusterSnapshot): SelectedService[] {
  return selection.owned.map((svc) => selectedService(svc, snapshot.endpoints(keyOf(svc)).nodeNames));
}

/** The findings computed from the snapshot alone (Nodes, NetworkPolicies, endpoints), on every reconcile. */
export function snapshotFindings(snapshot: ClusterSnapshot, subjects: SelectedService[]): Finding[] {
  return cachedFindings({ nodes: snapshot.nodes, networkPolicies: snapshot.networkPolicies, services: subjects });
}

export interface Assessment {
  tally: Tally;
  /** The next step of every owned Service, in the snapshot's order. */
  decisions: { svc: Service; decision: Decision }[];
}

/** Decides every owned Service's next step, with the preflight findings as gates, and counts them. */
export function assess(
  selection: Selection,
  snapshot: ClusterSnapshot,
  settings: PlanSettings,
  findings: Finding[],
): Assessment {
  const tally = emptyTally();
  for (const { svc, by } of selection.claimed) {
    tally.selected++;
    tally.skipped++;
    tally.skippedByReason[REASONS.claimedByOlderPlan] = (tally.skippedByReason[REASONS.claimedByOlderPlan] ?? 0) + 1;
    tally.problems.push(
      problem(
        svc,
        PROBLEMS.conflict,
        REASONS.claimedByOlderPlan,
        `also selected by the older plan ${by}, which keeps it`,
      ),
    );
  }
  const blocking = blockingByService(findings);
  const decisions = selection.owned.map((svc) => {
    const block = blocking.get(keyOf(svc))?.[0];
    const decision = decide(svc, settings, {
      ipv6ReadyEndpoints: snapshot.endpoints(keyOf(svc)).ipv6Ready,
      ...(block ? { preflightBlock: { reason: block.reason, message: `${block.object}: ${block.message}` } } : {}),
    });
    tally.selected++;
    account(tally, svc, decision);
    return { svc, decision };
  });
  return { tally, decisions };
}
