// Preflight on a real control plane: each kind of finding appears by name in the plan's status, in Events and
// in `ipv6-migrate audit -o json`, blocks the cutover of the Service it concerns, and disappears when fixed,
// after which the Service moves without anyone editing the plan. Nodes, Pods, ConfigMaps and NetworkPolicies
// are created through the API: no kubelet or scheduler is needed for the checks.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { type MigrationPlan } from "../../src/api/migrationplan.js";
import { type Service } from "../../src/migration/families.js";
import { core, SERVICES, type KubeClient } from "../../src/runtime/client.js";
import { findCondition } from "../../src/runtime/object.js";
import { NETWORK_POLICIES, NODES } from "../../src/reconciler/preflight.js";
import { CONFIGMAPS_FOR_TESTS } from "../fixtures/resources.js";
import { createIPv6Slice, createNamespace, createService, eventually, useControlPlane } from "../helpers.js";
import { CLI, OperatorProcess, createPlan, getPlan, installCRD, waitForCondition } from "../operator.js";
import type { AuditReport } from "../../src/cli/audit.js";

const NS = "pf";
const PODS = core("pods", "Pod");
const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };

function auditJSON(kubeconfig: string, args: string[] = []): Promise<AuditReport> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, "audit", "-o", "json", `--kubeconfig=${kubeconfig}`, ...args],
      (err, stdout, stderr) => {
        if (err && (err as { code?: number }).code !== 3) return reject(new Error(stderr || err.message));
        resolve(JSON.parse(stdout) as AuditReport);
      },
    );
  });
}

async function node(client: KubeClient, name: string, addresses: string[], podCIDRs?: string[]): Promise<void> {
  await client.create(NODES, undefined, { metadata: { name }, spec: podCIDRs ? { podCIDRs } : {} });
  await client.patch(
    NODES,
    undefined,
    name,
    { status: { addresses: addresses.map((address) => ({ type: "InternalIP", address })) } },
    "merge",
    { subresource: "status" },
  );
}

function pod(name: string, env: Record<string, string> = {}): Record<string, unknown> {
  return {
    metadata: { name, labels: { app: "client" } },
    spec: {
      containers: [
        { name: "app", image: "busybox", env: Object.entries(env).map(([n, value]) => ({ name: n, value })) },
      ],
    },
  };
}

