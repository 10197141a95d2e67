// The ipv6migration_* gauges follow the status computed at each reconcile, and a deleted plan's series go with it;
// the review cache of HTTPS /metrics asks the API server once per token and TTL (played by nock: the API
// server's answers themselves are tested on a real one in test/integration/metrics.test.ts).
import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import nock from "nock";
import { Registry } from "prom-client";
import { METRICS, type MigrationPlanStatus } from "../../src/api/migrationplan.js";
import type { Finding } from "../../src/migration/preflight.js";
import { MigrationMetrics } from "../../src/reconciler/metrics.js";
import { KubeClient } from "../../src/runtime/client.js";
import { FakeClock } from "../../src/runtime/clock.js";
import { ReviewAuthorizer, SUBJECT_ACCESS_REVIEWS_PATH, TOKEN_REVIEWS_PATH } from "../../src/runtime/secure-serving.js";

/** The samples of one metric, as "labels value" lines sorted. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => l.slice(name.length))
    .sort();
}

const status: MigrationPlanStatus = {
  phase: "MigratingToIPv6Only",
  summary: {
    selected: 9,
    ipv4Only: 2,
    dualStack: 3,
    ipv6Only: 4,
    atTarget: 4,
    skipped: 0,
    blocked: 1,
    failed: 2,
    drifted: 0,
  },
};

const finding = (kind: Finding["kind"], severity: Finding["severity"], object: string): Finding => ({
  kind,
  severity,
  object,
  reason: kind,
  message: "m",
});

describe("reconciler/metrics: the ipv6migration_* metrics", () => {
  it("sets the gauges from the computed status, one phase and one target at 1", async () => {
    const registry = new Registry();
    const m = new MigrationMetrics(registry);
    m.observePlan({ plan: "p", target: "IPv6Only", status, cuttingOver: 1, findings: [] });
    assert.deepEqual(await samples(registry, METRICS.services), [
      '{plan="p",state="blocked"} 1',
      '{plan="p",state="cutting-over"} 1',
      '{plan="p",state="drifted"} 0',
      '{plan="p",state="dual-stack"} 3',
      '{plan="p",state="failed"} 2',
      '{plan="p",state="ipv4-only"} 2',
      '{plan="p",state="ipv6-only"} 4',
    ]);
    assert.deepEqual(await samples(registry, METRICS.servicesSelected), ['{plan="p"} 9']);
    const phases = await samples(registry, METRICS.planPhase);
    assert.deepEqual(
      phases.filter((l) => l.endsWith(" 1")),
      ['{plan="p",phase="MigratingToIPv6Only"} 1'],
    );
    assert.equal(phases.length, 10);
    assert.deepEqual(
      (await samples(registry, METRICS.planTargetPhase)).filter((l) => l.endsWith(" 1")),
      ['{plan="p",target_phase="IPv6Only"} 1'],
    );
  });

  it("counts findings by kind and severity, and drops a kind that went away", async () => {
    const registry = new Registry();
    const m = new MigrationMetrics(registry);
    m.observePlan({
      plan: "p",
      target: "IPv6Only",
      status,
      cuttingOver: 0,
      findings: [
        finding("HardcodedClusterIP", "Blocking", "Pod/a/x"),
        finding("HardcodedClusterIP", "Blocking", "ConfigMap/a/y"),
        finding("Node", "Warning", "Node/n1"),
      ],
    });
    assert.deepEqual(await samples(registry, METRICS.preflightFindings), [
      '{plan="p",kind="HardcodedClusterIP",severity="Blocking"} 2',
      '{plan="p",kind="Node",severity="Warning"} 1',
    ]);
    m.observePlan({
      plan: "p",
      target: "IPv6Only",
      status,
      cuttingOver: 0,
      findings: [finding("Node", "Warning", "N")],
    });
    assert.deepEqual(await samples(registry, METRICS.preflightFindings), [
      '{plan="p",kind="Node",severity="Warning"} 1',
    ]);
    // A reconcile that ran no preflight (an invalid spec) leaves the last findings.
    m.observePlan({ plan: "p", target: "IPv6Only", status, cuttingOver: 0 });
    assert.equal((await samples(registry, METRICS.preflightFindings)).length, 1);
  });

  it("a deleted plan's series go, gauges, counters and histograms alike; another plan's stay", async () => {
    const registry = new Registry();
    const m = new MigrationMetrics(registry);
    for (const plan of ["gone", "kept"]) {
      m.observePlan({ plan, target: "IPv6Only", status, cuttingOver: 0, findings: [finding("Node", "Warning", "N")] });
      m.batchFinished(plan, "IPv6Only", {
        number: 1,
        size: 3,
        startedAt: "2026-01-01T00:00:00.000Z",
        finishedAt: "2026-01-01T00:00:01.500Z",
      });
      m.cutover(plan, "succeeded", 0.2);
    }
    assert.deepEqual(await samples(registry, `${METRICS.batchDuration}_sum`), [
      '{plan="gone",target_phase="IPv6Only"} 1.5',
      '{plan="kept",target_phase="IPv6Only"} 1.5',
    ]);
    m.forget("gone");
    const text = await registry.metrics();
    assert.doesNotMatch(text, /plan="gone"/);
    for (const name of Object.values(METRICS)) assert.match(text, new RegExp(`^${name}\\S*\\{plan="kept"`, "m"), name);
  });
});

const SERVER = "https://review.example:6443";

function reviewClient(): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: SERVER, skipTLSVerify: true }],
    users: [{ name: "u", token: "operator" }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
  return new KubeClient(kc, "review-test");
}

describe("runtime/secure-serving: the review cache of HTTPS /metrics", () => {
  before(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  after(() => nock.enableNetConnect());

  const authenticated = { status: { authenticated: true, user: { username: "system:serviceaccount:m:prom" } } };

  it("no token is 401 without asking; an allowed token is asked once per TTL", async () => {
    const clock = new FakeClock(0);
    const authorizer = new ReviewAuthorizer(reviewClient(), { clock, allowedTtlMs: 60_000 });
    assert.equal((await authorizer.decide(undefined, "get", "/metrics")).code, 401);
    assert.equal((await authorizer.decide("Basic abc", "get", "/metrics")).code, 401);
    const tokenReview = nock(SERVER).post(TOKEN_REVIEWS_PATH).times(2).reply(201, authenticated);
    const sar = nock(SERVER)
      .post(SUBJECT_ACCESS_REVIEWS_PATH, (body: { spec: { nonResourceAttributes: unknown; user: string } }) => {
        assert.deepEqual(body.spec.nonResourceAttributes, { path: "/metrics", verb: "get" });
        assert.equal(body.spec.user, "system:serviceaccount:m:prom");
        return true;
      })
      .times(2)
      .reply(201, { status: { allowed: true } });
    for (let i = 0; i < 3; i++) assert.equal((await authorizer.decide("Bearer t1", "get", "/metrics")).code, 200);
    assert.equal(tokenReview.pendingMocks().length, 1, "one TokenReview for three scrapes");
    clock.step(60_001);
    assert.equal((await authorizer.decide("Bearer t1", "get", "/metrics")).code, 200);
    assert.ok(tokenReview.isDone() && sar.isDone(), "asked again after the TTL");
  });

  it("a review that fails is 500 and not remembered; a refusal is 403 naming the user", async () => {
    const authorizer = new ReviewAuthorizer(reviewClient(), { clock: new FakeClock(0) });
    nock(SERVER).post(TOKEN_REVIEWS_PATH).reply(500, { kind: "Status", code: 500, message: "etcd is down" });
    const failed = await authorizer.decide("Bearer t2", "get", "/metrics");
    assert.equal(failed.code, 500);
    assert.match(failed.message, /TokenReview failed/);
    nock(SERVER).post(TOKEN_REVIEWS_PATH).reply(201, authenticated);
    nock(SERVER)
      .post(SUBJECT_ACCESS_REVIEWS_PATH)
      .reply(201, { status: { allowed: false, reason: "no RBAC policy matched" } });
    const refused = await authorizer.decide("Bearer t2", "get", "/metrics");
    assert.equal(refused.code, 403);
    assert.match(refused.message, /system:serviceaccount:m:prom.*no RBAC policy matched/);
  });
});
