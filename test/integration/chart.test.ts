// The Helm chart, rendered by the real helm (built from helm.sh/helm/v4 by testenv/build.sh --tools): it lints,
// renders what config/default renders (the same RBAC rule for rule, the same manager container, the CRD of
// crds/), passes a server-side dry run with its defaults and with its options, refuses bad values, and installs,
// upgrades and uninstalls as the README says.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../src/testenv/controlplane.js";
import { eventually, useControlPlane } from "../helpers.js";
import { createPlan } from "../operator.js";
import {
  findManifest,
  helmRunner,
  makeVariable,
  managerContainer,
  PACKAGE,
  parseManifests,
  parseYaml,
  succeeded,
  type CommandResult,
  type Container,
  type DeploymentManifest,
  type Manifest,
} from "../release.js";

const CHART = path.join(repoRoot, "charts/ipv6-migration-operator");
const RELEASE = "ipv6-migration-operator";
const SYSTEM_NS = "ipv6-migration-system";
const CRD = "migrationplans.ipv6migration.io";
const CRD_FILE = path.join(repoRoot, "crds/ipv6migration.io_migrationplans.yaml");
const RBAC_KINDS = new Set(["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"]);
const AGGREGATION_LABEL = /^rbac\.authorization\.k8s\.io\/aggregate-to-/;

