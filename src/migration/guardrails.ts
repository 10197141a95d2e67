// New Services born at the plan's phase (spec.newServices: Default). A plan moves the Services that exist; every
// Service created afterwards would be born IPv4 and need moving again (for IPv6Only, a cutover). The answer
// upstream gives for cluster-wide defaults is an admission policy, so a plan asks for one: a
// MutatingAdmissionPolicy that gives new Services without a family choice the plan's families, and a
// ValidatingAdmissionPolicy (validationActions Warn) that tells whoever creates one with an explicit choice, which
// is kept, what the plan will do. Both are bound to the plan's selection and owned by the plan. Pure: the
// reconciler (src/reconciler/guardrails.ts) applies and removes them.
import { createHash } from "node:crypto";
import {
  CONDITIONS,
  GROUP,
  MANAGED_BY_LABEL,
  MIGRATION_PLANS,
  NAMESPACE_NAME_LABEL,
  OPERATOR_NAME,
  PLAN_ANNOTATION,
  REASONS,
  VERSION,
  type LabelSelector,
  type LabelSelectorRequirement,
  type MigrationPlan,
  type PlanSelector,
} from "../api/migrationplan.js";
import { findCondition, type KubeObject } from "../runtime/object.js";

export const ADMISSION_GROUP = "admissionregistration.k8s.io";
export const ADMISSION_VERSION = "v1";
/** The resource whose discovery says whether the API server can default new Services at all (GA in 1.36). */
export const MUTATING_ADMISSION_POLICIES = "mutatingadmissionpolicies";

/** In the order they are applied: a binding names its policy, so the policy comes first. */
export const GUARDRAIL_KINDS = [
  { kind: "MutatingAdmissionPolicy", resource: MUTATING_ADMISSION_POLICIES },
  { kind: "MutatingAdmissionPolicyBinding", resource: "mutatingadmissionpolicybindings" },
  { kind: "ValidatingAdmissionPolicy", resource: "validatingadmissionpolicies" },
  { kind: "ValidatingAdmissionPolicyBinding", resource: "validatingadmissionpolicybindings" },
] as const;
export type GuardrailKind = (typeof GUARDRAIL_KINDS)[number]["kind"];

export interface AdmissionObject extends KubeObject {
  apiVersion: string;
  kind: GuardrailKind;
  spec: Record<string, unknown>;
}

export interface ConditionInput {
  status: boolean;
  reason: string;
  message: string;
}

/** What the plan asks of its admission policies now. */
export type GuardrailWant =
  | { want: "present"; objects: AdmissionObject[]; message: string }
  | ({ want: "absent" } & Omit<ConditionInput, "status">)
  /** Suspended: no change is made, policies included. */
  | { want: "untouched" };

const MAX_NAME = 253;

/** One name for the four objects of a plan (each kind is its own resource); hashed when the plan's is too long. */
export function guardrailName(plan: string): string {
  const name = `ipv6migration-${plan}-new-services`;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash("sha256").update(plan).digest("hex").slice(0, 10);
  return `ipv6migration-${plan.slice(0, MAX_NAME - 40)}-${hash}-new-services`;
}

/**
 * The plan's selection as a binding's namespaceSelector: the namespace list through the label the API server
 * sets on every Namespace, kube-system left out unless named (as the plan's own selection does).
 */
export function namespaceSelectorFor(selector: PlanSelector = {}): LabelSelector {
  const expressions: LabelSelectorRequirement[] = [];
  const named = selector.namespaces ?? [];
  expressions.push(
    named.length > 0
      ? { key: NAMESPACE_NAME_LABEL, operator: "In", values: [...named] }
      : { key: NAMESPACE_NAME_LABEL, operator: "NotIn", values: ["kube-system"] },
  );
  const excluded = selector.excludeNamespaces ?? [];
  if (excluded.length > 0) expressions.push({ key: NAMESPACE_NAME_LABEL, operator: "NotIn", values: [...excluded] });
  expressions.push(...(selector.namespaceSelector?.matchExpressions ?? []));
  const matchLabels = selector.namespaceSelector?.matchLabels;
  return {
    ...(matchLabels && Object.keys(matchLabels).length > 0 ? { matchLabels } : {}),
    matchExpressions: expressions,
  };
}

