// Bad input is refused at admission by the CRD's schema and CEL rules, with a message that names the field.
import assert from "node:assert/strict";
import { MIGRATION_PLANS } from "../../src/migration/api.js";
import { resourcePath } from "../../src/runtime/client.js";
import { expectApiError, useControlPlane } from "../helpers.js";
import { installCRD } from "../operator.js";
import { BAD_PLANS } from "../fixtures/bad-plans.js";

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
