// client-go's retry of "not now" answers, on paths the real API server answers only under load: a 429 from API
// Priority and Fairness, a 503 with Retry-After. (test/integration/throttling.test.ts gets real 429s.) Played by
// nock; the sleeps are recorded instead of waited, so no test depends on time.
import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import nock from "nock";
import { ApiError, DEFAULT_RETRY, KubeClient, retryDelayMs, type RetryPolicy } from "../../src/runtime/client.js";

const SERVER = "https://busy-cluster.example:6443";
const PATH = "/api/v1/namespaces/shop/services/web";

function client(slept: number[]): { client: KubeClient; retries: string[] } {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: SERVER, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
  const policy: RetryPolicy = { ...DEFAULT_RETRY, sleep: (ms) => (slept.push(ms), Promise.resolve()) };
  const c = new KubeClient(kc, "retry-test", policy);
  const retries: string[] = [];
  c.onRequest((verb, _type, code, retry) => void (retry && retries.push(`${verb} ${code}`)));
  return { client: c, retries };
}

const THROTTLED = { kind: "Status", code: 429, reason: "TooManyRequests", message: "Too many requests" };

describe("runtime/client: retries of 429 and of 5xx with Retry-After", () => {
  before(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  after(() => nock.enableNetConnect());

  it("a PATCH answered 429 with Retry-After is sent again after that many seconds, and succeeds", async () => {
    const slept: number[] = [];
    const { client: c, retries } = client(slept);
    nock(SERVER).patch(PATH).reply(429, THROTTLED, { "Retry-After": "2" });
    nock(SERVER)
      .patch(PATH)
      .reply(200, { metadata: { name: "web" } });
    const svc = await c.request<{ metadata: { name: string } }>("PATCH", PATH, { body: {} });
    assert.equal(svc.metadata.name, "web");
    assert.deepEqual(slept, [2000]);
    assert.deepEqual(retries, ["PATCH 429"]);
  });

  it("a 429 without Retry-After backs off with jitter, doubling", async () => {
    const slept: number[] = [];
    const { client: c } = client(slept);
    nock(SERVER).get(PATH).times(3).reply(429, THROTTLED);
    nock(SERVER).get(PATH).reply(200, {});
    await c.request("GET", PATH);
    assert.equal(slept.length, 3);
    slept.forEach((ms, i) => {
      const backoff = DEFAULT_RETRY.baseDelayMs * 2 ** i;
      assert.ok(ms >= backoff / 2 && ms <= backoff, `${ms} within [${backoff / 2}, ${backoff}]`);
    });
  });

  it("gives up after maxRetries, with the last answer", async () => {
    const slept: number[] = [];
    const { client: c } = client(slept);
    nock(SERVER)
      .get(PATH)
      .times(DEFAULT_RETRY.maxRetries + 1)
      .reply(429, THROTTLED, { "Retry-After": "1" });
    await assert.rejects(c.request("GET", PATH), (err) => err instanceof ApiError && err.code === 429);
    assert.equal(slept.length, DEFAULT_RETRY.maxRetries);
  });

  it("answers a retry cannot change go to the caller at once: 422, 403 from a ready server, 409, a 500 without Retry-After", async () => {
    for (const code of [422, 403, 409, 500]) {
      const slept: number[] = [];
      const { client: c } = client(slept);
      nock(SERVER).patch(PATH).reply(code, { kind: "Status", code });
      if (code === 403) nock(SERVER).get("/readyz").reply(200, "ok");
      await assert.rejects(
        c.request("PATCH", PATH, { body: {} }),
        (err) => err instanceof ApiError && err.code === code,
      );
      assert.deepEqual(slept, [], `${code} is not retried`);
    }
  });

  it("a 403 while the server is not ready (/readyz refused or failing) is retried with backoff; once ready, it is the answer", async () => {
    const slept: number[] = [];
    const { client: c, retries } = client(slept);
    const FORBIDDEN = { kind: "Status", code: 403, reason: "Forbidden", message: "RBAC: not loaded yet" };
    nock(SERVER).patch(PATH).reply(403, FORBIDDEN);
    nock(SERVER).get("/readyz").reply(403, { kind: "Status", code: 403 }); // the authorizer has no rules yet
    nock(SERVER).patch(PATH).reply(403, FORBIDDEN);
    nock(SERVER).get("/readyz").reply(500, "[-]poststarthook/rbac/bootstrap-roles failed: not finished");
    nock(SERVER)
      .patch(PATH)
      .reply(200, { metadata: { name: "web" } });
    const svc = await c.request<{ metadata: { name: string } }>("PATCH", PATH, { body: {} });
    assert.equal(svc.metadata.name, "web");
    assert.equal(slept.length, 2);
    assert.deepEqual(retries, ["PATCH 403", "PATCH 403"]);

    nock(SERVER).patch(PATH).reply(403, FORBIDDEN);
    nock(SERVER).get("/readyz").reply(200, "ok");
    await assert.rejects(c.request("PATCH", PATH, { body: {} }), (err) => err instanceof ApiError && err.code === 403);
    assert.equal(slept.length, 2, "a 403 from a ready server is not retried");
    assert.ok(nock.isDone());
  });

  it("retryDelayMs: 503 with Retry-After is retried, capped at maxDelayMs; 503 without it is not", () => {
    assert.equal(retryDelayMs(503, "3", 0, DEFAULT_RETRY), 3000);
    assert.equal(retryDelayMs(503, "3600", 0, DEFAULT_RETRY), DEFAULT_RETRY.maxDelayMs);
    assert.equal(retryDelayMs(503, null, 0, DEFAULT_RETRY), undefined);
    const capped = retryDelayMs(429, "not-a-number", 8, DEFAULT_RETRY) ?? -1;
    assert.ok(capped >= DEFAULT_RETRY.maxDelayMs / 2 && capped <= DEFAULT_RETRY.maxDelayMs, `${capped}`);
  });
});
