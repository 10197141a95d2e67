// Bad input is refused at admission by the CRD's schema and CEL rules, with a message that names the field.
import assert from "node:assert/strict";
import { MIGRATION_PLANS } from "../../src/migration/api.js";
import { resourcePath } from "../../src/runtime/client.js";
import { expectApiError, useControlPlane } from "../helpers.js";
import { installCRD } from "../operator.js";

/** Each bad spec, and the field its error must name. */
export const BAD_PLANS: { title: string; spec: unknown; field: string; code?: number }[] = [
  { title: "an unknown targetPhase", spec: { targetPhase: "IPv7" }, field: "spec.targetPhase" },
  {
    title: "a namespace both included and excluded",
    spec: { selector: { namespaces: ["a", "b"], excludeNamespaces: ["b"] } },
    field: "spec.selector",
  },
  { title: "batchSize 0", spec: { rollout: { batchSize: 0 } }, field: "spec.rollout.batchSize" },
  { title: "batchSize -5", spec: { rollout: { batchSize: -5 } }, field: "spec.rollout.batchSize" },
  { title: "a percent over 100", spec: { rollout: { batchSize: "150%" } }, field: "spec.rollout.batchSize" },
  { title: "a percent of 0", spec: { rollout: { batchSize: "0%" } }, field: "spec.rollout.batchSize" },
  { title: "batchSize that is neither", spec: { rollout: { batchSize: "ten" } }, field: "spec.rollout.batchSize" },
  {
    title: "a pause that is no duration",
    spec: { rollout: { pauseBetweenBatches: "soon" } },
    field: "spec.rollout.pauseBetweenBatches",
  },
  {
    title: "a pause over 24h",
    spec: { rollout: { pauseBetweenBatches: "48h" } },
    field: "spec.rollout.pauseBetweenBatches",
  },
  { title: "negative maxFailures", spec: { rollout: { maxFailures: -1 } }, field: "spec.rollout.maxFailures" },
  {
    title: "SingleStack as the dual-stack policy",
    spec: { dualStack: { ipFamilyPolicy: "SingleStack" } },
    field: "spec.dualStack.ipFamilyPolicy",
  },
  {
    title: "an invalid namespace name",
    spec: { selector: { namespaces: ["Bad_NS"] } },
    field: "spec.selector.namespaces[0]",
  },
  {
    title: "an unknown selector operator",
    spec: { selector: { serviceSelector: { matchExpressions: [{ key: "app", operator: "Equals", values: ["x"] }] } } },
    field: "spec.selector.serviceSelector.matchExpressions[0].operator",
  },
  {
    title: "In without values",
    spec: { selector: { namespaceSelector: { matchExpressions: [{ key: "env", operator: "In" }] } } },
    field: "matchExpressions[].values",
  },
  {
    title: "kube-system cut over to IPv6Only",
    spec: { targetPhase: "IPv6Only", selector: { namespaces: ["kube-system"] } },
    field: "spec.selector.namespaces",
  },
  {
    title: "a string for a boolean",
    spec: { ipv6Only: { requireIPv6Endpoints: "yes" } },
    field: "spec.ipv6Only.requireIPv6Endpoints",
  },
  { title: "a string for suspend", spec: { suspend: "true" }, field: "spec.suspend" },
  // Strict field validation (kubectl's default) answers 400 BadRequest for an unknown field, not 422.
  { title: "a misspelt field", spec: { targetPhse: "DualStack" }, field: 'unknown field "spec.targetPhse"', code: 400 },
  {
    title: "a duplicate namespace",
    spec: { selector: { namespaces: ["a", "a"] } },
    field: "spec.selector.namespaces[1]",
  },
  { title: "a float batchSize", spec: { rollout: { batchSize: 2.5 } }, field: "spec.rollout.batchSize" },
];

describe("MigrationPlan admission", function () {
  const env = useControlPlane({ families: "ipv4" });

  before(async () => {
    await installCRD(env.cp);
  });

  BAD_PLANS.forEach(({ title, spec, field, code }, i) => {
    it(`rejects ${title}, naming ${field}`, async () => {
      const err = await expectApiError(
        env.client.request("POST", resourcePath(MIGRATION_PLANS), {
          query: { fieldValidation: "Strict" },
          body: {
            apiVersion: "ipv6migration.io/v1alpha1",
            kind: "MigrationPlan",
            metadata: { name: `bad-${i}` },
            spec,
          },
        }),
        code ?? 422,
      );
      assert.ok(err.message.includes(field), `the message names ${field}: ${err.message}`);
    });
  });

  it("accepts a minimal plan and defaults every field", async () => {
    const plan = await env.client.create<{ spec: Record<string, unknown> }>(MIGRATION_PLANS, undefined, {
      apiVersion: "ipv6migration.io/v1alpha1",
      kind: "MigrationPlan",
      metadata: { name: "minimal" },
      spec: {},
    });
    assert.deepEqual(plan.spec, {
      targetPhase: "Audit",
      suspend: false,
    });
  });
});