describe("preflight on a dual-stack cluster", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;
  const ip = new Map<string, string>();

  const findingObjects = (plan: MigrationPlan) => (plan.status?.preflight?.findings ?? []).map((f) => f.object);
  const familiesOf = async (name: string) =>
    (await env.client.get<Service>(SERVICES, NS, name)).spec.ipFamilies?.join(",");

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    await node(env.client, "node-dual", ["192.168.0.1", "fd00:1::1"], ["10.244.0.0/24", "fd00:244::/64"]);
    await node(env.client, "node-v4", ["192.168.0.2"]);
    for (const name of ["web", "api", "db", "free"]) {
      const svc = (await createService(env.client, NS, {
        metadata: { name },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
      })) as Service;
      ip.set(name, svc.spec.clusterIP ?? "");
    }
    await createIPv6Slice(env.client, NS, "web", "fd00:2::1", "node-v4");
    await createIPv6Slice(env.client, NS, "api", "fd00:2::2", "node-dual");
    await createIPv6Slice(env.client, NS, "db", "fd00:2::3", "node-dual");
    await createIPv6Slice(env.client, NS, "free", "fd00:2::4", "node-dual");
    await env.client.create(NETWORK_POLICIES, NS, {
      metadata: { name: "allow-office" },
      spec: {
        podSelector: { matchLabels: { app: "api" } },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }] }],
      },
    });
    await env.client.create(PODS, NS, pod("client", { DB_HOST: ip.get("db")! }));
    await env.client.create(CONFIGMAPS_FOR_TESTS, NS, {
      metadata: { name: "settings" },
      data: { "app.properties": `db.url=jdbc:postgresql://${ip.get("db")!}:5432/app` },
    });
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name, {}, ["--preflight-interval=1s"]).start();
    await createPlan(env.client, "pf", {
      targetPhase: "IPv6Only",
      selector: { namespaces: [NS] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("reports each finding by name in status, with PreflightPassed False", async () => {
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, "pf");
      return findingObjects(p).includes("ConfigMap/pf/settings") ? p : undefined;
    }, "the preflight findings");
    const objects = findingObjects(plan);
    for (const expected of [
      "ServiceCIDR/fd00:10:96::/108",
      "Node/node-v4",
      "Service/pf/web",
      "NetworkPolicy/pf/allow-office",
      "Pod/pf/client",
      "ConfigMap/pf/settings",
    ]) {
      assert.ok(objects.includes(expected), `${expected} in ${objects.join(", ")}`);
    }
    const range = plan.status?.preflight?.findings.find((f) => f.kind === "ServiceRange");
    assert.equal(range?.reason, "IPv6Range_uniqueLocal");
    const np = plan.status?.preflight?.findings.find((f) => f.kind === "NetworkPolicy");
    assert.match(np?.message ?? "", /^ingress\[0\] of NetworkPolicy pf\/allow-office/);
    assert.match(
      plan.status?.preflight?.findings.find((f) => f.object === "Pod/pf/client")?.message ?? "",
      /container app env DB_HOST/,
    );
    assert.equal(findCondition(plan.status?.conditions, "PreflightPassed")?.status, "False");
    assert.equal(plan.status?.preflight?.counts.HardcodedClusterIP, 2);
  });

  it("puts each finding in an Event on the plan", async () => {
    const events = await eventually(async () => {
      const out = await env.cp.kubectl([
        "get",
        "events",
        "-A",
        "--field-selector",
        "reason=PreflightFinding",
        "-o",
        "json",
      ]);
      return out.stdout.includes("ConfigMap/pf/settings") ? out.stdout : undefined;
    }, "the preflight events");
    for (const object of ["Node/node-v4", "Service/pf/web", "NetworkPolicy/pf/allow-office", "Pod/pf/client"]) {
      assert.ok(events.includes(object), object);
    }
  });

  it("`ipv6-migrate audit -o json` reports the same findings", async () => {
    const report = await auditJSON(env.cp.kubeconfigPath, ["-n", NS]);
    const objects = report.preflight.findings.map((f) => f.object);
    for (const expected of [
      "Node/node-v4",
      "Service/pf/web",
      "NetworkPolicy/pf/allow-office",
      "Pod/pf/client",
      "ConfigMap/pf/settings",
    ]) {
      assert.ok(objects.includes(expected), `${expected} in ${objects.join(", ")}`);
    }
    assert.equal(report.services.find((s) => s.name === "db")?.ipv6Only.reason, "PreflightHardcodedClusterIP");
  });

  it("blocks the Services it concerns and lets the others move", async () => {
    await eventually(async () => ((await familiesOf("free")) === "IPv6" ? true : undefined), "free to move");
    const plan = await getPlan(env.client, "pf");
    const reasons = Object.fromEntries((plan.status?.problems ?? []).map((p) => [p.name, p.reason]));
    assert.deepEqual(reasons, {
      api: "PreflightIPv4OnlyIPBlock",
      db: "PreflightHardcodedClusterIP",
      web: "PreflightEndpointsOnIPv4OnlyNode",
    });
    for (const name of ["web", "api", "db"]) assert.equal(await familiesOf(name), "IPv4", name);
  });

  it("after a cutover, lists the pods that still hold the old address in service-link env vars", async () => {
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, "pf");
      return p.status?.preflight?.findings.some((f) => f.kind === "StaleServiceLinks") ? p : undefined;
    }, "the stale service links");
    const stale = plan.status?.preflight?.findings.find((f) => f.kind === "StaleServiceLinks");
    assert.equal(stale?.object, "Pod/pf/client");
    assert.match(stale?.message ?? "", /FREE_SERVICE_HOST/);
  });

  it("each finding disappears when fixed, and the blocked Services move without a plan edit", async () => {
    const generation = (await getPlan(env.client, "pf")).metadata.generation;
    await env.client.patch(
      NODES,
      undefined,
      "node-v4",
      { spec: { podCIDRs: ["10.244.1.0/24", "fd00:244:1::/64"] } },
      "merge",
    );
    await env.client.patch(
      NODES,
      undefined,
      "node-v4",
      {
        status: {
          addresses: [
            { type: "InternalIP", address: "192.168.0.2" },
            { type: "InternalIP", address: "fd00:1::2" },
          ],
        },
      },
      "merge",
      { subresource: "status" },
    );
    await env.client.patch(
      NETWORK_POLICIES,
      NS,
      "allow-office",
      {
        spec: {
          ingress: [
            { from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }, { ipBlock: { cidr: "fd00::/8" } }] },
          ],
        },
      },
      "merge",
    );
    await env.client.delete(PODS, NS, "client");
    await env.client.patch(
      CONFIGMAPS_FOR_TESTS,
      NS,
      "settings",
      { data: { "app.properties": "db.url=jdbc:postgresql://db.pf.svc:5432/app" } },
      "merge",
    );
    const plan = await eventually(
      async () => {
        const p = await getPlan(env.client, "pf");
        return findCondition(p.status?.conditions, "IPv6OnlyComplete")?.status === "True" ? p : undefined;
      },
      "every Service to move",
      120_000,
    );
    assert.equal(plan.metadata.generation, generation, "the plan was not edited");
    for (const name of ["web", "api", "db", "free"]) assert.equal(await familiesOf(name), "IPv6", name);
    const objects = findingObjects(plan);
    for (const gone of [
      "Node/node-v4",
      "Service/pf/web",
      "NetworkPolicy/pf/allow-office",
      "Pod/pf/client",
      "ConfigMap/pf/settings",
    ]) {
      assert.ok(!objects.includes(gone), `${gone} is gone`);
    }
    assert.equal(findCondition(plan.status?.conditions, "PreflightPassed")?.status, "True");
  });
});