interface RbacManifest extends Manifest {
  rules?: { apiGroups?: string[]; resources?: string[]; verbs: string[] }[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** What RBAC grants, by kind and name: rules, binding, namespace and aggregation labels (other labels aside). */
function rbacOf(manifests: Manifest[]): Map<string, unknown> {
  return new Map(
    (manifests.filter((m) => RBAC_KINDS.has(m.kind)) as RbacManifest[]).map((m) => [
      `${m.kind}/${m.metadata.name}`,
      {
        namespace: m.metadata.namespace,
        aggregation: Object.keys(m.metadata.labels ?? {})
          .filter((k) => AGGREGATION_LABEL.test(k))
          .sort()
          .map((k) => `${k}=${m.metadata.labels?.[k]}`),
        rules: m.rules,
        roleRef: m.roleRef,
        subjects: m.subjects,
      },
    ]),
  );
}

/** The manager container and pod as they run, the image aside (the chart's is the release's, config's is dev). */
function runtimeOf(manifests: Manifest[]): unknown {
  const deployment = findManifest(manifests, "Deployment") as DeploymentManifest;
  const container: Partial<Container> = { ...managerContainer(manifests) };
  delete container.image;
  delete container.imagePullPolicy;
  const pod = deployment.spec.template.spec;
  return {
    replicas: deployment.spec.replicas,
    container,
    serviceAccountName: pod.serviceAccountName,
    securityContext: pod.securityContext,
    terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
  };
}

/** The helm commands the README shows (Quick start, Upgrade, Uninstall), as written there, without `helm`. */
function readmeHelmCommands(): Record<"install" | "upgrade" | "uninstall", string[]> {
  const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const command = (verb: string) => {
    const line = new RegExp(`(?:^|\`)helm ${verb} ([^\`\n]+)`, "m").exec(readme)?.[1];
    assert.ok(line, `the README shows helm ${verb}`);
    return [verb, ...line.trim().split(/\s+/)];
  };
  return { install: command("install"), upgrade: command("upgrade"), uninstall: command("uninstall") };
}

describe("Helm chart charts/ipv6-migration-operator", function () {
  const env = useControlPlane({ families: "dual" });
  let helm: (args: string[], input?: string) => Promise<CommandResult>;

  before(async function () {
    this.timeout(900_000); // a cold cache builds helm first
    helm = await helmRunner(env.cp.dir);
  });

  const kubectl = async (args: string[], input?: string) =>
    succeeded(await env.cp.kubectl(args, { input }), `kubectl ${args.join(" ")}`);

  const template = async (release: string, namespace: string, ...values: string[]): Promise<Manifest[]> => {
    const args = ["template", release, CHART, "--namespace", namespace, ...values.flatMap((v) => ["--set", v])];
    return parseManifests(succeeded(await helm(args), `helm ${args.join(" ")}`).stdout);
  };

  const refusal = async (...values: string[]): Promise<string> => {
    const result = await helm(["template", RELEASE, CHART, ...values.flatMap((v) => ["--set", v])]);
    assert.notEqual(result.code, 0, `helm template accepted ${values.join(" ")}`);
    return result.stderr;
  };

  it("lints strictly, has the package's version, and defaults to the image make build-installer uses", async () => {
    succeeded(await helm(["lint", "--strict", CHART]), "helm lint --strict");
    const chart = parseYaml<{ version: string; appVersion: string }>(
      readFileSync(path.join(CHART, "Chart.yaml"), "utf8"),
    );
    assert.equal(chart.version, PACKAGE.version);
    assert.equal(chart.appVersion, PACKAGE.version);
    const rendered = await template(RELEASE, SYSTEM_NS);
    assert.equal(managerContainer(rendered).image, `${await makeVariable("IMAGE_REPO")}:${PACKAGE.version}`);
  });

  it("renders the RBAC of config/default, config/service-probe and config/guardrails rule for rule, and the same manager", async () => {
    const chart = await template(RELEASE, SYSTEM_NS, "rbac.serviceProbe=true", "rbac.guardrails=true");
    const kustomize = async (dir: string) =>
      parseManifests((await kubectl(["kustomize", path.join(repoRoot, "config", dir)])).stdout);
    const config = [
      ...(await kustomize("default")),
      ...(await kustomize("service-probe")),
      ...(await kustomize("guardrails")),
    ];
    const chartRbac = rbacOf(chart);
    assert.equal(chartRbac.size, 13, [...chartRbac.keys()].join(", "));
    assert.deepEqual(chartRbac, rbacOf(config));
    assert.deepEqual(runtimeOf(chart), runtimeOf(config));
    // The optional overlays are optional in the chart too.
    const withoutOverlays = rbacOf(await template(RELEASE, SYSTEM_NS));
    assert.deepEqual([...chartRbac.keys()].filter((k) => !withoutOverlays.has(k)).sort(), [
      "ClusterRole/ipv6-migration-operator-guardrails-role",
      "ClusterRoleBinding/ipv6-migration-operator-guardrails-rolebinding",
      "Role/ipv6-migration-operator-service-probe-role",
      "RoleBinding/ipv6-migration-operator-service-probe-rolebinding",
    ]);
  });

  it("installs the CRD of crds/ as it is, with the chart's labels and a keep policy", async () => {
    const crd = findManifest(await template(RELEASE, SYSTEM_NS), "CustomResourceDefinition", CRD);
    assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    assert.equal(crd.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
    const own = parseYaml<Manifest>(readFileSync(CRD_FILE, "utf8"));
    const metadata = { ...crd.metadata };
    delete metadata.labels;
    delete metadata.annotations;
    assert.deepEqual({ ...crd, metadata }, own);
    const notKept = findManifest(await template(RELEASE, SYSTEM_NS, "crds.keep=false"), "CustomResourceDefinition");
    assert.equal(notKept.metadata.annotations, undefined);
    const without = await template(RELEASE, SYSTEM_NS, "crds.install=false");
    assert.ok(!without.some((m) => m.kind === "CustomResourceDefinition"));
  });

  it("passes a server-side dry run with its defaults, and as another release with its options set", async () => {
    for (const ns of [SYSTEM_NS, "platform"]) await kubectl(["create", "namespace", ns]);
    const variants: [string, string, string[]][] = [
      [RELEASE, SYSTEM_NS, []],
      [
        "mig",
        "platform",
        [
          "rbac.serviceProbe=true",
          "rbac.guardrails=true",
          "replicaCount=1",
          "leaderElection.enabled=false",
          "metrics.enabled=false",
          `image.digest=sha256:${"ab".repeat(32)}`,
          "logLevel=debug",
          "preflightInterval=1m",
          "extraArgs[0]=--log-level=warn",
          "serviceAccount.annotations.team=platform",
          "nodeSelector.kubernetes\\.io/os=linux",
          "resources.limits.memory=1Gi",
          "priorityClassName=system-cluster-critical",
        ],
      ],
    ];
    for (const [release, namespace, values] of variants) {
      const rendered = await template(release, namespace, ...values);
      // The CRD is the same object for both releases; one dry run of it is enough.
      const objects = release === RELEASE ? rendered : rendered.filter((m) => m.kind !== "CustomResourceDefinition");
      const dry = await kubectl(
        ["apply", "--dry-run=server", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
      );
      const lines = dry.stdout.trim().split("\n");
      assert.equal(lines.length, objects.length, dry.stdout);
      for (const line of lines) assert.match(line, /created \(server dry run\)$/);
      assert.doesNotMatch(dry.stderr, /PodSecurity/);

      // Every binding names the ServiceAccount the pods run as.
      const deployment = findManifest(rendered, "Deployment") as DeploymentManifest;
      const account = deployment.spec.template.spec.serviceAccountName;
      findManifest(rendered, "ServiceAccount", account);
      for (const binding of rendered.filter((m) => m.kind.endsWith("Binding")) as RbacManifest[]) {
        assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: account, namespace }]);
      }
    }
  });

  it("its options change what they say: leader election, metrics, the image digest, memory, ServiceMonitor", async () => {
    // HTTPS /metrics by default, as config/default; metrics.secure=false is plain HTTP, and the ServiceMonitor follows.
    const plain = await template(RELEASE, SYSTEM_NS, "metrics.secure=false", "metrics.serviceMonitor.enabled=true");
    assert.ok((managerContainer(plain).args ?? []).includes("--metrics-secure=false"));
    const plainMonitor = findManifest(plain, "ServiceMonitor") as Manifest & {
      spec: { endpoints: { scheme: string; bearerTokenFile?: string }[] };
    };
    assert.deepEqual(
      plainMonitor.spec.endpoints.map((e) => [e.scheme, e.bearerTokenFile]),
      [["http", undefined]],
    );
    // metrics.certSecret: the Secret's certificate, mounted where --metrics-cert-dir reads it.
    const certified = await template(RELEASE, SYSTEM_NS, "metrics.certSecret=metrics-tls");
    const certDir = (managerContainer(certified).args ?? []).find((a) => a.startsWith("--metrics-cert-dir="));
    const deployment = findManifest(certified, "Deployment") as DeploymentManifest & {
      spec: { template: { spec: { volumes?: { name: string; secret?: { secretName: string } }[] } } };
    };
    const mount = (managerContainer(certified) as Container & { volumeMounts?: { name: string; mountPath: string }[] })
      .volumeMounts?.[0];
    assert.equal(certDir, `--metrics-cert-dir=${mount?.mountPath}`);
    assert.deepEqual(
      deployment.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName,
      "metrics-tls",
    );

    const off = await template(
      "mig",
      "platform",
      "replicaCount=1",
      "leaderElection.enabled=false",
      "metrics.enabled=false",
    );
    const offArgs = managerContainer(off).args ?? [];
    assert.ok(!offArgs.includes("--leader-elect"), offArgs.join(" "));
    assert.ok(offArgs.includes("--metrics-bind-address=0"), offArgs.join(" "));
    assert.ok(!off.some((m) => m.kind === "Role" && m.metadata.name.endsWith("-leader-election-role")));
    assert.ok(!off.some((m) => m.kind === "Service"), "no metrics Service");

    const digest = `sha256:${"cd".repeat(32)}`;
    const pinned = managerContainer(await template("mig", "platform", `image.digest=${digest}`, "image.tag=9.9.9"));
    assert.equal(pinned.image, `${await makeVariable("IMAGE_REPO")}@${digest}`);

    // V8's old space follows the memory limit (three quarters of it) unless set.
    const nodeOptions = async (...values: string[]) =>
      managerContainer(await template("mig", "platform", ...values)).env?.find((e) => e.name === "NODE_OPTIONS")?.value;
    assert.equal(await nodeOptions("resources.limits.memory=1Gi"), "--max-old-space-size=768");
    assert.equal(await nodeOptions("node.maxOldSpaceSize=300"), "--max-old-space-size=300");
    // The young generation is the program's own unless set.
    assert.equal(await nodeOptions("node.maxSemiSpaceSize=16"), "--max-old-space-size=384 --max-semi-space-size=16");

    // The Prometheus Operator's CRDs are not in the harness, so the ServiceMonitor is checked against the
    // Service it must find: by that Service's labels, on a port that Service names.
    const monitored = await template(
      RELEASE,
      SYSTEM_NS,
      "metrics.serviceMonitor.enabled=true",
      "metrics.serviceMonitor.interval=30s",
    );
    const monitor = findManifest(monitored, "ServiceMonitor") as Manifest & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; interval?: string; scheme: string; bearerTokenFile?: string }[];
      };
    };
    const service = findManifest(monitored, "Service") as Manifest & { spec: { ports: { name: string }[] } };
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(service.metadata.labels?.[key], value, `the metrics Service has ${key}=${value}`);
    }
    assert.deepEqual(
      monitor.spec.endpoints.map((e) => [e.port, e.interval, e.scheme, e.bearerTokenFile]),
      [["metrics", "30s", "https", "/var/run/secrets/kubernetes.io/serviceaccount/token"]],
    );
    // The same endpoint as config/prometheus's ServiceMonitor.
    const configMonitor = parseManifests(
      (await kubectl(["kustomize", path.join(repoRoot, "config/prometheus")])).stdout,
    ).find((m) => m.kind === "ServiceMonitor") as Manifest & { spec: { endpoints: Record<string, unknown>[] } };
    const { interval: _interval, ...endpoint } = monitor.spec.endpoints[0] ?? {};
    void _interval;
    assert.deepEqual(endpoint, configMonitor.spec.endpoints[0]);
    assert.ok(service.spec.ports.some((p) => p.name === "metrics"));
    assert.ok(!(await template(RELEASE, SYSTEM_NS)).some((m) => m.kind === "ServiceMonitor"), "off by default");

