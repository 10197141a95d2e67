// Generated from crds/ipv6migration.io_migrationplans.yaml by `node dist/test/apidoc.js --write`: edit the CRD,
// not this file (test/unit/apidoc.test.ts fails when they differ).
import type { Condition } from "../runtime/object.js";

export const TARGET_PHASES = ["Audit", "DualStack", "IPv6Only"] as const;

export type TargetPhase = (typeof TARGET_PHASES)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

/** A label selector over Namespaces. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Which Services the plan covers. All conditions must match. kube-system is excluded unless named in namespaces. */
export interface PlanSelector {
  /** Only these namespaces (all namespaces when empty). */
  namespaces?: string[];
  /** Never these namespaces. */
  excludeNamespaces?: string[];
  /** A label selector over Namespaces. */
  namespaceSelector?: LabelSelector;
  /** A label selector over Services. */
  serviceSelector?: LabelSelector;
}

export const DUAL_STACK_POLICIES = ["PreferDualStack", "RequireDualStack"] as const;

export type DualStackPolicy = (typeof DUAL_STACK_POLICIES)[number];

export const DELETION_POLICIES = ["Orphan", "Rollback"] as const;

export type DeletionPolicy = (typeof DELETION_POLICIES)[number];

export interface MigrationPlanSpec {
  /** The desired state of the selected Services. Audit only classifies them; DualStack adds an IPv6 ClusterIP beside the IPv4 one; IPv6Only makes them IPv6 SingleStack (a cutover for ClusterIP, NodePort and LoadBalancer Services). Lowering it rolls the moves back; Audit restores every Service's original spec. */
  targetPhase?: TargetPhase;
  /** Which Services the plan covers. All conditions must match. kube-system is excluded unless named in namespaces. */
  selector?: PlanSelector;
  dualStack?: {
    /** PreferDualStack, or RequireDualStack to fail rather than stay single-stack. */
    ipFamilyPolicy?: DualStackPolicy;
  };
  ipv6Only?: {
    /** A Service with a selector moves only when its IPv6 EndpointSlices have ready endpoints. */
    requireIPv6Endpoints?: boolean;
    /** Allow the cutover of type LoadBalancer Services, which destroys and recreates the cloud load balancer. */
    allowLoadBalancerRecreate?: boolean;
    /** A Service with a blocking preflight finding (its ClusterIP hard-coded in a Pod or ConfigMap, an IPv4-only NetworkPolicy ipBlock over its pods, endpoints on a node without IPv6) is blocked, and moves by itself once the finding is gone. */
    requirePreflight?: boolean;
  };
  rollout?: {
    /** How many Services move at once, as a number (at least 1) or a percentage (1% to 100%) of those selected. */
    batchSize?: number | string;
    /** A duration such as 30s, 2m or 1h30m to wait between batches. */
    pauseBetweenBatches?: string;
    /** Failed Services tolerated before the rollout stops; 0 stops at the first failure. */
    maxFailures?: number;
  };
  /** Stop making changes (status is still updated). */
  suspend?: boolean;
  /** What deleting the plan does to the Services it changed. Orphan leaves them as they are (in-flight cutovers are finished first), each keeping its restore record so a later plan at Audit can still undo everything; Rollback restores every one to its original spec before the plan goes. */
  deletionPolicy?: DeletionPolicy;
}

export const PLAN_PHASES = [
  "Audited",
  "DualStack",
  "IPv6Only",
  "MigratingToDualStack",
  "MigratingToIPv6Only",
  "RollingBack",
  "Blocked",
  "Suspended",
  "Stalled",
  "Deleting",
] as const;

export type PlanPhase = (typeof PLAN_PHASES)[number];

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

export interface Batch {
  number: number;
  size: number;
  startedAt?: string;
  finishedAt?: string;
}

export const PROBLEM_STATES = ["Blocked", "Failed", "Drifted", "Conflict"] as const;

export type ProblemState = (typeof PROBLEM_STATES)[number];

export interface ServiceProblem {
  namespace: string;
  name: string;
  state: ProblemState;
  reason: string;
  message?: string;
}

export const SEVERITIES = ["Info", "Warning", "Blocking"] as const;

export type Severity = (typeof SEVERITIES)[number];

export interface PreflightFindingStatus {
  kind: string;
  severity: Severity;
  object: string;
  reason: string;
  message: string;
}

/** The dependency audit before IPv6-only. */
export interface PreflightStatus {
  counts: Record<string, number>;
  findings: PreflightFindingStatus[];
  findingsTruncated?: number;
}

/** Written by the operator. Until it has observed the plan, observedGeneration is -1, so kstatus (Flux) reads a new plan as InProgress rather than Current. */
export interface MigrationPlanStatus {
  observedGeneration?: number;
  /** Where the rollout stands, one word for `kubectl get`; the conditions say why. */
  phase?: PlanPhase;
  /** When a rollout stalled by a refused write (Forbidden) is tried again. Kept in the status, not in the operator's memory, so that a restarted or newly elected operator keeps the same schedule. */
  retryAt?: string;
  progress?: string;
  summary?: PlanSummary;
  currentBatch?: Batch;
  problems?: ServiceProblem[];
  /** How many more problems there are than listed. */
  problemsTruncated?: number;
  /** The dependency audit before IPv6-only. */
  preflight?: PreflightStatus;
  conditions?: Condition[];
}