describe("preflight: a fixed Pod or ConfigMap finding clears through the watches", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess | undefined;
  const familiesOf = async (name: string) =>
    (await env.client.get<Service>(SERVICES, NS, name)).spec.ipFamilies?.join(",");

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("long before the preflight interval, and with no other change to wake the plan", async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    const ip = new Map<string, string>();
    for (const name of ["by-pod", "by-configmap"]) {
      const svc = (await createService(env.client, NS, {
        metadata: { name },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
      })) as Service;
      ip.set(name, svc.spec.clusterIP ?? "");
      await createIPv6Slice(env.client, NS, name, name === "by-pod" ? "fd00:3::1" : "fd00:3::2");
    }
    await env.client.create(PODS, NS, pod("client", { UPSTREAM: ip.get("by-pod")! }));
    await env.client.create(CONFIGMAPS_FOR_TESTS, NS, {
      metadata: { name: "settings" },
      data: { upstream: `http://${ip.get("by-configmap")!}:80` },
    });
    // Both Services are blocked, so no batch ever runs (a batch would rescan): after the first scan, only the
    // metadata watches can tell the operator that a finding was fixed before this interval.
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name, {}, ["--preflight-interval=1h"]).start();
    await createPlan(env.client, "watched", {
      targetPhase: "IPv6Only",
      selector: { namespaces: [NS] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    const blocked = await eventually(async () => {
      const plan = await getPlan(env.client, "watched");
      return plan.status?.summary?.blocked === 2 ? plan : undefined;
    }, "both Services to be blocked by their findings");
    assert.deepEqual(
      (blocked.status?.problems ?? []).map((p) => `${p.name}: ${p.reason}`),
      ["by-configmap: PreflightHardcodedClusterIP", "by-pod: PreflightHardcodedClusterIP"],
    );

    await env.client.patch(
      CONFIGMAPS_FOR_TESTS,
      NS,
      "settings",
      { data: { upstream: "http://by-configmap.pf.svc" } },
      "merge",
    );
    await eventually(
      async () => ((await familiesOf("by-configmap")) === "IPv6" ? true : undefined),
      "by-configmap to move",
    );
    assert.equal(await familiesOf("by-pod"), "IPv4", "the Pod still holds by-pod's address");

    await env.client.delete(PODS, NS, "client");
    await eventually(async () => ((await familiesOf("by-pod")) === "IPv6" ? true : undefined), "by-pod to move");
    const done = await waitForCondition(env.client, "watched", "IPv6OnlyComplete");
    assert.equal(done.metadata.generation, 1, "the plan was never edited");
  });
});

for (const variant of [
  {
    title: "IPv4-only",
    families: "ipv4" as const,
    ranges: ["10.96.0.0/16"],
    reason: "NoIPv6ServiceRange",
    severity: "Blocking",
  },
  {
    title: "IPv4-primary with a ULA range",
    families: "dual" as const,
    ranges: ["10.96.0.0/16", "fd00:10:96::/108"],
    reason: "IPv6Range_uniqueLocal",
    severity: "Info",
  },
  {
    title: "IPv6-primary with a global range",
    families: "ipv6-dual" as const,
    ranges: ["2600:1f18:4a::/112", "10.96.0.0/16"],
    reason: "IPv6Range_unicast",
    severity: "Info",
  },
  {
    title: "IPv4-primary with a documentation range",
    families: "dual" as const,
    ranges: ["10.96.0.0/16", "2001:db8:96::/112"],
    reason: "UnusualIPv6Range_reserved",
    severity: "Warning",
  },
]) {
  describe(`preflight Service range on an ${variant.title} control plane`, function () {
    const env = useControlPlane({ families: variant.families, serviceClusterIPRanges: variant.ranges });

    it(`is classified ${variant.reason} (${variant.severity})`, async () => {
      await createNamespace(env.client, "x");
      await createService(env.client, "x", { metadata: { name: "s" }, spec: { ports: [{ port: 80 }] } });
      const report = await auditJSON(env.cp.kubeconfigPath, ["-n", "x"]);
      const range = report.preflight.findings.filter((f) => f.kind === "ServiceRange");
      assert.equal(range.length, 1, JSON.stringify(range));
      assert.equal(range[0]?.reason, variant.reason);
      assert.equal(range[0]?.severity, variant.severity);
      if (variant.severity !== "Blocking") assert.match(range[0]?.message ?? "", /room for \d+ more Services/);
    });
  });
}
