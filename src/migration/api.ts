// The MigrationPlan API (ipv6migration.io/v1alpha1), as the reconciler reads and writes it. The CRD in crds/ is
// the schema the API server enforces; test/unit/crd.test.ts keeps this file, the CRD and the README in step.
import type { Condition, KubeObject } from "../runtime/object.js";
import type { ResourceType } from "../runtime/client.js";

export const GROUP = "ipv6migration.io";
export const VERSION = "v1alpha1";
export const MIGRATION_PLANS: ResourceType = {
  group: GROUP,
  version: VERSION,
  resource: "migrationplans",
  kind: "MigrationPlan",
  namespaced: false,
};

export const TARGET_PHASES = ["Audit", "DualStack", "IPv6Only"] as const;
export type TargetPhase = (typeof TARGET_PHASES)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface MigrationPlanSpec {
  targetPhase?: TargetPhase;
  selector?: {
    namespaces?: string[];
    excludeNamespaces?: string[];
    namespaceSelector?: LabelSelector;
    serviceSelector?: LabelSelector;
  };
  dualStack?: { ipFamilyPolicy?: "PreferDualStack" | "RequireDualStack" };
  ipv6Only?: {
    requireIPv6Endpoints?: boolean;
    allowLoadBalancerRecreate?: boolean;
    requirePreflight?: boolean;
  };
  rollout?: {
    batchSize?: number | string;
    pauseBetweenBatches?: string;
    maxFailures?: number;
  };
  suspend?: boolean;
}

/** A Service that needs a person's attention (or time), listed in status. */
export interface ServiceProblem {
  namespace: string;
  name: string;
  /** Blocked (waits for something), Failed (a write was refused), Drifted (someone changed it back), Conflict. */
  state: "Blocked" | "Failed" | "Drifted" | "Conflict";
  reason: string;
  message: string;
}

/** The dependency audit before IPv6-only (src/migration/preflight.ts). */
export interface PreflightStatus {
  counts: Record<string, number>;
  findings: { kind: string; severity: string; object: string; reason: string; message: string }[];
  findingsTruncated?: number;
}

/** Counts over the selected Services. */
export interface PlanSummary {
  selected: number;
  ipv4Only: number;
  dualStack: number;
  ipv6Only: number;
  atTarget: number;
  skipped: number;
  skippedByReason?: Record<string, number>;
  blocked: number;
  failed: number;
  drifted: number;
}

export interface MigrationPlanStatus {
  observedGeneration?: number;
  phase?: string;
  progress?: string;
  summary?: PlanSummary;
  currentBatch?: { number: number; size: number; startedAt?: string; finishedAt?: string };
  problems?: ServiceProblem[];
  problemsTruncated?: number;
  preflight?: PreflightStatus;
  conditions?: Condition[];
}

export interface MigrationPlan extends KubeObject {
  spec: MigrationPlanSpec;
  status?: MigrationPlanStatus;
}

export const CONDITIONS = {
  ready: "Ready",
  reconciling: "Reconciling",
  stalled: "Stalled",
  clusterDualStackCapable: "ClusterDualStackCapable",
  audited: "Audited",
  dualStackComplete: "DualStackComplete",
  ipv6OnlyComplete: "IPv6OnlyComplete",
  preflightPassed: "PreflightPassed",
} as const;

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
export const FIELD_MANAGER = "ipv6-migration-operator";

export const MAX_PROBLEMS = 50;
