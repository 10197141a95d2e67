// Bad input is refused at admission by the CRD's schema and CEL rules, with a message that names the field.
import assert from "node:assert/strict";
import { MIGRATION_PLANS } from "../../src/api/migrationplan.js";
import { useControlPlane } from "../helpers.js";
import { installCRD } from "../operator.js";
import { BAD_PLANS, expectRefusedAtAdmission } from "../fixtures/bad-plans.js";

describe("MigrationPlan admission", function () {
  const env = useControlPlane({ families: "ipv4" });

  before(async () => {
    await installCRD(env.cp);
  });

  BAD_PLANS.forEach(({ title, field }, i) => {
    it(`rejects ${title}, naming ${field}`, () => expectRefusedAtAdmission(env.client, i));
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
      deletionPolicy: "Orphan",
    });
  });
});
