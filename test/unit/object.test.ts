// mergePatchFor: the merge patch that makes the stored object what was computed, keys that went away included.
import assert from "node:assert/strict";
import { mergePatchFor } from "../../src/runtime/object.js";

/** RFC 7386 as the API server applies it: null deletes, objects merge, anything else replaces. */
function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = applyMergePatch(out[key], value);
  }
  return out;
}

describe("runtime/object: mergePatchFor", () => {
  it("nulls the keys gone from a map, so the server drops them (a finding kind no longer counted)", () => {
    const current = {
      preflight: { counts: { FamilyFieldManager: 1, ServiceRange: 1 }, findings: [{ kind: "FamilyFieldManager" }] },
      retryAt: "2026-01-01T00:00:00Z",
      phase: "MigratingToIPv6Only",
    };
    const desired = { preflight: { counts: { ServiceRange: 1 }, findings: [] }, phase: "IPv6Only", retryAt: undefined };
    const patch = mergePatchFor(current, desired);
    assert.deepEqual(patch, {
      preflight: { counts: { FamilyFieldManager: null, ServiceRange: 1 }, findings: [] },
      retryAt: null,
      phase: "IPv6Only",
    });
    assert.deepEqual(applyMergePatch(current, JSON.parse(JSON.stringify(patch))), {
      preflight: { counts: { ServiceRange: 1 }, findings: [] },
      phase: "IPv6Only",
    });
  });

  it("replaces arrays whole and sets what is new", () => {
    const current = { conditions: [{ type: "Ready" }, { type: "Stalled" }], summary: { selected: 2 } };
    const desired = { conditions: [{ type: "Ready" }], summary: { selected: 3, skippedByReason: { ExternalName: 1 } } };
    assert.deepEqual(applyMergePatch(current, mergePatchFor(current, desired)), desired);
    assert.deepEqual(mergePatchFor(undefined, desired), desired);
  });
});
