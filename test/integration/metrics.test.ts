// The operator's metrics on a real control plane: /metrics over HTTPS answers only a bearer token whose identity
// may get it (TokenReview and SubjectAccessReview by the real API server: 401 without a token, 403 without the
// metrics-reader ClusterRole, 200 with it); the ipv6migration_* gauges say what each plan's status says; every
// metric name the Grafana dashboard (config/grafana) and the alerts (config/prometheus) query is served; and a
// deleted plan's series go.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { CUTOVER_ANNOTATION, METRICS, SERVICE_STATES, type MigrationPlan } from "../../src/api/migrationplan.js";
import { CUTOVER_EXTERNAL_NAME, type CutoverRecord } from "../../src/migration/cutover.js";
import type { Service } from "../../src/migration/families.js";
import { SERVICES } from "../../src/runtime/client.js";
import { DEFAULT_CERT_NAME, DEFAULT_KEY_NAME, selfSignedTlsMaterial } from "../../src/runtime/secure-serving.js";
import { freePort, repoRoot } from "../../src/testenv/controlplane.js";
import {
  clusterIPService,
  createIPv6Slice,
  createNamespace,
  createService,
  eventually,
  useControlPlane,
} from "../helpers.js";
import { OperatorProcess, createPlan, getPlan, installCRD } from "../operator.js";
import { parseManifests, parseYaml } from "../release.js";
import { requestToken, type ServiceAccountRef } from "../serviceaccount.js";
import { refuseFamilyChanges } from "../fixtures/resources.js";

const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };
const SYSTEM_NS = "ipv6-migration-system";
const MONITORING_NS = "monitoring";
const READER: ServiceAccountRef = { namespace: MONITORING_NS, name: "prometheus" };
const STRANGER: ServiceAccountRef = { namespace: MONITORING_NS, name: "stranger" };
const READER_ROLE = "ipv6-migration-operator-metrics-reader";
const DASHBOARD = path.join(repoRoot, "config/grafana/ipv6-migration-dashboard.json");
const RULES = path.join(repoRoot, "config/prometheus/prometheusrule.yaml");
const RBAC_GROUP = "rbac.authorization.k8s.io";
/** The metric families the dashboard and the alerts may query: the operator's and controller-runtime's. */
const METRIC_NAME = /\b(?:ipv6migration|controller_runtime|workqueue|rest_client|leader_election)_[a-z0-9_]*[a-z0-9]/g;
const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

/** GET over HTTPS, trusting the operator's self-signed certificate (as the ServiceMonitor's insecureSkipVerify). */
function scrape(address: string, token?: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `https://${address}/metrics`,
      {
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d));
        res.once("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once("error", reject);
  });
}

/** The families a scrape declares (# TYPE), and the names its samples carry. */
function served(body: string): { families: Map<string, string>; samples: Set<string> } {
  const families = new Map<string, string>();
  const samples = new Set<string>();
  for (const line of body.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type?.[1] && type[2]) families.set(type[1], type[2]);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample?.[1]) samples.add(sample[1]);
  }
  return { families, samples };
}

/** One series' value from a scrape, by its metric name and exact labels. */
function valueOf(body: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(",");
  for (const line of body.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    if ((match[2] ?? "").split(",").sort().join(",") === want) return Number(match[3]);
  }
  return undefined;
}

/** Every PromQL expression of the dashboard (panel targets and template variable queries). */
function dashboardExprs(): string[] {
  const exprs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if ((key === "expr" || key === "query" || key === "definition") && typeof value === "string") exprs.push(value);
      else walk(value);
    }
  };
  walk(JSON.parse(readFileSync(DASHBOARD, "utf8")));
  return exprs;
}

interface PrometheusRule {
  kind: string;
  spec: { groups: { rules: { alert?: string; expr: string }[] }[] };
}

