// The README's API reference is the CRD's schema: a field added to one and not the other fails here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { generate, readmeSection, repo } from "../apidoc.js";

describe("README API reference", () => {
  it("matches the CRD (regenerate with `node dist/test/apidoc.js --write`)", () => {
    const readme = readFileSync(path.join(repo, "README.md"), "utf8");
    assert.equal(readmeSection(readme), generate());
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