const NOT_EXTERNAL_NAME = "!has(object.spec.type) || object.spec.type != 'ExternalName'";
const FAMILIES_TEXT = "(has(object.spec.ipFamilies) ? object.spec.ipFamilies.join(', ') : '')";

/**
 * CEL of each phase: which new Services get the plan's families (matchCondition), the JSON patch that gives them
 * (ipFamilies is an atomic list, which an ApplyConfiguration may not set), and the check behind the warning, which
 * runs after the ClusterIPs are allocated, so it sees the families the Service is created with.
 */
function phaseRules(plan: MigrationPlan): { condition: string; patch: string; valid: string; message: string } {
  const name = plan.metadata.name;
  if (plan.spec.targetPhase === "IPv6Only") {
    return {
      condition: [
        "(!has(object.spec.ipFamilies) || size(object.spec.ipFamilies) == 0)",
        "(!has(object.spec.ipFamilyPolicy) || object.spec.ipFamilyPolicy == 'SingleStack')",
        // A requested address decides the family: an IPv4 one can't be given ipFamilies [IPv6].
        "(!has(object.spec.clusterIP) || object.spec.clusterIP in ['', 'None'])",
        "(!has(object.spec.clusterIPs) || size(object.spec.clusterIPs) == 0 || object.spec.clusterIPs[0] == 'None')",
      ].join(" && "),
      patch:
        "[JSONPatch{op: 'add', path: '/spec/ipFamilyPolicy', value: 'SingleStack'}, " +
        "JSONPatch{op: 'add', path: '/spec/ipFamilies', value: ['IPv6']}]",
      valid: "!has(object.spec.ipFamilies) || size(object.spec.ipFamilies) == 0 || object.spec.ipFamilies[0] == 'IPv6'",
      message:
        `'MigrationPlan ${name} (targetPhase IPv6Only, newServices Default): this Service sets its own families, ` +
        `so it is created as written, with ipFamilyPolicy ' + object.spec.ipFamilyPolicy + ' and ipFamilies [' + ` +
        `${FAMILIES_TEXT} + ']; the plan moves it to IPv6 SingleStack afterwards (a cutover), like any Service it ` +
        `selects, and applying this manifest again undoes that. Leave ipFamilyPolicy, ipFamilies and clusterIP ` +
        `out to have it created IPv6 SingleStack.'`,
    };
  }
  const policy = plan.spec.dualStack?.ipFamilyPolicy ?? "PreferDualStack";
  return {
    condition: "!has(object.spec.ipFamilyPolicy)",
    patch: `[JSONPatch{op: 'add', path: '/spec/ipFamilyPolicy', value: '${policy}'}]`,
    valid:
      "!has(object.spec.ipFamilyPolicy) || object.spec.ipFamilyPolicy != 'SingleStack' || " +
      "(has(object.spec.ipFamilies) && 'IPv6' in object.spec.ipFamilies)",
    message:
      `'MigrationPlan ${name} (targetPhase DualStack, newServices Default): this Service sets ipFamilyPolicy ` +
      `SingleStack itself, so it is created single-stack as written, with ipFamilies [' + ${FAMILIES_TEXT} + ']; ` +
      `the plan makes it ${policy} afterwards, like any Service it selects, and applying this manifest again ` +
      `undoes that. Leave ipFamilyPolicy out to have it created dual-stack.'`,
  };
}