function ruleExprs(): { alerts: string[]; exprs: string[] } {
  const rule = parseYaml<PrometheusRule>(readFileSync(RULES, "utf8"));
  assert.equal(rule.kind, "PrometheusRule");
  const rules = rule.spec.groups.flatMap((g) => g.rules);
  return { alerts: rules.flatMap((r) => (r.alert ? [r.alert] : [])), exprs: rules.map((r) => r.expr) };
}

/** The metric names a PromQL expression reads, loosely: any identifier followed by a selector must be one. */
function metricNames(expr: string): string[] {
  const names: string[] = [...(expr.match(METRIC_NAME) ?? [])];
  for (const [, selected] of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)) {
    assert.ok(selected && names.includes(selected), `${selected ?? ""} in "${expr}" is not a metric this test checks`);
  }
  return names;
}

describe("metrics: HTTPS /metrics with TokenReview and SubjectAccessReview, and what the dashboard and alerts query", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess | undefined;
  let address = "";
  const tokens = { reader: "", stranger: "" };

  const kubectl = async (args: string[], input?: string) => {
    const result = await env.cp.kubectl(args, { input });
    assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
    return result;
  };

  before(async function () {
    this.timeout(120_000);
    await installCRD(env.cp);
    for (const ns of [SYSTEM_NS, MONITORING_NS]) await createNamespace(env.client, ns);
    // The metrics-reader ClusterRole as config/rbac ships it, bound to Prometheus's ServiceAccount only.
    const rbac = parseManifests((await kubectl(["kustomize", path.join(repoRoot, "config/rbac")])).stdout);
    const reader = rbac.find((m) => m.kind === "ClusterRole" && m.metadata.name === READER_ROLE);
    assert.ok(reader, `config/rbac has the ClusterRole ${READER_ROLE}`);
    await kubectl(["apply", "-f", "-"], JSON.stringify(reader));
    for (const sa of [READER, STRANGER]) await kubectl(["create", "serviceaccount", "-n", sa.namespace, sa.name]);
    await env.client.create(
      {
        group: RBAC_GROUP,
        version: "v1",
        resource: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
      },
      undefined,
      {
        metadata: { name: "prometheus-metrics-reader" },
        roleRef: { apiGroup: RBAC_GROUP, kind: "ClusterRole", name: READER_ROLE },
        subjects: [{ kind: "ServiceAccount", name: READER.name, namespace: READER.namespace }],
      },
    );
    tokens.reader = await requestToken(env.client, READER);
    tokens.stranger = await requestToken(env.client, STRANGER);
    address = `127.0.0.1:${await freePort()}`;
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name, {}, [
      `--metrics-bind-address=${address}`,
      "--leader-elect",
      `--leader-election-namespace=${SYSTEM_NS}`,
      // The data plane that pacing waits for is not part of this test.
      "--cutover-pacing=0",
    ]).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("answers 401 without a token, 403 to a ServiceAccount without metrics-reader, 200 to one with it", async () => {
    const none = await eventually(async () => {
      try {
        return await scrape(address);
      } catch {
        return undefined; // not listening yet
      }
    }, "the HTTPS metrics server");
    assert.equal(none.status, 401, none.body);
    assert.equal((await scrape(address, "not-a-token")).status, 401);
    const stranger = await scrape(address, tokens.stranger);
    assert.equal(stranger.status, 403, stranger.body);
    assert.match(stranger.body, /system:serviceaccount:monitoring:stranger/);
    const reader = await scrape(address, tokens.reader);
    assert.equal(reader.status, 200, reader.body);
    assert.match(reader.body, /^# TYPE controller_runtime_reconcile_total counter$/m);
  });

  it("gauges what each plan's status says, for every state; serves every name the dashboard and the alerts query", async () => {
    // DualStack: one Service moves, one is reverted by another field manager after its move (drifted).
    await createNamespace(env.client, "m-dual");
    await createService(env.client, "m-dual", clusterIPService("moved"));
    const gitops = (await createService(env.client, "m-dual", clusterIPService("gitops"))) as Service;
    // DualStack, stalled by a refused write (failed).
    await createNamespace(env.client, "m-frozen");
    await createService(env.client, "m-frozen", {
      ...clusterIPService("frozen"),
      metadata: { name: "frozen", labels: { app: "frozen", frozen: "yes" } },
    });
    await refuseFamilyChanges(env.client, { namespace: "m-frozen", name: "frozen" });
    // IPv6Only, with a cutover stuck between its two writes: the write back from ExternalName is refused. Made
    // once the policy refuses it, or the operator would finish it at once as a cutover without a plan.
    await createNamespace(env.client, "m-stuck");
    const ports = [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }];
    const record: CutoverRecord = {
      restore: { type: "ClusterIP", ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], ports },
      snapshot: { type: "ClusterIP", ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], ports },
      state: SERVICE_STATES.ipv6Only,
      applied: "IPv6Only",
      plan: "stuck",
    };
    await createService(env.client, "m-stuck", {
      metadata: {
        name: "stuck",
        labels: { app: "stuck", frozen: "yes" },
        annotations: { [CUTOVER_ANNOTATION]: JSON.stringify(record) },
      },
      spec: { type: "ExternalName", externalName: CUTOVER_EXTERNAL_NAME, selector: { app: "stuck" }, ports },
    });
    // IPv6Only: one Service cut over (a batch and a cutover happen), one LoadBalancer blocked.
    await createNamespace(env.client, "m-v6");
    await createService(env.client, "m-v6", clusterIPService("web"));
    await createIPv6Slice(env.client, "m-v6", "web", "fd00:9::1");
    await createService(env.client, "m-v6", clusterIPService("lb", { type: "LoadBalancer" }));
    await createIPv6Slice(env.client, "m-v6", "lb", "fd00:9::2");

    const rollout = { batchSize: "100%", pauseBetweenBatches: "0s" };
    await createPlan(env.client, "dual", { targetPhase: "DualStack", selector: { namespaces: ["m-dual"] }, rollout });
    await createPlan(env.client, "frozen", {
      targetPhase: "DualStack",
      selector: { namespaces: ["m-frozen"] },
      rollout,
    });
    await createPlan(env.client, "v6", { targetPhase: "IPv6Only", selector: { namespaces: ["m-v6"] }, rollout });
    await createPlan(env.client, "stuck", { targetPhase: "IPv6Only", selector: { namespaces: ["m-stuck"] }, rollout });
    await eventually(async () => {
      const svc = await env.client.get<Service>(SERVICES, "m-dual", "gitops");
      return svc.spec.ipFamilies?.length === 2 ? true : undefined;
    }, "gitops to be dual-stack");
    await env.client.patch(
      SERVICES,
      "m-dual",
      "gitops",
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "gitops", namespace: "m-dual" },
        spec: {
          selector: { app: "gitops" },
          ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }],
          ipFamilyPolicy: "SingleStack",
          ipFamilies: ["IPv4"],
          clusterIPs: [gitops.spec.clusterIP],
        },
      },
      "apply",
      { fieldManager: "kustomize-controller", force: true },
    );

    const summaryIs = (plan: MigrationPlan, want: Record<string, number>) =>
      Object.entries(want).every(([k, v]) => (plan.status?.summary as Record<string, number> | undefined)?.[k] === v);
    const plans = await eventually(async () => {
      const [d, f, v, s] = await Promise.all(
        ["dual", "frozen", "v6", "stuck"].map((name) => getPlan(env.client, name)),
      );
      return d &&
        f &&
        v &&
        s &&
        summaryIs(s, { selected: 1, failed: 1 }) &&
        summaryIs(d, { dualStack: 1, ipv4Only: 1, drifted: 1 }) &&
        f.status?.phase === "Stalled" &&
        summaryIs(f, { ipv4Only: 1, failed: 1 }) &&
        summaryIs(v, { ipv6Only: 1, ipv4Only: 1, blocked: 1 })
        ? [d, f, v, s]
        : undefined;
    }, "the four plans to settle").catch(async (err: unknown) => {
      const now = await Promise.all(["dual", "frozen", "v6", "stuck"].map((name) => getPlan(env.client, name)));
      const seen = now.map((p) => `${p.metadata.name}: ${p.status?.phase} ${JSON.stringify(p.status?.summary)}`);
      throw new Error(`${String(err)}; the plans: ${seen.join("; ")}`, { cause: err });
    });
    const v6 = plans[2];

    // The gauges follow the status the operator computed (it writes what it computes); the counters and
    // histograms have the batch and the cutover.
    const body = await eventually(async () => {
      const scraped = await scrape(address, tokens.reader);
      assert.equal(scraped.status, 200, scraped.body);
      const text = scraped.body;
      const ok =
        valueOf(text, METRICS.services, { plan: "dual", state: SERVICE_STATES.drifted }) === 1 &&
        valueOf(text, METRICS.planPhase, { plan: "frozen", phase: "Stalled" }) === 1 &&
        valueOf(text, METRICS.cutovers, { plan: "v6", result: "succeeded" }) === 1 &&
        valueOf(text, METRICS.services, { plan: "stuck", state: SERVICE_STATES.cuttingOver }) === 1;
      return ok ? text : undefined;
    }, "the metrics of both plans");
    for (const plan of plans) {
      const name = plan.metadata.name;
      const summary = plan.status?.summary;
      const expected: Record<string, number | undefined> = {
        [SERVICE_STATES.ipv4Only]: summary?.ipv4Only,
        [SERVICE_STATES.dualStack]: summary?.dualStack,
        [SERVICE_STATES.ipv6Only]: summary?.ipv6Only,
        [SERVICE_STATES.blocked]: summary?.blocked,
        [SERVICE_STATES.failed]: summary?.failed,
        [SERVICE_STATES.drifted]: summary?.drifted,
        // Not in the status: the Service found between a cutover's two writes, here one whose second is refused.
        [SERVICE_STATES.cuttingOver]: name === "stuck" ? 1 : 0,
      };
      for (const [state, value] of Object.entries(expected)) {
        assert.equal(valueOf(body, METRICS.services, { plan: name, state }), value, `${name} ${state}`);
      }
      assert.equal(valueOf(body, METRICS.servicesSelected, { plan: name }), summary?.selected);
      assert.equal(valueOf(body, METRICS.servicesAtTarget, { plan: name }), summary?.atTarget);
      assert.equal(valueOf(body, METRICS.planPhase, { plan: name, phase: plan.status?.phase ?? "" }), 1);
      const target = plan.spec.targetPhase ?? "";
      assert.equal(valueOf(body, METRICS.planTargetPhase, { plan: name, target_phase: target }), 1);
      if (name !== "stuck") {
        assert.ok((valueOf(body, METRICS.batches, { plan: name, target_phase: target }) ?? 0) >= 1, `${name} batches`);
      }
      // Every kind and severity the status counts is gauged (the status lists at most 50 findings).
      for (const [kind, count] of Object.entries(plan.status?.preflight?.counts ?? {})) {
        const gauged = [...body.matchAll(new RegExp(`^${METRICS.preflightFindings}\\{([^}]*)\\} (\\S+)$`, "gm"))]
          .filter((m) => (m[1] ?? "").includes(`plan="${name}"`) && (m[1] ?? "").includes(`kind="${kind}"`))
          .reduce((sum, m) => sum + Number(m[2]), 0);
        assert.equal(gauged, count, `${name} ${kind} findings`);
      }
    }
    assert.ok(Object.keys(v6?.status?.preflight?.counts ?? {}).length > 0, "the IPv6Only plan has findings");

    // Every name the dashboard and the alerts read: declared by the scrape (a histogram's _bucket, _sum and
    // _count by its family), and, for the operator's own, with samples.
    const { families, samples } = served(body);
    const { alerts, exprs: rules } = ruleExprs();
    assert.deepEqual(
      alerts.filter((a) => /Stalled|Failed|Blocked|CutoverStuck/.test(a)).length,
      4,
      `the four alerts of #12: ${alerts.join(", ")}`,
    );
    const exprs = [...dashboardExprs(), ...rules];
    assert.ok(exprs.length >= 15, `the dashboard and rules have their queries (${exprs.length})`);
    const missing: string[] = [];
    const used = new Set<string>();
    for (const expr of exprs) {
      for (const name of metricNames(expr)) {
        used.add(name);
        const suffix = HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
        const family = suffix ? name.slice(0, -suffix.length) : name;
        const declared = families.get(name) !== undefined || (suffix && families.get(family) === "histogram");
        const sampled = samples.has(name);
        if (!declared || (name.startsWith("ipv6migration_") && !sampled)) missing.push(`${name} (in ${expr})`);
      }
    }
    assert.deepEqual(missing, [], "names the dashboard or the rules query that /metrics does not serve");
    // And the other way: the dashboard shows every metric of the operator.
    for (const name of Object.values(METRICS)) {
      assert.ok(
        [...used].some((u) => u === name || u.startsWith(`${name}_`)),
        `the dashboard or rules use ${name}`,
      );
    }
  });

  it("a deleted plan's series go, and the other plan's stay", async () => {
    await kubectl(["delete", "migrationplan", "dual", "--wait=true"]);
    const body = await eventually(async () => {
      const text = (await scrape(address, tokens.reader)).body;
      return text.includes('plan="dual"') ? undefined : text;
    }, "the deleted plan's series to go");
    for (const plan of ["frozen", "v6"]) assert.match(body, new RegExp(`^${METRICS.services}\\{plan="${plan}"`, "m"));
  });

  it("serves --metrics-cert-dir's certificate, plain HTTP with --metrics-secure=false, and refuses a bad cert dir", async () => {
    const dir = path.join(env.cp.dir, "metrics-certs");
    mkdirSync(dir, { recursive: true });
    const material = selfSignedTlsMaterial(["localhost", "127.0.0.1"]);
    writeFileSync(path.join(dir, DEFAULT_CERT_NAME), material.cert);
    writeFileSync(path.join(dir, DEFAULT_KEY_NAME), material.key, { mode: 0o600 });
    const certified = `127.0.0.1:${await freePort()}`;
    const plain = `127.0.0.1:${await freePort()}`;
    // Standbys of the running leader: a replica serves /metrics whether it leads or not.
    const standby = (flags: string[]) =>
      new OperatorProcess(env.cp, OPERATOR_USER.name, {}, [
        ...flags,
        "--leader-elect",
        `--leader-election-namespace=${SYSTEM_NS}`,
      ]).start();
    const processes = [
      standby([`--metrics-bind-address=${certified}`, `--metrics-cert-dir=${dir}`]),
      standby([`--metrics-bind-address=${plain}`, "--metrics-secure=false"]),
    ];
    try {
      // Verified against the file's certificate: the operator serves it, not one of its own.
      const verified = await eventually(async () => {
        try {
          return await scrape(certified, tokens.reader, material.cert);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ECONNREFUSED") return undefined;
          throw err;
        }
      }, "the HTTPS metrics server with the given certificate");
      assert.equal(verified.status, 200, verified.body);
      const open = await eventually(async () => {
        try {
          const res = await fetch(`http://${plain}/metrics`);
          return { status: res.status, body: await res.text() };
        } catch {
          return undefined;
        }
      }, "the plain HTTP metrics server");
      assert.equal(open.status, 200, "no token needed");
      assert.match(open.body, /^# TYPE leader_election_master_status gauge$/m);
    } finally {
      await Promise.all(processes.map((p) => p.stop("SIGKILL")));
    }

    const missing = new OperatorProcess(env.cp, OPERATOR_USER.name, {}, [
      `--metrics-cert-dir=${path.join(env.cp.dir, "no-such-dir")}`,
    ]).start();
    assert.equal(await missing.exit, 2, missing.output);
    assert.match(missing.output, /--metrics-cert-dir: cannot read the certificate .*no-such-dir\/tls\.crt/);
  });
});
