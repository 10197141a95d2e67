// New Services born at the plan's phase (spec.newServices: Default) on a real control plane, with the operator
// running as the ServiceAccount of config/rbac plus the overlay config/guardrails: `kubectl create service` gives
// a dual-stack Service once the plan is at DualStack (and an IPv6 one at IPv6Only) without any write of the
// operator to it, an explicit family choice is kept and warned about by name, and the policies follow the plan's
// phase and go with a rollback to Audit, with the plan's deletion, and where the API server does not serve them.
import assert from "node:assert/strict";
import path from "node:path";
import { MIGRATION_PLANS, type MigrationPlan } from "../../src/api/migrationplan.js";
import type { Service } from "../../src/migration/families.js";
import { guardrailName } from "../../src/migration/guardrails.js";
import { findCondition } from "../../src/runtime/object.js";
import { changedState, repoRoot, type ControlPlane } from "../../src/testenv/controlplane.js";
import { canI, createNamespace, eventually, useControlPlane, waitForCanI } from "../helpers.js";
import { OperatorProcess, createPlan, getPlan, installCRD, waitForCondition } from "../operator.js";
import {
  KubeconfigOperatorProcess,
  requestToken,
  serviceAccountUser,
  writeServiceAccountKubeconfig,
  type ServiceAccountRef,
} from "../serviceaccount.js";
import type { KubeClient } from "../../src/runtime/client.js";

const CONFIG = path.join(repoRoot, "config");
const SYSTEM_NS = "ipv6-migration-system";
const SA: ServiceAccountRef = { namespace: SYSTEM_NS, name: "ipv6-migration-operator-controller-manager" };
const NS = "guarded";
const OUTSIDE = "unguarded";
const PLAN = "guard";
const POLICY = guardrailName(PLAN);
const ADMISSION_RESOURCES = [
  "mutatingadmissionpolicies",
  "mutatingadmissionpolicybindings",
  "validatingadmissionpolicies",
  "validatingadmissionpolicybindings",
];

interface Created {
  svc: Service;
  stderr: string;
}

async function kubectlOK(cp: ControlPlane, args: string[], input?: string) {
  const result = await cp.kubectl(args, { input });
  assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
  return result;
}

/** `kubectl create service clusterip NAME --tcp=80`, as a person would type it; the Service as created. */
async function createServiceCommand(
  cp: ControlPlane,
  namespace: string,
  name: string,
  dryRun = false,
): Promise<Created> {
  const result = await kubectlOK(cp, [
    "create",
    "service",
    "clusterip",
    name,
    "--tcp=80",
    "-n",
    namespace,
    "-o",
    "json",
    ...(dryRun ? ["--dry-run=server"] : []),
  ]);
  return { svc: JSON.parse(result.stdout) as Service, stderr: result.stderr };
}

const familiesOf = (svc: Service) => `${svc.spec.ipFamilyPolicy ?? ""} [${(svc.spec.ipFamilies ?? []).join(",")}]`;

/**
 * The API server loads admission policies from its own watch, so a new or changed one takes effect a moment
 * after it is written: server-side dry runs (which run admission and persist nothing) show when it has.
 */
function admissionGives(cp: ControlPlane, namespace: string, want: string): Promise<true> {
  return eventually(
    async () =>
      familiesOf((await createServiceCommand(cp, namespace, "probe", true)).svc) === want ? true : undefined,
    `new Services in ${namespace} to be created ${want}`,
  );
}

/** The admission objects named after the plan that exist now, as kind/name. */
async function policiesOf(cp: ControlPlane): Promise<string[]> {
  const out = await kubectlOK(cp, ["get", ADMISSION_RESOURCES.join(","), "-o", "name"]);
  return out.stdout
    .split("\n")
    .filter((line) => line.endsWith(`/${POLICY}`))
    .sort();
}

function setPlan(client: KubeClient, spec: Record<string, unknown>) {
  return client.patch(MIGRATION_PLANS, undefined, PLAN, { spec }, "merge");
}

/** The NewServicesDefaulted condition once it is for the plan's current generation with `reason`. */
function waitForNewServices(client: KubeClient, name: string, reason: string): Promise<MigrationPlan> {
  return eventually(async () => {
    const plan = await getPlan(client, name);
    const c = findCondition(plan.status?.conditions, "NewServicesDefaulted");
    return c?.reason === reason && c.observedGeneration === plan.metadata.generation ? plan : undefined;
  }, `plan ${name} NewServicesDefaulted ${reason}`);
}

