// The precondition's failure paths that a real 1.37 API server can't produce: it refuses to start without
// the ServiceCIDR API, so an older server that doesn't serve it is played by nock.
import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import nock from "nock";
import { KubeClient } from "../../src/runtime/client.js";
import { capabilityFromRanges, servesServiceCIDRs } from "../../src/reconciler/precondition.js";

const SERVER = "https://old-cluster.example:6443";

function client(): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: SERVER, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
  return new KubeClient(kc);
}

describe("precondition: is ServiceCIDR served?", () => {
  before(() => nock.disableNetConnect());
  after(() => {
    nock.cleanAll();
    nock.enableNetConnect();
  });

  it("false when networking.k8s.io/v1 lists no servicecidrs (Kubernetes before 1.33)", async () => {
    nock(SERVER)
      .get("/apis/networking.k8s.io/v1")
      .reply(200, { kind: "APIResourceList", resources: [{ name: "networkpolicies" }, { name: "ingresses" }] });
    assert.equal(await servesServiceCIDRs(client()), false);
  });

  it("false when the group version itself is not served", async () => {
    nock(SERVER).get("/apis/networking.k8s.io/v1").reply(404, { kind: "Status", code: 404, reason: "NotFound" });
    assert.equal(await servesServiceCIDRs(client()), false);
  });

  it("true when servicecidrs is listed", async () => {
    nock(SERVER)
      .get("/apis/networking.k8s.io/v1")
      .reply(200, { kind: "APIResourceList", resources: [{ name: "servicecidrs" }, { name: "servicecidrs/status" }] });
    assert.equal(await servesServiceCIDRs(client()), true);
  });

  it("other errors are not taken for an answer", async () => {
    nock(SERVER).get("/apis/networking.k8s.io/v1").reply(503, "unavailable");
    await assert.rejects(servesServiceCIDRs(client()), /503/);
  });
});

describe("precondition: ranges", () => {
  it("an IPv6 range anywhere in the list makes the cluster capable", () => {
    assert.equal(capabilityFromRanges(["10.96.0.0/16", "fd00:10:96::/108"]).status, true);
    assert.equal(capabilityFromRanges(["fd00:10:96::/108"]).status, true);
  });

  it("IPv4 only, or nothing, does not", () => {
    const v4 = capabilityFromRanges(["10.96.0.0/16"]);
    assert.equal(v4.status, false);
    assert.match(v4.message, /10\.96\.0\.0\/16\) have no IPv6 range/);
    assert.equal(capabilityFromRanges([]).status, false);
  });
});