    // The alerts and the dashboard are config/prometheus's and config/grafana's, as they are.
    const extras = await template(
      RELEASE,
      SYSTEM_NS,
      "metrics.prometheusRule.enabled=true",
      "metrics.grafanaDashboard.enabled=true",
    );
    const configured = async (dir: string, kind: string) =>
      parseManifests((await kubectl(["kustomize", path.join(repoRoot, "config", dir)])).stdout).find(
        (m) => m.kind === kind,
      ) as Manifest & { spec?: unknown; data?: Record<string, string> };
    const rule = findManifest(extras, "PrometheusRule") as Manifest & { spec: unknown };
    assert.deepEqual(rule.spec, (await configured("prometheus", "PrometheusRule")).spec);
    const dashboard = findManifest(extras, "ConfigMap") as Manifest & { data: Record<string, string> };
    const configDashboard = await configured("grafana", "ConfigMap");
    assert.equal(dashboard.metadata.name, configDashboard.metadata.name);
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, "1");
    const json = (data: Record<string, string> | undefined) =>
      Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, JSON.parse(v) as unknown]));
    assert.deepEqual(json(dashboard.data), json(configDashboard.data));
    const defaults = await template(RELEASE, SYSTEM_NS);
    assert.ok(!defaults.some((m) => m.kind === "PrometheusRule" || m.kind === "ConfigMap"), "off by default");
  });

  it("refuses values the operator would not run with, naming them", async () => {
    assert.match(await refusal("replicaCount=two"), /replicaCount/);
    assert.match(await refusal("imagee.tag=1.0.0"), /imagee/);
    assert.match(await refusal("logLevel=trace"), /logLevel/);
    assert.match(await refusal("preflightInterval=soon"), /preflightInterval/);
    assert.match(await refusal("metrics.port=0"), /metrics\/port/);
    assert.match(await refusal("image.digest=latest"), /image\/digest/);
    assert.match(await refusal("resources.limits.memory=lots"), /resources\/limits\/memory/);
    assert.match(
      await refusal("replicaCount=3", "leaderElection.enabled=false"),
      /replicaCount > 1 needs leaderElection.enabled/,
    );
  });

  it("installs, upgrades and uninstalls with the README's helm commands; the CRD and the plans outlive the release", async () => {
    const kubeconfig = `--kubeconfig=${env.cp.kubeconfigPath}`;
    const readme = readmeHelmCommands();
    const deployment = async () =>
      JSON.parse(
        (await kubectl(["get", "deployment", "-n", SYSTEM_NS, `${RELEASE}-controller-manager`, "-o", "json"])).stdout,
      ) as DeploymentManifest;
    succeeded(await helm([...readme.install, kubeconfig]), readme.install.join(" "));
    await kubectl(["wait", "--for=condition=Established", `crd/${CRD}`, "--timeout=60s"]);
    const installed = await deployment();
    assert.equal(installed.spec.replicas, 2);
    assert.equal(
      installed.spec.template.spec.containers[0]?.image,
      `${await makeVariable("IMAGE_REPO")}:${PACKAGE.version}`,
    );
    await createPlan(env.client, "kept", { targetPhase: "Audit" });

    succeeded(await helm([...readme.upgrade, kubeconfig]), readme.upgrade.join(" "));
    const tag = readme.upgrade.find((a) => a.startsWith("image.tag="))?.split("=")[1] ?? "";
    assert.ok(tag);
    const upgraded = await deployment();
    assert.equal(upgraded.spec.template.spec.containers[0]?.image, `${await makeVariable("IMAGE_REPO")}:${tag}`);
    assert.equal(upgraded.spec.replicas, 2, "--reuse-values kept the rest");

    succeeded(await helm([...readme.uninstall, kubeconfig]), readme.uninstall.join(" "));
    await eventually(
      async () =>
        (await env.cp.kubectl(["get", "deployment", "-n", SYSTEM_NS, `${RELEASE}-controller-manager`])).code !== 0
          ? true
          : undefined,
      "the Deployment to be gone",
    );
    // crds.keep: the CRD, and so the plans, stay until deleted by hand, last.
    await kubectl(["get", "migrationplan", "kept"]);
    await kubectl(["delete", "migrationplans", "--all", "--wait"]);
    await kubectl(["delete", "crd", CRD]);
  });
});