describe("new Services born at the plan's phase (spec.newServices), as the ServiceAccount with config/guardrails", function () {
  const env = useControlPlane({ families: "dual" });
  let operator: KubeconfigOperatorProcess | undefined;
  const user = serviceAccountUser(SA);

  before(async function () {
    this.timeout(180_000);
    await kubectlOK(env.cp, ["apply", "-k", path.join(CONFIG, "default")]);
    await kubectlOK(env.cp, ["wait", "--for=condition=Established", "crd/migrationplans.ipv6migration.io"]);
    // What config/rbac grants alone: no verb on admission policies.
    for (const resource of ADMISSION_RESOURCES) {
      for (const verb of ["create", "patch", "delete"]) {
        assert.equal(await canI(env.cp, user, verb, resource), "no", `config/rbac grants ${verb} ${resource}`);
      }
    }
    await kubectlOK(env.cp, ["apply", "-k", path.join(CONFIG, "guardrails")]);
    await waitForCanI(env.cp, user, "yes", "create", "mutatingadmissionpolicies");
    await createNamespace(env.client, NS);
    await createNamespace(env.client, OUTSIDE);
    const kubeconfig = writeServiceAccountKubeconfig(env.cp, SA, await requestToken(env.client, SA));
    operator = new KubeconfigOperatorProcess(kubeconfig).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("without a plan, kubectl create service gives an IPv4 SingleStack Service", async () => {
    const { svc } = await createServiceCommand(env.cp, NS, "before");
    assert.equal(familiesOf(svc), "SingleStack [IPv4]");
  });

  it("a DualStack plan with newServices: Default keeps the policies and their bindings, owned by the plan", async () => {
    await createPlan(env.client, PLAN, {
      targetPhase: "DualStack",
      newServices: "Default",
      selector: { namespaces: [NS] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    await waitForCondition(env.client, PLAN, "DualStackComplete");
    const plan = await waitForNewServices(env.client, PLAN, "PoliciesApplied");
    assert.equal(findCondition(plan.status?.conditions, "NewServicesDefaulted")?.status, "True");
    assert.deepEqual(await policiesOf(env.cp), [
      `mutatingadmissionpolicy.admissionregistration.k8s.io/${POLICY}`,
      `mutatingadmissionpolicybinding.admissionregistration.k8s.io/${POLICY}`,
      `validatingadmissionpolicy.admissionregistration.k8s.io/${POLICY}`,
      `validatingadmissionpolicybinding.admissionregistration.k8s.io/${POLICY}`,
    ]);
    for (const resource of ADMISSION_RESOURCES) {
      const out = await kubectlOK(env.cp, ["get", resource, POLICY, "-o", "json"]);
      const owners = (JSON.parse(out.stdout) as Service).metadata.ownerReferences ?? [];
      assert.deepEqual(
        owners.map((o) => [o.kind, o.name, o.uid, o.controller]),
        [["MigrationPlan", PLAN, plan.metadata.uid, true]],
        resource,
      );
    }
  });

  it("kubectl create service then gives a dual-stack Service, and the operator writes nothing for it", async () => {
    await admissionGives(env.cp, NS, "PreferDualStack [IPv4,IPv6]");
    const selected = (await getPlan(env.client, PLAN)).status?.summary?.selected ?? 0;
    const { svc } = await createServiceCommand(env.cp, NS, "after");
    assert.equal(familiesOf(svc), "PreferDualStack [IPv4,IPv6]");
    assert.equal(svc.spec.clusterIPs?.length, 2);
    // The plan's status counts it at target: the operator has seen it and decided it needs nothing.
    await eventually(async () => {
      const summary = (await getPlan(env.client, PLAN)).status?.summary;
      return summary?.selected === selected + 1 && summary.atTarget === summary.selected ? true : undefined;
    }, "the plan to count the new Service at target");
    const writes = env.cp
      .auditEvents(user)
      .filter((e) => changedState(e, "services") && e.objectRef?.name === "after")
      .map((e) => `${e.verb} ${e.requestURI}`);
    assert.deepEqual(writes, [], "the operator's writes to the new Service");
  });

  it("an explicit ipFamilies [IPv4] with SingleStack is kept, and kubectl shows the warning naming the plan", async () => {
    const manifest = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "explicit", namespace: NS },
      spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], selector: { app: "x" }, ports: [{ port: 80 }] },
    };
    const result = await kubectlOK(env.cp, ["apply", "-f", "-", "-o", "json"], JSON.stringify(manifest));
    assert.equal(familiesOf(JSON.parse(result.stdout) as Service), "SingleStack [IPv4]");
    assert.match(
      result.stderr,
      new RegExp(
        `Warning: Validation failed for ValidatingAdmissionPolicy '${POLICY}' with binding '${POLICY}': ` +
          `MigrationPlan ${PLAN} \\(targetPhase DualStack, newServices Default\\): this Service sets ipFamilyPolicy ` +
          `SingleStack itself, so it is created single-stack as written, with ipFamilies \\[IPv4\\]`,
      ),
    );
  });

  it("a Service outside the plan's selection is created as it is, without a warning", async () => {
    const { svc, stderr } = await createServiceCommand(env.cp, OUTSIDE, "elsewhere");
    assert.equal(familiesOf(svc), "SingleStack [IPv4]");
    assert.doesNotMatch(stderr, /Warning/);
  });

  it("at IPv6Only the policies follow: new Services are created IPv6 SingleStack", async () => {
    await setPlan(env.client, { targetPhase: "IPv6Only" });
    const plan = await waitForNewServices(env.client, PLAN, "PoliciesApplied");
    assert.match(findCondition(plan.status?.conditions, "NewServicesDefaulted")?.message ?? "", /IPv6 SingleStack/);
    await admissionGives(env.cp, NS, "SingleStack [IPv6]");
    const { svc } = await createServiceCommand(env.cp, NS, "born-v6");
    assert.equal(familiesOf(svc), "SingleStack [IPv6]");
  });

  it("a rollback to Audit removes the policies, and new Services are born IPv4 again", async () => {
    await setPlan(env.client, { targetPhase: "Audit" });
    await waitForNewServices(env.client, PLAN, "NotTargeted");
    assert.deepEqual(await policiesOf(env.cp), []);
    await admissionGives(env.cp, NS, "SingleStack [IPv4]");
  });

  it("deleting the plan removes its policies (no garbage collector runs here: the operator does)", async () => {
    await setPlan(env.client, { targetPhase: "DualStack" });
    await waitForNewServices(env.client, PLAN, "PoliciesApplied");
    assert.equal((await policiesOf(env.cp)).length, 4);
    await kubectlOK(env.cp, ["delete", "mplan", PLAN, "--wait", "--timeout=60s"]);
    assert.deepEqual(await policiesOf(env.cp), []);
  });

  it("config/guardrails allowed every request, and without its create the plan says Forbidden and carries on", async () => {
    const admission = env.cp.auditEvents(user).filter((e) => ADMISSION_RESOURCES.includes(e.objectRef?.resource ?? ""));
    assert.deepEqual(
      admission.filter((e) => e.responseStatus?.code === 403).map((e) => `${e.verb} ${e.requestURI}`),
      [],
    );
    const used = new Set(admission.map((e) => `${e.objectRef?.resource ?? ""} ${e.verb}`));
    for (const resource of ADMISSION_RESOURCES) {
      for (const verb of ["patch", "delete"]) assert.ok(used.has(`${resource} ${verb}`), `${resource} ${verb}`);
    }
    // Server-side apply of an object that does not exist is authorized as a create, which the audit log records
    // as the patch it is: the role without create shows it is needed.
    const role = JSON.parse(
      (await kubectlOK(env.cp, ["get", "clusterrole", "ipv6-migration-operator-guardrails-role", "-o", "json"])).stdout,
    ) as { rules: { verbs: string[] }[] };
    const withoutCreate = {
      ...role,
      rules: role.rules.map((r) => ({ ...r, verbs: r.verbs.filter((v) => v !== "create") })),
    };
    await kubectlOK(env.cp, ["apply", "-f", "-"], JSON.stringify(withoutCreate));
    await waitForCanI(env.cp, user, "no", "create", "mutatingadmissionpolicies");
    await createPlan(env.client, "refused", {
      targetPhase: "DualStack",
      newServices: "Default",
      selector: { namespaces: [OUTSIDE] },
      rollout: { pauseBetweenBatches: "0s" },
    });
    const plan = await waitForCondition(env.client, "refused", "DualStackComplete");
    const refused = await waitForNewServices(env.client, "refused", "Forbidden");
    assert.equal(findCondition(plan.status?.conditions, "Stalled")?.status, "False");
    assert.match(
      findCondition(refused.status?.conditions, "NewServicesDefaulted")?.message ?? "",
      /^PATCH \/apis\/admissionregistration.k8s.io\/v1\/mutatingadmissionpolicies\/ipv6migration-refused-new-services was forbidden: .*cannot create resource "mutatingadmissionpolicies".*; writing admission policies needs the RBAC of config\/guardrails/,
    );
    // A refused write is not tried again at every reconcile: one more, made by a new Service, tries nothing.
    const selected = refused.status?.summary?.selected ?? 0;
    await createServiceCommand(env.cp, OUTSIDE, "later");
    await eventually(
      async () =>
        (await getPlan(env.client, "refused")).status?.summary?.selected === selected + 1 ? true : undefined,
      "the plan to count the new Service",
    );
    const refusals = env.cp
      .auditEvents(user)
      .filter((e) => e.responseStatus?.code === 403 && e.requestURI.includes("ipv6migration-refused-new-services"));
    assert.equal(refusals.length, 1, refusals.map((e) => `${e.verb} ${e.requestURI}`).join("\n"));
    await kubectlOK(env.cp, ["apply", "-k", path.join(CONFIG, "guardrails")]);
    await waitForCanI(env.cp, user, "yes", "create", "mutatingadmissionpolicies");
    // A change to the plan is what makes it try again (a resync does too, at the preflight interval).
    await env.client.patch(MIGRATION_PLANS, undefined, "refused", { spec: { rollout: { batchSize: 5 } } }, "merge");
    await waitForNewServices(env.client, "refused", "PoliciesApplied");
  });
});

describe("new Services where the API server does not serve MutatingAdmissionPolicy", function () {
  const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };
  const env = useControlPlane({
    families: "dual",
    users: [OPERATOR_USER],
    // Turned off as a cluster before Kubernetes 1.36 has it: the API and its admission plugin.
    apiServerArgs: [
      "--runtime-config=admissionregistration.k8s.io/v1/mutatingadmissionpolicies=false,admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings=false",
      "--disable-admission-plugins=ServiceAccount,MutatingAdmissionPolicy",
    ],
  });
  let operator: OperatorProcess | undefined;

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("the plan says so in NewServicesDefaulted and carries on; new Services are created as they are", async () => {
    const discovery = await env.cp.kubectl(["api-resources", "--api-group=admissionregistration.k8s.io"]);
    assert.doesNotMatch(discovery.stdout, /MutatingAdmissionPolicy\b/);
    await kubectlOK(env.cp, ["create", "service", "clusterip", "old", "--tcp=80", "-n", NS]);
    await createPlan(env.client, PLAN, {
      targetPhase: "DualStack",
      newServices: "Default",
      selector: { namespaces: [NS] },
      rollout: { pauseBetweenBatches: "0s" },
    });
    await waitForCondition(env.client, PLAN, "DualStackComplete");
    const plan = await waitForNewServices(env.client, PLAN, "MutatingAdmissionPolicyNotServed");
    const condition = findCondition(plan.status?.conditions, "NewServicesDefaulted");
    assert.equal(condition?.status, "False");
    assert.match(condition?.message ?? "", /does not serve admissionregistration.k8s.io\/v1 MutatingAdmissionPolicy/);
    const { svc } = await createServiceCommand(env.cp, NS, "new");
    assert.equal(familiesOf(svc), "SingleStack [IPv4]");
    const writes = env.cp
      .auditEvents(OPERATOR_USER.name)
      .filter((e) => ADMISSION_RESOURCES.includes(e.objectRef?.resource ?? ""));
    assert.deepEqual(
      writes.map((e) => e.requestURI),
      [],
      "no admission request where the API is not served",
    );
  });
});
