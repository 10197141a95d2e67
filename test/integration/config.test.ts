// config/ on a real control plane: the kustomizations build and apply, and the operator, running as the
// ServiceAccount of config/rbac with a TokenRequest token, migrates Services with exactly the verbs that
// config/rbac grants: the API server's audit log shows every request allowed, and every granted verb used.
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { MIGRATION_PLANS, type TargetPhase } from "../../src/api/migrationplan.js";
import { restorableSpec } from "../../src/migration/cutover.js";
import { type Service } from "../../src/migration/families.js";
import { probeIPv6ServiceRange } from "../../src/reconciler/precondition.js";
import { KubeClient, SERVICES } from "../../src/runtime/client.js";
import { freePort, repoRoot, type AuditEvent } from "../../src/testenv/controlplane.js";
import {
  createIPv6Slice,
  createNamespace,
  createService,
  eventually,
  expectApiError,
  useControlPlane,
  canI,
  waitForCanI,
} from "../helpers.js";
import { createPlan, getPlan, waitForCondition } from "../operator.js";
import {
  KubeconfigOperatorProcess,
  requestToken,
  serviceAccountKubeConfig,
  serviceAccountUser,
  writeServiceAccountKubeconfig,
  type ServiceAccountRef,
} from "../serviceaccount.js";

const CONFIG = path.join(repoRoot, "config");
const SYSTEM_NS = "ipv6-migration-system";
const SA: ServiceAccountRef = { namespace: SYSTEM_NS, name: "ipv6-migration-operator-controller-manager" };
const MANAGER_ROLE = "ipv6-migration-operator-manager-role";
const LEADER_ELECTION_ROLE = "ipv6-migration-operator-leader-election-role";
const PACER_ROLE = "ipv6-migration-operator-pacer-role";
const NS = "cfg-shop";
const METRICS_READER_ROLE = "ipv6-migration-operator-metrics-reader";
/** A scraper of /metrics, bound to config/rbac's metrics-reader ClusterRole. */
const SCRAPER: ServiceAccountRef = { namespace: SYSTEM_NS, name: "cfg-prometheus" };

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

interface RbacObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** Every object of the YAML files of a config directory (its kustomization.yaml aside). */
function loadConfigDir(dir: string): RbacObject[] {
  const full = path.join(CONFIG, dir);
  return readdirSync(full)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .sort()
    .flatMap((f) => loadAllYaml(readFileSync(path.join(full, f), "utf8")) as unknown[] as RbacObject[]);
}

function find(objects: RbacObject[], kind: string, name: string): RbacObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `config/rbac has no ${kind} ${name}`);
  return found;
}

/** A request as RBAC sees it: group, resource[/subresource] and verb. */
type Access = { group: string; resource: string; verb: string };
const accessKey = (a: Access) => `${a.group || "core"} ${a.resource} ${a.verb}`;

function ruleAllows(rule: PolicyRule, a: Access): boolean {
  const has = (list: string[] | undefined, value: string) => !!list && (list.includes(value) || list.includes("*"));
  return has(rule.apiGroups, a.group) && has(rule.resources, a.resource) && has(rule.verbs, a.verb);
}

/** Each (group, resource, verb) a role grants, one by one. */
function grants(role: RbacObject): Access[] {
  return (role.rules ?? []).flatMap((r) =>
    (r.apiGroups ?? []).flatMap((group) =>
      (r.resources ?? []).flatMap((resource) => r.verbs.map((verb) => ({ group, resource, verb }))),
    ),
  );
}

function accessOf(event: AuditEvent): Access | undefined {
  const ref = event.objectRef;
  if (!ref?.resource) return undefined;
  return {
    group: ref.apiGroup ?? "",
    resource: ref.subresource ? `${ref.resource}/${ref.subresource}` : ref.resource,
    verb: event.verb,
  };
}

/** Whether a non-resource URL (discovery) is granted by a rule such as `/apis/*`. */
function urlAllowed(rules: PolicyRule[], url: string): boolean {
  const route = url.split("?")[0] ?? "";
  return rules.some((r) =>
    (r.nonResourceURLs ?? []).some((p) => (p.endsWith("*") ? route.startsWith(p.slice(0, -1)) : route === p)),
  );
}

/** The estate: a ClusterIP, a NodePort and a headless Service, each with ready IPv6 endpoints. */
function estate() {
  const ports = (extra = {}) => [{ name: "http", port: 80, targetPort: 8080, ...extra }];
  return [
    { metadata: { name: "web", labels: { app: "web" } }, spec: { selector: { app: "web" }, ports: ports() } },
    {
      metadata: { name: "nodeport" },
      spec: { type: "NodePort", selector: { app: "np" }, ports: ports({ nodePort: 30091 }) },
    },
    { metadata: { name: "headless" }, spec: { clusterIP: "None", selector: { app: "db" }, ports: ports() } },
  ];
}

