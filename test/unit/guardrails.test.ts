// The admission policies of spec.newServices as pure functions: which the plan asks for, what they select and
// say, and when policies may exist. What their CEL does is tested on the real API server
// (test/integration/guardrails.test.ts).
import assert from "node:assert/strict";
import type { MigrationPlan } from "../../src/api/migrationplan.js";
import {
  admissionObjects,
  guardrailName,
  guardrailWant,
  mayHavePolicies,
  namespaceSelectorFor,
  type AdmissionObject,
} from "../../src/migration/guardrails.js";
import type { Condition } from "../../src/runtime/object.js";

function plan(spec: MigrationPlan["spec"], conditions?: Condition[]): MigrationPlan {
  return {
    metadata: { name: "shop", uid: "uid-shop", generation: 2 },
    spec,
    ...(conditions ? { status: { conditions } } : {}),
  };
}

const condition = (status: "True" | "False", reason: string): Condition => ({
  type: "NewServicesDefaulted",
  status,
  reason,
  message: "",
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

const byKind = (objects: AdmissionObject[], kind: string): AdmissionObject => {
  const found = objects.find((o) => o.kind === kind);
  assert.ok(found, kind);
  return found;
};

describe("migration/guardrails: the admission policies of spec.newServices", () => {
  it("one name per plan for all four objects, hashed when the plan's name is too long", () => {
    assert.equal(guardrailName("shop"), "ipv6migration-shop-new-services");
    const long = "a".repeat(253);
    const name = guardrailName(long);
    assert.ok(name.length <= 253, `${name.length}`);
    assert.notEqual(name, guardrailName(`${"a".repeat(252)}b`), "two long names stay apart");
  });

  it("selects namespaces as the plan does: the list, or all but kube-system; exclusions; the namespace selector", () => {
    assert.deepEqual(namespaceSelectorFor({ namespaces: ["shop", "web"] }), {
      matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["shop", "web"] }],
    });
    assert.deepEqual(
      namespaceSelectorFor({
        excludeNamespaces: ["legacy"],
        namespaceSelector: {
          matchLabels: { team: "a" },
          matchExpressions: [{ key: "tier", operator: "Exists" }],
        },
      }),
      {
        matchLabels: { team: "a" },
        matchExpressions: [
          { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system"] },
          { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["legacy"] },
          { key: "tier", operator: "Exists" },
        ],
      },
    );
  });

  it("at DualStack: a mutating policy that adds the plan's ipFamilyPolicy when none is set, and a Warn binding", () => {
    const objects = admissionObjects(
      plan({
        targetPhase: "DualStack",
        newServices: "Default",
        dualStack: { ipFamilyPolicy: "RequireDualStack" },
        selector: { namespaces: ["shop"], serviceSelector: { matchLabels: { tier: "web" } } },
      }),
    );
    assert.deepEqual(
      objects.map((o) => o.kind),
      [
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
      ],
      "policies before their bindings",
    );
    for (const o of objects) {
      assert.equal(o.apiVersion, "admissionregistration.k8s.io/v1");
      assert.equal(o.metadata.name, "ipv6migration-shop-new-services");
      assert.deepEqual(o.metadata.ownerReferences, [
        {
          apiVersion: "ipv6migration.io/v1alpha1",
          kind: "MigrationPlan",
          name: "shop",
          uid: "uid-shop",
          controller: true,
        },
      ]);
      assert.equal(o.metadata.annotations?.["ipv6migration.io/plan"], "shop");
    }
    const mutating = byKind(objects, "MutatingAdmissionPolicy").spec as {
      failurePolicy: string;
      matchConstraints: { resourceRules: { operations: string[]; resources: string[] }[] };
      matchConditions: { expression: string }[];
      mutations: { patchType: string; jsonPatch: { expression: string } }[];
    };
    assert.equal(mutating.failurePolicy, "Ignore", "a policy that fails never keeps a Service from being created");
    assert.deepEqual(mutating.matchConstraints.resourceRules[0]?.operations, ["CREATE"]);
    assert.deepEqual(mutating.matchConstraints.resourceRules[0]?.resources, ["services"]);
    assert.deepEqual(
      mutating.matchConditions.map((c) => c.expression),
      ["!has(object.spec.type) || object.spec.type != 'ExternalName'", "!has(object.spec.ipFamilyPolicy)"],
    );
    assert.equal(
      mutating.mutations[0]?.jsonPatch.expression,
      "[JSONPatch{op: 'add', path: '/spec/ipFamilyPolicy', value: 'RequireDualStack'}]",
    );
    for (const kind of ["MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicyBinding"]) {
      assert.deepEqual(byKind(objects, kind).spec.matchResources, {
        namespaceSelector: {
          matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["shop"] }],
        },
        objectSelector: { matchLabels: { tier: "web" } },
      });
    }
    assert.deepEqual(byKind(objects, "ValidatingAdmissionPolicyBinding").spec.validationActions, ["Warn"]);
    const message = (
      byKind(objects, "ValidatingAdmissionPolicy").spec as { validations: { messageExpression: string }[] }
    ).validations[0]?.messageExpression;
    assert.match(message ?? "", /^'MigrationPlan shop \(targetPhase DualStack, newServices Default\)/);
    assert.match(message ?? "", /makes it RequireDualStack afterwards/);
  });

  it("at IPv6Only: IPv6 SingleStack for Services that set no families, no address, no dual-stack policy", () => {
    const objects = admissionObjects(plan({ targetPhase: "IPv6Only", newServices: "Default" }));
    const mutating = byKind(objects, "MutatingAdmissionPolicy").spec as {
      matchConditions: { expression: string }[];
      mutations: { jsonPatch: { expression: string } }[];
    };
    const condition = mutating.matchConditions[1]?.expression ?? "";
    for (const field of ["ipFamilies", "ipFamilyPolicy", "clusterIP", "clusterIPs"]) {
      assert.ok(condition.includes(`has(object.spec.${field})`), field);
    }
    assert.equal(
      mutating.mutations[0]?.jsonPatch.expression,
      "[JSONPatch{op: 'add', path: '/spec/ipFamilyPolicy', value: 'SingleStack'}, JSONPatch{op: 'add', path: '/spec/ipFamilies', value: ['IPv6']}]",
    );
    assert.deepEqual(byKind(objects, "MutatingAdmissionPolicyBinding").spec.matchResources, {
      namespaceSelector: {
        matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system"] }],
      },
      objectSelector: {},
    });
  });

  it("asks for the policies only at DualStack or IPv6Only with newServices Default, and for none while deleting", () => {
    assert.equal(guardrailWant(plan({ targetPhase: "DualStack", newServices: "Default" }), false).want, "present");
    const reasons = [
      guardrailWant(plan({ targetPhase: "DualStack" }), false),
      guardrailWant(plan({ targetPhase: "DualStack", newServices: "Ignore" }), false),
      guardrailWant(plan({ targetPhase: "Audit", newServices: "Default" }), false),
      guardrailWant(plan({ targetPhase: "IPv6Only", newServices: "Default" }), true),
    ].map((w) => (w.want === "absent" ? w.reason : w.want));
    assert.deepEqual(reasons, ["NewServicesIgnored", "NewServicesIgnored", "NotTargeted", "Deleting"]);
    assert.equal(
      guardrailWant(plan({ targetPhase: "DualStack", newServices: "Default", suspend: true }), false).want,
      "untouched",
    );
  });

  it("policies may exist unless the status says they were removed; a plan that never asked costs nothing", () => {
    assert.equal(mayHavePolicies(plan({ targetPhase: "DualStack" })), false);
    assert.equal(mayHavePolicies(plan({ newServices: "Default" })), true, "asked, and no status yet");
    assert.equal(mayHavePolicies(plan({}, [condition("True", "PoliciesApplied")])), true);
    assert.equal(mayHavePolicies(plan({}, [condition("False", "Forbidden")])), true, "an unknown outcome");
    assert.equal(mayHavePolicies(plan({}, [condition("False", "PolicyWriteFailed")])), true);
    for (const removed of ["NotTargeted", "NewServicesIgnored", "Deleting", "MutatingAdmissionPolicyNotServed"]) {
      assert.equal(mayHavePolicies(plan({ newServices: "Default" }, [condition("False", removed)])), false, removed);
    }
  });
});
