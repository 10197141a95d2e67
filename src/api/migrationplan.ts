// The project's vocabulary: the MigrationPlan resource, and one constant for every phase, state, condition, reason,
// Event, label and annotation the operator writes. Code elsewhere names these only through this file. The plan's
// spec and status types are generated from the CRD (./v1alpha1.ts), so they can't drift from what the API
// server enforces.
import type { ResourceType } from "../runtime/client.js";
import type { KubeObject } from "../runtime/object.js";
import type { MigrationPlanSpec, MigrationPlanStatus, ProblemState } from "./v1alpha1.js";

export * from "./v1alpha1.js";

export const GROUP = "ipv6migration.io";
export const VERSION = "v1alpha1";
export const MIGRATION_PLANS: ResourceType = {
  group: GROUP,
  version: VERSION,
  resource: "migrationplans",
  kind: "MigrationPlan",
  namespaced: false,
};

export interface MigrationPlan extends KubeObject {
  spec: MigrationPlanSpec;
  status?: MigrationPlanStatus;
}

export const OPERATOR_NAME = "ipv6-migration-operator";
/** The name every write of the operator carries (managedFields, and how drift is told from its own writes). */
export const FIELD_MANAGER = OPERATOR_NAME;

/** What a Service's families are now; "no-cluster-ip" for headless-without-families and ExternalName. */
export type FamilyState = "ipv4-only" | "dual-stack" | "ipv6-only" | "no-cluster-ip";

/**
 * The value of the STATE_LABEL on a Service the operator touched: where it stands (a family state), or why it is
 * not moving (blocked, failed, drifted), or that it is between the two writes of a cutover.
 */
export const SERVICE_STATES = {
  ipv4Only: "ipv4-only",
  dualStack: "dual-stack",
  ipv6Only: "ipv6-only",
  blocked: "blocked",
  failed: "failed",
  drifted: "drifted",
  cuttingOver: "cutting-over",
} as const;
export type ServiceState = (typeof SERVICE_STATES)[keyof typeof SERVICE_STATES];

/** The kinds of status.problems entries, named once. */
export const PROBLEMS = {
  blocked: "Blocked",
  failed: "Failed",
  drifted: "Drifted",
  conflict: "Conflict",
} as const satisfies Record<string, ProblemState>;

/** Labels and annotations the operator puts on the Services it manages. */
export const STATE_LABEL = `${GROUP}/state`;
export const PLAN_ANNOTATION = `${GROUP}/plan`;
export const ORIGINAL_ANNOTATION = `${GROUP}/original`;
export const CUTOVER_ANNOTATION = `${GROUP}/cutover`;
export const APPLIED_ANNOTATION = `${GROUP}/applied`;
/** Don't retry until the Service or the plan changes: set after drift or a refused write. */
export const HOLD_ANNOTATION = `${GROUP}/hold`;
/** When the Service's last cutover to IPv6-only started: pods older than this hold its old address in env vars. */
export const CUTOVER_TIME_ANNOTATION = `${GROUP}/cutover-time`;
/**
 * Written with a cutover's restore when the API server would not give back the addresses asked for (taken, or
 * leaked by the server after a killed write): what was asked, what the server said, when. The record of the
 * Event AddressNotKept that survives the Event's expiry and a process killed before it sends it. It is not among
 * OPERATOR_ANNOTATIONS: a restore to the original must not hide that the Service's addresses changed; a later
 * one replaces it, and the user removes it once clients are told.
 */
export const ADDRESSES_NOT_KEPT_ANNOTATION = `${GROUP}/addresses-not-kept`;
/** Every annotation the operator may leave on a Service: a restore to the original removes them all. */
export const OPERATOR_ANNOTATIONS = [
  ORIGINAL_ANNOTATION,
  APPLIED_ANNOTATION,
  PLAN_ANNOTATION,
  HOLD_ANNOTATION,
  CUTOVER_TIME_ANNOTATION,
] as const;

/**
 * Held on every plan the operator has seen, so that deleting it waits for spec.deletionPolicy to be carried out
 * (kubebuilder's <group>/finalizer).
 */
export const PLAN_FINALIZER = `${GROUP}/finalizer`;