async function servicesIn(client: KubeClient, namespace: string): Promise<Map<string, Service>> {
  const list = await client.list<Service>(SERVICES, namespace);
  return new Map(list.items.map((s) => [s.metadata.name, s]));
}

function setTarget(client: KubeClient, name: string, target: TargetPhase) {
  return client.patch(MIGRATION_PLANS, undefined, name, { spec: { targetPhase: target } }, "merge");
}

describe("config/: kustomize manifests and least-privilege RBAC", function () {
  const env = useControlPlane({ families: "dual" });
  let kubeconfig = "";
  let operator: KubeconfigOperatorProcess | undefined;
  /** The operator's requests during the migration, from the audit log. */
  let migrationRequests: AuditEvent[] = [];
  const original = new Map<string, Service>();

  const kubectl = async (args: string[], input?: string) => {
    const result = await env.cp.kubectl(args, { input });
    assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
    return result;
  };

  let metricsAddress = "";
  const startOperator = (flags: string[] = []) => {
    operator = new KubeconfigOperatorProcess(kubeconfig, [
      "--leader-elect",
      `--leader-election-namespace=${SYSTEM_NS}`,
      ...flags,
    ]).start();
    return operator;
  };

  /** GET /metrics over HTTPS (the operator's certificate is self-signed) with a bearer token. */
  const scrape = (token: string) =>
    new Promise<number>((resolve, reject) => {
      https
        .get(
          `https://${metricsAddress}/metrics`,
          { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .once("error", reject);
    });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("every kustomization builds, and config/default passes a server-side dry run", async () => {
    for (const dir of [
      "crd",
      "rbac",
      "manager",
      "default",
      "samples",
      "prometheus",
      "grafana",
      "service-probe",
      "guardrails",
    ]) {
      await kubectl(["kustomize", path.join(CONFIG, dir)]);
    }
    // A dry run creates nothing, so the objects that go into the namespace can only be checked once it exists.
    await kubectl(["apply", "-f", path.join(CONFIG, "manager/namespace.yaml")]);
    const dry = await kubectl(["apply", "-k", path.join(CONFIG, "default"), "--dry-run=server"]);
    assert.match(dry.stdout, /deployment.apps\/ipv6-migration-operator-controller-manager created \(server dry run\)/);
    assert.match(dry.stdout, /customresourcedefinition.apiextensions.k8s.io\/migrationplans.ipv6migration.io/);
    // The namespace warns on the restricted Pod Security profile, which the Deployment's pod template meets.
    assert.doesNotMatch(dry.stderr, /PodSecurity/);
    const crds = await env.cp.kubectl(["get", "crd", "migrationplans.ipv6migration.io"]);
    assert.notEqual(crds.code, 0, "the dry run created nothing");
  });

  it("config/default applies, and the samples are valid MigrationPlans", async () => {
    const applied = await kubectl(["apply", "-k", path.join(CONFIG, "default")]);
    assert.doesNotMatch(applied.stderr, /PodSecurity/);
    await kubectl(["wait", "--for=condition=Established", "crd/migrationplans.ipv6migration.io", "--timeout=60s"]);
    const samples = await kubectl(["apply", "-k", path.join(CONFIG, "samples"), "--dry-run=server"]);
    assert.equal(samples.stdout.match(/created \(server dry run\)/g)?.length, 3, samples.stdout);

    const deployment = JSON.parse(
      (await kubectl(["get", "deployment", "-n", SYSTEM_NS, SA.name, "-o", "json"])).stdout,
    ) as {
      spec: {
        replicas: number;
        template: {
          spec: {
            serviceAccountName: string;
            containers: { image: string; args: string[] }[];
          };
        };
      };
    };
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(deployment.spec.template.spec.serviceAccountName, SA.name);
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container?.image, "ipv6-migration-operator:dev");
    assert.deepEqual(container?.args, [
      "operator",
      "--leader-elect",
      "--metrics-bind-address=:8443",
      "--health-probe-bind-address=:8081",
    ]);
  });

  it("an overlay's images entry retags the Deployment", async () => {
    const overlay = path.join(env.cp.dir, "overlay");
    mkdirSync(overlay, { recursive: true });
    writeFileSync(
      path.join(overlay, "kustomization.yaml"),
      [
        "resources:",
        // kustomize takes bases by relative path only.
        `  - ${path.relative(overlay, path.join(CONFIG, "default"))}`,
        "images:",
        "  - name: ipv6-migration-operator",
        "    newName: registry.example/ipv6-migration-operator",
        "    newTag: v0.1.0",
        "",
      ].join("\n"),
    );
    const built = await kubectl(["kustomize", overlay]);
    assert.deepEqual(built.stdout.match(/image: .*/g), ["image: registry.example/ipv6-migration-operator:v0.1.0"]);
  });

  it("the viewer and editor roles aggregate into view and edit, and leave the status to the operator", async () => {
    const rbac = loadConfigDir("rbac");
    const viewer = find(rbac, "ClusterRole", "ipv6-migration-operator-migrationplan-viewer-role");
    const editor = find(rbac, "ClusterRole", "ipv6-migration-operator-migrationplan-editor-role");
    assert.equal(viewer.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    assert.equal(editor.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    // No controller-manager aggregates them here: bind them directly, as the aggregated roles would be.
    for (const [user, role] of [
      ["alice", viewer],
      ["bob", editor],
    ] as const) {
      await kubectl([
        "create",
        "clusterrolebinding",
        `${user}-plans`,
        `--clusterrole=${role.metadata.name}`,
        `--user=${user}`,
      ]);
    }
    const can = (user: string, ...args: string[]) => canI(env.cp, user, ...args);
    await waitForCanI(env.cp, "bob", "yes", "create", "migrationplans");
    assert.equal(await can("alice", "list", "migrationplans"), "yes");
    assert.equal(await can("alice", "create", "migrationplans"), "no");
    assert.equal(await can("bob", "delete", "migrationplans"), "yes");
    assert.equal(await can("bob", "patch", "migrationplans", "--subresource=status"), "no");
    assert.equal(await can("bob", "patch", "services", "-n", "default"), "no");
    for (const user of ["alice", "bob"]) await kubectl(["delete", "clusterrolebinding", `${user}-plans`]);
  });

  it("the operator, as the ServiceAccount, migrates Audit -> DualStack (-> Audit -> DualStack) -> IPv6Only -> Audit", async () => {
    const token = await requestToken(env.client, SA);
    kubeconfig = writeServiceAccountKubeconfig(env.cp, SA, token);
    await createNamespace(env.client, NS);
    const addresses = ["fd00:7::1", "fd00:7::2", "fd00:7::3"];
    for (const [i, svc] of estate().entries()) {
      original.set(svc.metadata.name, (await createService(env.client, NS, svc)) as Service);
      await createIPv6Slice(env.client, NS, svc.metadata.name, addresses[i] ?? "fd00:7::9");
    }
    // HTTPS /metrics, as config/manager serves it: the operator reviews the scraper's token with its own RBAC.
    metricsAddress = `127.0.0.1:${await freePort()}`;
    startOperator([`--metrics-bind-address=${metricsAddress}`]);
    await kubectl(["create", "serviceaccount", "-n", SCRAPER.namespace, SCRAPER.name]);
    await kubectl([
      "create",
      "clusterrolebinding",
      "cfg-prometheus-metrics",
      `--clusterrole=${METRICS_READER_ROLE}`,
      `--serviceaccount=${SCRAPER.namespace}:${SCRAPER.name}`,
    ]);
    const scraperToken = await requestToken(env.client, SCRAPER);
    await eventually(async () => {
      try {
        return (await scrape(scraperToken)) === 200 ? true : undefined;
      } catch {
        return undefined; // not listening yet
      }
    }, "the metrics-reader's scrape to be served");
    await createPlan(env.client, "config", {
      selector: { namespaces: [NS] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    const audited = await waitForCondition(env.client, "config", "Ready");
    assert.equal(audited.status?.summary?.selected, 3);

    // A rollback and a second try: the headless Service's second move to dual-stack is an event identical to
    // its first, which the recorder aggregates with a PATCH of the first (its one use of patch on events).
    for (const target of ["DualStack", "Audit", "DualStack"] as const) {
      await setTarget(env.client, "config", target);
      await waitForCondition(env.client, "config", target === "Audit" ? "Ready" : "DualStackComplete");
      const families = target === "Audit" ? ["IPv4"] : ["IPv4", "IPv6"];
      for (const [name, svc] of await servicesIn(env.client, NS)) assert.deepEqual(svc.spec.ipFamilies, families, name);
    }

    await setTarget(env.client, "config", "IPv6Only");
    await waitForCondition(env.client, "config", "IPv6OnlyComplete");
    const v6 = await servicesIn(env.client, NS);
    for (const [name, svc] of v6) {
      assert.deepEqual(svc.spec.ipFamilies, ["IPv6"], name);
      assert.equal(svc.metadata.uid, original.get(name)?.metadata.uid, name);
    }
    assert.equal(v6.get("nodeport")?.spec.ports?.[0]?.nodePort, 30091);

    await setTarget(env.client, "config", "Audit");
    await waitForCondition(env.client, "config", "Ready");
    for (const [name, svc] of await servicesIn(env.client, NS)) {
      assert.deepEqual(restorableSpec(svc.spec), restorableSpec(original.get(name)!.spec), name);
    }

    await eventually(
      async () => {
        const out = await kubectl([
          "get",
          "events",
          "-n",
          NS,
          "--field-selector",
          "involvedObject.name=headless,reason=Migrated",
          "-o",
          "json",
        ]);
        const events = (JSON.parse(out.stdout) as { items: { count?: number }[] }).items;
        return events.some((e) => (e.count ?? 0) >= 2) ? true : undefined;
      },
      "the repeated event to be counted",
      30_000,
    );
    const lease = await kubectl(["get", "lease", "-n", SYSTEM_NS, "ipv6-migration-operator.ipv6migration.io"]);
    assert.match(lease.stdout, /ipv6-migration-operator\.ipv6migration\.io/);
    // A graceful stop ends the watches, which the audit log records only when they end.
    assert.equal(await operator?.stop("SIGTERM"), 0, operator?.output);
    migrationRequests = await eventually(() => {
      const events = env.cp.auditEvents(serviceAccountUser(SA));
      const listed = new Set(events.filter((e) => e.verb === "list").map((e) => e.objectRef?.resource));
      const watched = new Set(events.filter((e) => e.verb === "watch").map((e) => e.objectRef?.resource));
      return [...listed].every((r) => watched.has(r)) ? events : undefined;
    }, "the ended watches in the audit log");
  });

  it("config/rbac allows every request the operator made, and grants nothing it did not use", async () => {
    const rbac = loadConfigDir("rbac");
    const manager = find(rbac, "ClusterRole", MANAGER_ROLE);
    const leaderElection = find(rbac, "Role", LEADER_ELECTION_ROLE);
    const pacer = find(rbac, "Role", PACER_ROLE);
    // The roles are the ServiceAccount's through these bindings, and nothing is granted by wildcard.
    const boundTo = (kind: string, roleKind: string, roleName: string) =>
      rbac.some(
        (b) =>
          b.kind === kind &&
          b.roleRef?.kind === roleKind &&
          b.roleRef.name === roleName &&
          (kind === "ClusterRoleBinding" || b.metadata.namespace === SYSTEM_NS) &&
          (b.subjects ?? []).some(
            (s) => s.kind === "ServiceAccount" && s.name === SA.name && s.namespace === SA.namespace,
          ),
      );
    assert.ok(boundTo("ClusterRoleBinding", "ClusterRole", MANAGER_ROLE));
    assert.ok(boundTo("RoleBinding", "Role", LEADER_ELECTION_ROLE));
    assert.ok(boundTo("RoleBinding", "Role", PACER_ROLE));
    assert.equal(leaderElection.metadata.namespace, SYSTEM_NS);
    assert.equal(pacer.metadata.namespace, SYSTEM_NS);
    for (const role of [manager, leaderElection, pacer]) {
      assert.ok(!JSON.stringify(role.rules).includes('"*"'), `${role.metadata.name} has a wildcard`);
    }

    // Discovery (is ServiceCIDR served?) is granted to every authenticated user by the built-in roles.
    const builtIn = await Promise.all(
      ["system:discovery", "system:public-info-viewer"].map(async (name) => {
        const out = await kubectl(["get", "clusterrole", name, "-o", "json"]);
        return (JSON.parse(out.stdout) as RbacObject).rules ?? [];
      }),
    );

    assert.ok(migrationRequests.length > 0);
    const refused = migrationRequests.filter((e) => e.responseStatus?.code === 403);
    assert.deepEqual(
      refused.map((e) => `${e.verb} ${e.requestURI}`),
      [],
      "no request was refused",
    );
    const used = { manager: new Set<string>(), leaderElection: new Set<string>(), pacer: new Set<string>() };
    const denied: string[] = [];
    for (const event of migrationRequests) {
      const access = accessOf(event);
      if (!access) {
        if (!urlAllowed(builtIn.flat(), event.requestURI)) denied.push(`${event.verb} ${event.requestURI}`);
        continue;
      }
      if ((manager.rules ?? []).some((r) => ruleAllows(r, access))) used.manager.add(accessKey(access));
      else if (
        event.objectRef?.namespace === SYSTEM_NS &&
        (leaderElection.rules ?? []).some((r) => ruleAllows(r, access))
      ) {
        used.leaderElection.add(accessKey(access));
      } else if (event.objectRef?.namespace === SYSTEM_NS && (pacer.rules ?? []).some((r) => ruleAllows(r, access))) {
        used.pacer.add(accessKey(access));
      } else denied.push(`${accessKey(access)} (${event.requestURI})`);
    }
    assert.deepEqual(denied, [], "requests config/rbac does not allow");
    // Dry-run writes are audited, and authorized, with their real verb: they need no verb of their own.
    assert.ok(migrationRequests.some((e) => e.verb === "patch" && e.requestURI.includes("dryRun=All")));
    assert.deepEqual(
      grants(manager).map(accessKey).sort(),
      [...used.manager].sort(),
      `${MANAGER_ROLE} grants exactly what the operator used`,
    );
    assert.deepEqual(
      grants(leaderElection).map(accessKey).sort(),
      [...used.leaderElection].sort(),
      `${LEADER_ELECTION_ROLE} grants exactly what leader election used`,
    );
    assert.deepEqual(
      grants(pacer).map(accessKey).sort(),
      [...used.pacer].sort(),
      `${PACER_ROLE} grants exactly what the kube-proxy pacer used`,
    );
  });

  it("the dry-run probe for clusters without ServiceCIDR needs config/service-probe, and it suffices", async () => {
    const token = await requestToken(env.client, SA);
    const client = new KubeClient(serviceAccountKubeConfig(env.cp, SA, token));
    const refused = await expectApiError(probeIPv6ServiceRange(client), 403);
    assert.match(refused.message, /cannot create resource "services"/);
    await kubectl(["apply", "-k", path.join(CONFIG, "service-probe")]);
    try {
      const capability = await eventually(async () => {
        try {
          return await probeIPv6ServiceRange(client);
        } catch {
          return undefined;
        }
      }, "the probe to be allowed");
      assert.equal(capability.status, true, capability.message);
    } finally {
      await kubectl(["delete", "-k", path.join(CONFIG, "service-probe")]);
    }
  });

  it("without patch on services, a plan is Stalled with a condition naming the Forbidden call", async () => {
    const role = find(loadConfigDir("rbac"), "ClusterRole", MANAGER_ROLE);
    const crippled = {
      ...role,
      rules: (role.rules ?? []).map((r) =>
        r.resources?.includes("services") ? { ...r, verbs: r.verbs.filter((v) => v !== "patch") } : r,
      ),
    };
    await kubectl(["apply", "-f", "-"], JSON.stringify(crippled));
    const ns = "cfg-forbidden";
    await waitForCanI(env.cp, serviceAccountUser(SA), "no", "patch", "services", "-n", ns);
    await createNamespace(env.client, ns);
    await createService(env.client, ns, {
      metadata: { name: "f1" },
      spec: { selector: { app: "f1" }, ports: [{ port: 80, targetPort: 80 }] },
    });
    startOperator();
    // No pause: the batch that was refused counts as a batch, and would hold back the retry below.
    await createPlan(env.client, "forbidden", {
      targetPhase: "DualStack",
      selector: { namespaces: [ns] },
      rollout: { pauseBetweenBatches: "0s" },
    });
    const stalled = await waitForCondition(env.client, "forbidden", "Stalled");
    const condition = stalled.status?.conditions?.find((c) => c.type === "Stalled");
    assert.equal(condition?.reason, "Forbidden");
    assert.match(
      condition?.message ?? "",
      new RegExp(
        `^PATCH /api/v1/namespaces/${ns}/services/f1 was forbidden: .*User "${serviceAccountUser(SA)}" cannot patch resource "services"`,
      ),
    );
    assert.deepEqual((await servicesIn(env.client, ns)).get("f1")?.spec.ipFamilies, ["IPv4"]);

    // With the role as config/rbac has it, a change to the plan retries at once and the Service moves.
    await kubectl(["apply", "-k", path.join(CONFIG, "default")]);
    await waitForCanI(env.cp, serviceAccountUser(SA), "yes", "patch", "services", "-n", ns);
    await env.client.patch(MIGRATION_PLANS, undefined, "forbidden", { spec: { rollout: { batchSize: 5 } } }, "merge");
    await waitForCondition(env.client, "forbidden", "DualStackComplete");
    const plan = await getPlan(env.client, "forbidden");
    assert.equal(plan.status?.conditions?.find((c) => c.type === "Stalled")?.status, "False");
  });
});
