// Services managed by other tools, and IPv4 values an IPv6-only Service would keep, on a real control plane: each
// marker is set up as its tool leaves it (Helm's labels and annotations with a client-side create by field
// manager "helm", Argo CD's tracking annotation, Flux's labels with a server-side apply by kustomize-controller,
// an ownerReference to a real object with controller: true), and each is found and named before anything moves,
// in the plan's status and in `ipv6-migrate audit -o json`. At IPv6Only the controller-owned Service and those
// holding IPv4 values are blocked while the others move; the opt-in and the fixes let them move.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { MIGRATION_PLANS, type MigrationPlan, type PreflightFindingStatus } from "../../src/api/migrationplan.js";
import type { AuditReport } from "../../src/cli/audit.js";
import type { Service } from "../../src/migration/families.js";
import { SERVICES, type KubeClient } from "../../src/runtime/client.js";
import { findCondition } from "../../src/runtime/object.js";
import type { ControlPlane } from "../../src/testenv/controlplane.js";
import { CONFIGMAPS_FOR_TESTS } from "../fixtures/resources.js";
import { createIPv6Slice, createNamespace, createService, eventually, useControlPlane } from "../helpers.js";
import { CLI, OperatorProcess, createPlan, getPlan, installCRD } from "../operator.js";

const NS = "estate";
const PLAN = "estate";
const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };

function manifest(name: string, metadata: Record<string, unknown>, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: NS, ...metadata },
    spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }], ...spec },
  });
}

async function kubectlOK(cp: ControlPlane, args: string[], input?: string): Promise<void> {
  const result = await cp.kubectl(args, { input });
  assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
}

function auditJSON(kubeconfig: string): Promise<AuditReport> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, "audit", "-o", "json", `--kubeconfig=${kubeconfig}`, "-n", NS],
      (err, stdout, stderr) => {
        if (err && (err as { code?: number }).code !== 3) return reject(new Error(stderr || err.message));
        resolve(JSON.parse(stdout) as AuditReport);
      },
    );
  });
}

/** What each setup must be found as: kind, the Service, and what its message names. */
const EXPECTED: [kind: string, service: string, names: RegExp][] = [
  ["ManagedByHelm", "helm-web", /^Service estate\/helm-web belongs to Helm release estate\/web: `helm upgrade`/],
  [
    "FamilyFieldManager",
    "helm-web",
    /^field manager helm \(operation Update\) owns spec.ipFamilyPolicy and spec.ipFamilies/,
  ],
  [
    "ManagedByArgoCD",
    "argo-web",
    /synced by Argo CD Application guestbook \(annotation argocd.argoproj.io\/tracking-id\)/,
  ],
  ["ManagedByFlux", "flux-web", /applied by Flux Kustomization flux-system\/apps: each reconciliation/],
  [
    "FamilyFieldManager",
    "flux-web",
    /^field manager kustomize-controller \(operation Apply\) owns spec.ipFamilyPolicy of/,
  ],
  ["ManagedByController", "owned-db", /controlled by ConfigMap db-cluster \(v1\), which may set its families back/],
  ["IPv4SpecValue", "ext-ip", /^spec.externalIPs of Service estate\/ext-ip holds IPv4 198.51.100.7,/],
  ["IPv4SpecValue", "lb", /^spec.loadBalancerSourceRanges of Service estate\/lb holds IPv4 10.0.0.0\/8,/],
  ["IPv4SpecValue", "lb", /^spec.loadBalancerIP of Service estate\/lb holds IPv4 203.0.113.10,/],
];

function assertNamed(findings: { kind: string; object: string; message: string }[], where: string): void {
  for (const [kind, service, names] of EXPECTED) {
    const found = findings.filter((f) => f.kind === kind && f.object === `Service/${NS}/${service}`);
    assert.ok(
      found.some((f) => names.test(f.message)),
      `${where}: ${kind} of ${service} matching ${names}, among ${JSON.stringify(found)}`,
    );
  }
  assert.deepEqual(
    findings.filter((f) => f.object === `Service/${NS}/plain`),
    [],
    `${where}: nothing about the Service no tool manages`,
  );
}