/**
 * The recommended label naming the tool that manages an object: the operator's own pacer Service and the
 * admission policies it keeps for a plan's spec.newServices; Helm's value is HELM_MANAGED_BY.
 */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";

/**
 * What other tools write on the Services they apply, read by the preflight to name who would undo a move
 * (src/migration/owners.ts).
 */
export const HELM_MANAGED_BY = "Helm";
export const HELM_RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name";
export const HELM_RELEASE_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace";
/** Argo CD's default tracking label (its value is the Application's name), and its annotation-based tracking. */
export const INSTANCE_LABEL = "app.kubernetes.io/instance";
export const ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id";
export const FLUX_KUSTOMIZATION_LABELS = {
  name: "kustomize.toolkit.fluxcd.io/name",
  namespace: "kustomize.toolkit.fluxcd.io/namespace",
} as const;
export const FLUX_HELMRELEASE_LABELS = {
  name: "helm.toolkit.fluxcd.io/name",
  namespace: "helm.toolkit.fluxcd.io/namespace",
} as const;

/** The label the API server puts on every Namespace with its name: admission bindings select by it. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** The EndpointSlice label naming its Service (discovery.k8s.io). */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

export const CONDITIONS = {
  ready: "Ready",
  reconciling: "Reconciling",
  stalled: "Stalled",
  clusterDualStackCapable: "ClusterDualStackCapable",
  audited: "Audited",
  dualStackComplete: "DualStackComplete",
  ipv6OnlyComplete: "IPv6OnlyComplete",
  preflightPassed: "PreflightPassed",
  newServicesDefaulted: "NewServicesDefaulted",
} as const;

/** Reasons of the plan's conditions, and of the problems and skips it lists. */
export const REASONS = {
  // Stalled: only a person can fix it.
  invalidSpec: "InvalidSpec",
  noIPv6ServiceRange: "NoIPv6ServiceRange",
  maxFailuresReached: "MaxFailuresReached",
  forbidden: "Forbidden",
  notStalled: "NotStalled",
  // Ready and Reconciling.
  suspended: "Suspended",
  atTarget: "AtTarget",
  progressing: "Progressing",
  servicesBlocked: "ServicesBlocked",
  servicesNeedAttention: "ServicesNeedAttention",
  // The phase conditions.
  ipv6RangeFound: "IPv6RangeFound",
  classified: "Classified",
  complete: "Complete",
  inProgress: "InProgress",
  notTargeted: "NotTargeted",
  noBlockingFinding: "NoBlockingFinding",
  blockingFindings: "BlockingFindings",
  // Deleting the plan.
  deleting: "Deleting",
  // Per Service: skipped, blocked, held.
  claimedByOlderPlan: "ClaimedByOlderPlan",
  apiServerOwned: "APIServerOwned",
  externalName: "ExternalName",
  selectorlessWithoutIPv6Endpoints: "SelectorlessWithoutIPv6Endpoints",
  waitingForIPv6Endpoints: "WaitingForIPv6Endpoints",
  loadBalancerRecreateNotAllowed: "LoadBalancerRecreateNotAllowed",
  controllerOwned: "ControllerOwned",
  changedByAnotherManager: "ChangedByAnotherManager",
  // A write the server refused or answered unexpectedly.
  writeRefused: "WriteRefused",
  writeFailed: "WriteFailed",
  cutoverRefused: "CutoverRefused",
  secondaryFamilyNotAllocated: "SecondaryFamilyNotAllocated",
  unexpectedFamilies: "UnexpectedFamilies",
  // NewServicesDefaulted: the admission policies of spec.newServices.
  policiesApplied: "PoliciesApplied",
  newServicesIgnored: "NewServicesIgnored",
  mutatingAdmissionPolicyNotServed: "MutatingAdmissionPolicyNotServed",
  policyWriteFailed: "PolicyWriteFailed",
} as const;

