// The README's API reference and the TypeScript types are the CRD's schema: a field added to one and not the
// others fails here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { generate, generateTypes, readmeSection, repo, TYPES_FILE } from "../apidoc.js";

describe("the API generated from the CRD: README reference and TypeScript types", () => {
  it("matches the CRD (regenerate with `node dist/test/apidoc.js --write`)", () => {
    const readme = readFileSync(path.join(repo, "README.md"), "utf8");
    assert.equal(readmeSection(readme), generate());
  });

  it("src/api/v1alpha1.ts is generated from the CRD (regenerate the same way)", async () => {
    assert.equal(readFileSync(TYPES_FILE, "utf8"), await generateTypes());
  });

  it("documents every spec field the reconciler reads", () => {
    const reference = generate();
    for (const field of [
      "spec.targetPhase",
      "spec.selector.namespaces",
      "spec.selector.excludeNamespaces",
      "spec.selector.namespaceSelector",
      "spec.selector.serviceSelector",
      "spec.dualStack.ipFamilyPolicy",
      "spec.ipv6Only.requireIPv6Endpoints",
      "spec.ipv6Only.allowLoadBalancerRecreate",
      "spec.rollout.batchSize",
      "spec.rollout.pauseBetweenBatches",
      "spec.rollout.maxFailures",
      "spec.suspend",
    ]) {
      assert.ok(reference.includes(`| \`${field}\` |`), field);
    }
  });
});
