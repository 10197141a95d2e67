// Unit tests of the one path both readers take (src/migration/snapshot.ts): selection and ownership, the preflight
// findings computed from the snapshot, and the decisions and tally that follow. Plain objects only.
import assert from "node:assert/strict";
import { PLAN_ANNOTATION, REASONS, type MigrationPlan } from "../../src/api/migrationplan.js";
import type { Service } from "../../src/migration/families.js";
import { settingsOf } from "../../src/migration/plan.js";
import {
  assess,
  preflightSubjects,
  selectServices,
  snapshotFindings,
  type ClusterSnapshot,
  type EndpointSummary,
} from "../../src/migration/snapshot.js";

function plan(name: string, createdAt: string, namespaces: string[]): MigrationPlan {
  return {
    metadata: { name, generation: 1, creationTimestamp: createdAt },
    spec: { targetPhase: "IPv6Only", selector: { namespaces } },
  };
}

function svc(namespace: string, name: string, annotations: Record<string, string> = {}): Service {
  return {
    metadata: { namespace, name, generation: 1, annotations },
    spec: {
      type: "ClusterIP",
      selector: { app: name },
      clusterIP: "10.96.0.10",
      clusterIPs: ["10.96.0.10", "fd00::10"],
      ipFamilies: ["IPv4", "IPv6"],
      ipFamilyPolicy: "PreferDualStack",
      ports: [{ port: 80 }],
    },
  };
}

function snapshot(
  plans: MigrationPlan[],
  services: Service[],
  endpoints: Record<string, EndpointSummary>,
): ClusterSnapshot {
  return {
    plans,
    services,
    namespaceLabels: () => ({}),
    endpoints: (key) => endpoints[key] ?? { ipv6Ready: 0, nodeNames: [] },
    nodes: [
      { name: "dual", internalIPs: ["192.168.0.1", "fd00::1"], podCIDRs: ["10.244.0.0/24", "fd00:244::/64"] },
      { name: "v4", internalIPs: ["192.168.0.2"], podCIDRs: ["10.244.1.0/24"] },
    ],
    networkPolicies: [],
  };
}

describe("migration/snapshot: one path for the reconciler and the audit", () => {
  const older = plan("older", "2026-01-01T00:00:00Z", ["a", "b"]);
  const newer = plan("newer", "2026-02-01T00:00:00Z", ["b", "c"]);
  const services = [svc("a", "web"), svc("b", "api"), svc("c", "ready"), svc("c", "v4node"), svc("c", "waiting")];
  const snap = snapshot([older, newer], services, {
    "c/ready": { ipv6Ready: 2, nodeNames: ["dual"] },
    "c/v4node": { ipv6Ready: 1, nodeNames: ["v4"] },
  });

  it("a Service selected by two plans belongs to the older; the newer counts it as a conflict", () => {
    const selection = selectServices(newer, snap);
    assert.deepEqual(
      selection.owned.map((s) => s.metadata.name),
      ["ready", "v4node", "waiting"],
    );
    assert.deepEqual(
      selection.claimed.map((c) => [c.svc.metadata.name, c.by]),
      [["api", "older"]],
    );
    const { tally } = assess(selection, snap, settingsOf(newer), []);
    assert.equal(tally.selected, 4);
    assert.equal(tally.skippedByReason[REASONS.claimedByOlderPlan], 1);
    assert.equal(tally.problems.find((p) => p.name === "api")?.state, "Conflict");
  });

  it("on a creationTimestamp tie the plan named on the Service keeps it", () => {
    const twin = plan("twin", "2026-01-01T00:00:00Z", ["a"]);
    const annotated = snapshot([older, twin], [svc("a", "web", { [PLAN_ANNOTATION]: "twin" })], {});
    assert.equal(selectServices(twin, annotated).owned.length, 1);
    assert.equal(selectServices(older, annotated).claimed[0]?.by, "twin");
  });

  it("endpoints and snapshot findings gate the move: ready IPv6 endpoints on a dual-stack node move", () => {
    const selection = selectServices(newer, snap);
    const findings = snapshotFindings(snap, preflightSubjects(selection, snap));
    const { decisions, tally } = assess(selection, snap, settingsOf(newer), findings);
    const action = (name: string) => decisions.find((d) => d.svc.metadata.name === name)?.decision;
    assert.equal(action("ready")?.action, "cutover");
    const v4 = action("v4node");
    assert.equal(v4?.action, "block");
    assert.equal(v4?.action === "block" ? v4.reason : "", "PreflightEndpointsOnIPv4OnlyNode");
    const waiting = action("waiting");
    assert.equal(waiting?.action === "block" ? waiting.reason : "", REASONS.waitingForIPv6Endpoints);
    assert.equal(tally.pending, 1);
    assert.equal(tally.blocked, 2);
  });
});