/** Reasons of preflight findings (status.preflight.findings[].reason); the ServiceRange ones add the range's kind. */
export const FINDING_REASONS = {
  noIPv6ServiceRange: REASONS.noIPv6ServiceRange,
  nodeWithoutIPv6: "NodeWithoutIPv6",
  endpointsOnIPv4OnlyNode: "EndpointsOnIPv4OnlyNode",
  ipv4OnlyIPBlock: "IPv4OnlyIPBlock",
  hardcodedClusterIP: "HardcodedClusterIP",
  staleServiceLinks: "StaleServiceLinks",
  ipv4ExternalIPs: "IPv4ExternalIPs",
  ipv4LoadBalancerSourceRanges: "IPv4LoadBalancerSourceRanges",
  ipv4LoadBalancerIP: "IPv4LoadBalancerIP",
  controllerOwned: REASONS.controllerOwned,
  helmRelease: "HelmRelease",
  argoCDApplication: "ArgoCDApplication",
  fluxKustomization: "FluxKustomization",
  fluxHelmRelease: "FluxHelmRelease",
  familyFieldManager: "FamilyFieldManager",
} as const;

/** A preflight finding that blocks a Service is its block reason, prefixed: PreflightHardcodedClusterIP. */
export const PREFLIGHT_REASON_PREFIX = "Preflight";

/** Reasons of the Events the operator records, on the plan and on the Services. */
export const EVENT_REASONS = {
  batchStarted: "BatchStarted",
  batchFinished: "BatchFinished",
  serviceBlocked: "ServiceBlocked",
  serviceFailed: "ServiceFailed",
  serviceDrifted: "ServiceDrifted",
  stalled: "Stalled",
  forbidden: "Forbidden",
  preflightFinding: "PreflightFinding",
  // On the Service itself.
  migrated: "Migrated",
  migrationFailed: "MigrationFailed",
  drifted: "Drifted",
  addressNotKept: "AddressNotKept",
} as const;

/** status.problems and status.preflight.findings list at most this many each (the CRD's maxItems). */
export const MAX_PROBLEMS = 50;
export const MAX_FINDINGS = 50;

/**
 * The operator's own Prometheus metrics (src/reconciler/metrics.ts), beside controller-runtime's: the names the
 * dashboard of config/grafana and the alerts of config/prometheus query.
 */
export const METRICS = {
  /** Gauge: the plan's selected Services by state (a family, or why they are not moving). */
  services: "ipv6migration_services",
  /** Gauge: the Services the plan selects. */
  servicesSelected: "ipv6migration_services_selected",
  /** Gauge: the selected Services already where the target puts them. */
  servicesAtTarget: "ipv6migration_services_at_target",
  /** Gauge: 1 for the plan's status.phase, 0 for every other phase. */
  planPhase: "ipv6migration_plan_phase",
  /** Gauge: 1 for the plan's spec.targetPhase, 0 for the others. */
  planTargetPhase: "ipv6migration_plan_target_phase",
  /** Counter: batches finished. */
  batches: "ipv6migration_batches_total",
  /** Histogram: from a batch's first write to its last. */
  batchDuration: "ipv6migration_batch_duration_seconds",
  /** Counter: cutovers to IPv6-only (both writes), by result. */
  cutovers: "ipv6migration_cutovers_total",
  /** Histogram: a cutover's two writes, from the first request to the last answer. */
  cutoverDuration: "ipv6migration_cutover_duration_seconds",
  /** Gauge: preflight findings by kind and severity, all of them (status.preflight lists at most 50). */
  preflightFindings: "ipv6migration_preflight_findings",
} as const;

/** The labels of METRICS. */
export const METRIC_LABELS = {
  plan: "plan",
  state: "state",
  phase: "phase",
  targetPhase: "target_phase",
  result: "result",
  kind: "kind",
  severity: "severity",
} as const;

/** The values of the result label of METRICS.cutovers. */
export const CUTOVER_RESULTS = { succeeded: "succeeded", failed: "failed" } as const;

/** The states of METRICS.services: the families, then why Services are not moving. */
export const SERVICE_METRIC_STATES = [
  SERVICE_STATES.ipv4Only,
  SERVICE_STATES.dualStack,
  SERVICE_STATES.ipv6Only,
  SERVICE_STATES.blocked,
  SERVICE_STATES.failed,
  SERVICE_STATES.drifted,
  SERVICE_STATES.cuttingOver,
] as const;