/** The four objects a plan at DualStack or IPv6Only with newServices: Default keeps, owned by the plan. */
export function admissionObjects(plan: MigrationPlan): AdmissionObject[] {
  const name = guardrailName(plan.metadata.name);
  const metadata = {
    name,
    labels: { [MANAGED_BY_LABEL]: OPERATOR_NAME },
    annotations: { [PLAN_ANNOTATION]: plan.metadata.name },
    // The garbage collector removes them with the plan, also where the operator is gone.
    ownerReferences: [
      {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: MIGRATION_PLANS.kind,
        name: plan.metadata.name,
        uid: plan.metadata.uid ?? "",
        controller: true,
      },
    ],
  };
  const apiVersion = `${ADMISSION_GROUP}/${ADMISSION_VERSION}`;
  // Only creates: a Service's families are fixed at birth as far as the plan is concerned; updates are its own.
  const matchConstraints = {
    resourceRules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["services"] }],
  };
  const matchResources = {
    namespaceSelector: namespaceSelectorFor(plan.spec.selector),
    objectSelector: plan.spec.selector?.serviceSelector ?? {},
  };
  const rules = phaseRules(plan);
  return [
    {
      apiVersion,
      kind: "MutatingAdmissionPolicy",
      metadata,
      spec: {
        // A policy that can't be evaluated never keeps a Service from being created.
        failurePolicy: "Ignore",
        matchConstraints,
        matchConditions: [
          { name: "has-cluster-ip", expression: NOT_EXTERNAL_NAME },
          { name: "sets-no-families", expression: rules.condition },
        ],
        mutations: [{ patchType: "JSONPatch", jsonPatch: { expression: rules.patch } }],
        reinvocationPolicy: "Never",
      },
    },
    {
      apiVersion,
      kind: "MutatingAdmissionPolicyBinding",
      metadata,
      spec: { policyName: name, matchResources },
    },
    {
      apiVersion,
      kind: "ValidatingAdmissionPolicy",
      metadata,
      spec: {
        failurePolicy: "Ignore",
        matchConstraints,
        matchConditions: [{ name: "has-cluster-ip", expression: NOT_EXTERNAL_NAME }],
        validations: [{ expression: rules.valid, messageExpression: rules.message }],
      },
    },
    {
      apiVersion,
      kind: "ValidatingAdmissionPolicyBinding",
      metadata,
      spec: { policyName: name, validationActions: ["Warn"], matchResources },
    },
  ];
}

/** What the plan asks of its admission policies; `deleting` when its deletion is being carried out. */
export function guardrailWant(plan: MigrationPlan, deleting: boolean): GuardrailWant {
  if (deleting) {
    return { want: "absent", reason: REASONS.deleting, message: "the plan is being deleted: its policies go first" };
  }
  if (plan.spec.suspend === true) return { want: "untouched" };
  if ((plan.spec.newServices ?? "Ignore") !== "Default") {
    return {
      want: "absent",
      reason: REASONS.newServicesIgnored,
      message: "spec.newServices is Ignore: new Services are created as they are, and the plan moves them afterwards",
    };
  }
  const target = plan.spec.targetPhase ?? "Audit";
  if (target === "Audit") {
    return {
      want: "absent",
      reason: REASONS.notTargeted,
      message: "targetPhase is Audit: new Services are created as they are",
    };
  }
  const born =
    target === "IPv6Only"
      ? "IPv6 SingleStack (those that set no ipFamilies, no ClusterIP address and no ipFamilyPolicy other than SingleStack)"
      : `${plan.spec.dualStack?.ipFamilyPolicy ?? "PreferDualStack"} (those that set no ipFamilyPolicy)`;
  return {
    want: "present",
    objects: admissionObjects(plan),
    message: `MutatingAdmissionPolicy and ValidatingAdmissionPolicy ${guardrailName(plan.metadata.name)} and their bindings: new Services the plan selects are created ${born}; one that sets its own families is created as written, with a warning`,
  };
}

/** Reasons the condition carries once the policies are known to be gone (or were never made). */
const REMOVED = new Set<string>([
  REASONS.notTargeted,
  REASONS.newServicesIgnored,
  REASONS.deleting,
  REASONS.noIPv6ServiceRange,
  REASONS.mutatingAdmissionPolicyNotServed,
]);

/**
 * Whether policies of the plan may exist, read from the condition written after each change: True, an unknown
 * outcome (a refused or failed write), or a plan asking for them whose first status is not written yet. A plan
 * that never asked for them (no condition, newServices Ignore) costs no request at all.
 */
export function mayHavePolicies(plan: MigrationPlan): boolean {
  const condition = findCondition(plan.status?.conditions, CONDITIONS.newServicesDefaulted);
  if (!condition) return plan.spec.newServices === "Default";
  return condition.status === "True" || !REMOVED.has(condition.reason);
}