const familiesOf = async (client: KubeClient, name: string) =>
  (await client.get<Service>(SERVICES, NS, name)).spec.ipFamilies?.join(",");

describe("Services managed by other tools, and IPv4 values an IPv6-only Service would keep", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;

  before(async function () {
    this.timeout(180_000);
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    await kubectlOK(
      env.cp,
      ["create", "-f", "-", "--field-manager=helm"],
      manifest(
        "helm-web",
        {
          labels: { "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "web" },
          annotations: { "meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": NS },
        },
        // As charts such as ingress-nginx render them.
        { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"] },
      ),
    );
    await kubectlOK(
      env.cp,
      ["apply", "-f", "-", "--field-manager=argocd-controller"],
      manifest("argo-web", { annotations: { "argocd.argoproj.io/tracking-id": `guestbook:/Service:${NS}/argo-web` } }),
    );
    await kubectlOK(
      env.cp,
      ["apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-"],
      manifest(
        "flux-web",
        {
          labels: {
            "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
          },
        },
        { ipFamilyPolicy: "SingleStack" },
      ),
    );
    const owner = await env.client.create<{ metadata: { uid: string } }>(CONFIGMAPS_FOR_TESTS, NS, {
      metadata: { name: "db-cluster" },
      data: { instances: "3" },
    });
    await createService(env.client, NS, {
      metadata: {
        name: "owned-db",
        ownerReferences: [
          { apiVersion: "v1", kind: "ConfigMap", name: "db-cluster", uid: owner.metadata.uid, controller: true },
        ],
      } as Service["metadata"],
      spec: { selector: { app: "owned-db" }, ports: [{ port: 5432 }] },
    });
    await createService(env.client, NS, {
      metadata: { name: "ext-ip" },
      spec: { selector: { app: "ext-ip" }, ports: [{ port: 80 }], externalIPs: ["198.51.100.7", "2001:db8::7"] },
    });
    await createService(env.client, NS, {
      metadata: { name: "lb" },
      spec: {
        type: "LoadBalancer",
        selector: { app: "lb" },
        ports: [{ port: 443 }],
        loadBalancerSourceRanges: ["10.0.0.0/8"],
        loadBalancerIP: "203.0.113.10",
      },
    });
    await createService(env.client, NS, {
      metadata: { name: "plain" },
      spec: { selector: { app: "plain" }, ports: [{ port: 80 }] },
    });
    for (const [i, name] of ["helm-web", "argo-web", "flux-web", "owned-db", "ext-ip", "lb", "plain"].entries()) {
      await createIPv6Slice(env.client, NS, name, `fd00:5::${i + 1}`);
    }
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    await createPlan(env.client, PLAN, {
      targetPhase: "Audit",
      selector: { namespaces: [NS] },
      ipv6Only: { allowLoadBalancerRecreate: true },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("before anything moves, the plan's status names each manager and each IPv4 value, with what to change", async () => {
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, PLAN);
      return (p.status?.preflight?.findings.length ?? 0) >= EXPECTED.length ? p : undefined;
    }, "the findings in the plan's status");
    const findings = plan.status?.preflight?.findings ?? [];
    assertNamed(findings, "status");
    const severity = (kind: string, service: string) =>
      findings.find((f) => f.kind === kind && f.object === `Service/${NS}/${service}`)?.severity;
    assert.equal(severity("ManagedByController", "owned-db"), "Blocking");
    assert.equal(severity("ManagedByHelm", "helm-web"), "Warning");
    assert.equal(severity("IPv4SpecValue", "ext-ip"), "Blocking");
    // At Audit the source should say what DualStack will make of the Service.
    const helm = findings.find((f: PreflightFindingStatus) => f.kind === "ManagedByHelm");
    assert.match(helm?.message ?? "", /to ipFamilyPolicy: PreferDualStack/);
  });

  it("`ipv6-migrate audit -o json` names the same, and what IPv6Only would do with each", async () => {
    const report = await auditJSON(env.cp.kubeconfigPath);
    assertNamed(report.preflight.findings, "audit");
    const helm = report.preflight.findings.find((f) => f.kind === "ManagedByHelm");
    assert.match(helm?.message ?? "", /to ipFamilyPolicy: SingleStack and ipFamilies: \[IPv6\]/);
    const decisions = Object.fromEntries(report.services.map((s) => [s.name, s.ipv6Only.reason ?? s.ipv6Only.action]));
    assert.deepEqual(decisions, {
      "argo-web": "cutover",
      "ext-ip": "PreflightIPv4ExternalIPs",
      "flux-web": "cutover",
      "helm-web": "cutover",
      lb: "PreflightIPv4LoadBalancerSourceRanges",
      "owned-db": "ControllerOwned",
      plain: "cutover",
    });
  });

  it("at IPv6Only, the controller-owned Service and those with IPv4 values are blocked; the managed ones move", async () => {
    await env.client.patch(MIGRATION_PLANS, undefined, PLAN, { spec: { targetPhase: "IPv6Only" } }, "merge");
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, PLAN);
      return p.status?.observedGeneration === p.metadata.generation && p.status?.summary?.atTarget === 4
        ? p
        : undefined;
    }, "the unblocked Services to move");
    for (const name of ["helm-web", "argo-web", "flux-web", "plain"]) {
      assert.equal(await familiesOf(env.client, name), "IPv6", name);
    }
    for (const name of ["owned-db", "ext-ip", "lb"]) assert.equal(await familiesOf(env.client, name), "IPv4", name);
    assert.deepEqual(Object.fromEntries((plan.status?.problems ?? []).map((p) => [p.name, `${p.state} ${p.reason}`])), {
      "ext-ip": "Blocked PreflightIPv4ExternalIPs",
      lb: "Blocked PreflightIPv4LoadBalancerSourceRanges",
      "owned-db": "Blocked ControllerOwned",
    });
    // The family fields of the moved Services are now the operator's: their other owners are no longer listed.
    const moved = await eventually(async () => {
      const p = await getPlan(env.client, PLAN);
      const left = (p.status?.preflight?.findings ?? []).filter((f) => f.kind === "FamilyFieldManager");
      return left.length === 0 ? p : undefined;
    }, "the family field managers of the moved Services to be gone");
    assert.ok(
      moved.status?.preflight?.findings.some((f) => f.kind === "ManagedByHelm"),
      "Helm still renders it",
    );
  });

  it("with allowControllerOwned the controller-owned Service moves, and without the IPv4 values the others do", async () => {
    await env.client.patch(
      MIGRATION_PLANS,
      undefined,
      PLAN,
      { spec: { ipv6Only: { allowControllerOwned: true } } },
      "merge",
    );
    await eventually(
      async () => ((await familiesOf(env.client, "owned-db")) === "IPv6" ? true : undefined),
      "owned-db to move",
    );
    // The finding stays, as a Warning now that the plan allows the cutover.
    await eventually(async () => {
      const p = await getPlan(env.client, PLAN);
      const owned = p.status?.preflight?.findings.find((f) => f.kind === "ManagedByController");
      return p.status?.observedGeneration === p.metadata.generation && owned?.severity === "Warning" ? true : undefined;
    }, "the controller finding to be a Warning");
    await env.client.patch(SERVICES, NS, "ext-ip", { spec: { externalIPs: null } }, "merge");
    await env.client.patch(
      SERVICES,
      NS,
      "lb",
      { spec: { loadBalancerSourceRanges: null, loadBalancerIP: null } },
      "merge",
    );
    const plan: MigrationPlan = await eventually(async () => {
      const p = await getPlan(env.client, PLAN);
      return findCondition(p.status?.conditions, "IPv6OnlyComplete")?.status === "True" ? p : undefined;
    }, "every Service to move");
    for (const name of ["owned-db", "ext-ip", "lb"]) assert.equal(await familiesOf(env.client, name), "IPv6", name);
    assert.deepEqual(
      (plan.status?.preflight?.findings ?? []).filter((f) => f.kind === "IPv4SpecValue"),
      [],
    );
  });
});
