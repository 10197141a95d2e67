// Preflight findings as pure functions: ranges, nodes, NetworkPolicies, hard-coded addresses, service links.
import assert from "node:assert/strict";
import {
  blockingByService,
  endpointNodeFindings,
  byClusterIP,
  hardcodedIPFindings,
  ipv4OnlyNodes,
  ipv4ValueFindings,
  networkPolicyFindings,
  nodeFindings,
  serviceRangeFindings,
  staleServiceLinkFindings,
  workloadOf,
  type NetworkPolicyInfo,
  type PodInfo,
  type SelectedService,
} from "../../src/migration/preflight.js";
import { podInfo } from "../../src/reconciler/preflight.js";

const svc = (name: string, extra: Partial<SelectedService> = {}): SelectedService => ({
  key: `shop/${name}`,
  namespace: "shop",
  name,
  selector: { app: name },
  ipv4ClusterIP: "10.96.0.10",
  endpointNodes: [],
  ...extra,
});

const pod = (name: string, extra: Partial<PodInfo> = {}): PodInfo => ({
  namespace: "shop",
  name,
  creationTimestamp: "2026-01-01T00:00:00Z",
  enableServiceLinks: true,
  workload: `Pod/${name}`,
  values: [],
  ...extra,
});

describe("preflight: Service ranges", () => {
  it("classifies ULA, global and documentation IPv6 ranges with ipaddr.js, with size and room", () => {
    const [ula] = serviceRangeFindings(["10.96.0.0/16", "fd00:10:96::/108"], 3);
    assert.equal(ula?.reason, "IPv6Range_uniqueLocal");
    assert.equal(ula?.severity, "Info");
    assert.match(ula?.message ?? "", /1048576 addresses, 3 in use, room for 1048572 more Services/);
    assert.equal(serviceRangeFindings(["2600:1f18:10::/112"], 0)[0]?.reason, "IPv6Range_unicast");
    const [doc] = serviceRangeFindings(["2001:db8::/112"], 0);
    assert.equal(doc?.reason, "UnusualIPv6Range_reserved");
    assert.equal(doc?.severity, "Warning");
  });

  it("no IPv6 range is blocking", () => {
    const [none] = serviceRangeFindings(["10.96.0.0/16"], 0);
    assert.equal(none?.severity, "Blocking");
    assert.equal(none?.reason, "NoIPv6ServiceRange");
    assert.match(none?.message ?? "", /families IPv4/);
  });
});

describe("preflight: nodes", () => {
  const nodes = [
    { name: "dual", internalIPs: ["192.168.0.1", "fd00::1"], podCIDRs: ["10.244.0.0/24", "fd00:244::/64"] },
    { name: "v4", internalIPs: ["192.168.0.2"], podCIDRs: ["10.244.1.0/24"] },
    { name: "no-pod-range", internalIPs: ["192.168.0.3", "fd00::3"], podCIDRs: ["10.244.2.0/24"] },
  ];

  it("a node without an IPv6 InternalIP or IPv6 pod range is a finding", () => {
    const findings = nodeFindings(nodes);
    assert.deepEqual(
      findings.map((f) => f.object),
      ["Node/v4", "Node/no-pod-range"],
    );
    assert.match(findings[0]?.message ?? "", /has no IPv6 InternalIP and no IPv6 pod range/);
    assert.match(findings[1]?.message ?? "", /has no IPv6 pod range \(spec.podCIDRs\)/);
  });

  it("so is a selected Service with ready endpoints on such a node, and it blocks that Service", () => {
    const findings = endpointNodeFindings(
      [svc("web", { endpointNodes: ["dual", "v4"] }), svc("db", { endpointNodes: ["dual"] })],
      ipv4OnlyNodes(nodes),
    );
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.object, "Service/shop/web");
    assert.match(findings[0]?.message ?? "", /v4/);
    assert.deepEqual([...blockingByService(findings).keys()], ["shop/web"]);
  });
});

describe("preflight: NetworkPolicies", () => {
  const policy = (
    ingress: NetworkPolicyInfo["ingress"],
    egress: NetworkPolicyInfo["egress"] = [],
  ): NetworkPolicyInfo => ({
    namespace: "shop",
    name: "allow-office",
    podSelector: { matchLabels: { app: "web" } },
    ingress,
    egress,
  });

  it("an ipBlock rule with an IPv4 cidr and no IPv6 one is named by policy, direction and index", () => {
    const findings = networkPolicyFindings(
      policy(
        [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }] }, { from: [] }],
        [{ to: [] }, { to: [{ ipBlock: { cidr: "192.168.0.0/16" } }] }],
      ),
      [svc("web"), svc("db")],
    );
    assert.deepEqual(
      findings.map((f) => f.message.split(" of ")[0]),
      ["ingress[0]", "egress[1]"],
    );
    assert.deepEqual(findings[0]?.services, ["shop/web"], "only the Service whose pods the policy selects");
    assert.equal(findings[0]?.severity, "Blocking");
  });

  it("a rule with an IPv6 counterpart, or without ipBlocks, is fine", () => {
    assert.deepEqual(
      networkPolicyFindings(
        policy([{ from: [{ ipBlock: { cidr: "10.0.0.0/8" } }, { ipBlock: { cidr: "fd00::/8" } }] }, { from: [{}] }]),
        [svc("web")],
      ),
      [],
    );
  });

  it("a policy selecting no selected Service is a warning, not a block", () => {
    const findings = networkPolicyFindings(policy([{ from: [{ ipBlock: { cidr: "10.0.0.0/8" } }] }]), [svc("db")]);
    assert.equal(findings[0]?.severity, "Warning");
    assert.equal(findings[0]?.services, undefined);
  });
});

describe("preflight: hard-coded ClusterIPs", () => {
  it("finds a Service's IPv4 ClusterIP in pod env, args and ConfigMap data, naming the key", () => {
    const findings = hardcodedIPFindings(
      byClusterIP([svc("web")]),
      [
        pod("client", { values: [{ key: "container app env WEB", value: "http://10.96.0.10:80/" }] }),
        pod("other", { values: [{ key: "container app args[0]", value: "--upstream=10.96.0.100" }] }),
      ],
      [{ namespace: "shop", name: "settings", data: { "app.conf": "upstream 10.96.0.10;", other: "10.96.0.1" } }],
    );
    assert.deepEqual(
      findings.map((f) => f.object),
      ["Pod/shop/client", "ConfigMap/shop/settings"],
    );
    assert.match(findings[0]?.message ?? "", /container app env WEB/);
    assert.match(findings[1]?.message ?? "", /data\.app\.conf/);
    assert.doesNotMatch(findings[1]?.message ?? "", /data\.other/);
  });

  it("matches an address only as a whole token, and names each Service once per object, in the Services' order", () => {
    const index = byClusterIP([
      svc("web"),
      svc("db", { ipv4ClusterIP: "10.96.0.20" }),
      svc("hl", { ipv4ClusterIP: "None" }),
    ]);
    const holds = (value: string) =>
      hardcodedIPFindings(index, [pod("p", { values: [{ key: "k", value }] })], []).flatMap((f) => f.services ?? []);
    assert.deepEqual(holds("connect to 10.96.0.10."), ["shop/web"]);
    assert.deepEqual(holds("a=10.96.0.10,b=10.96.0.10"), ["shop/web"]);
    assert.deepEqual(holds("10.96.0.20 then 10.96.0.10"), ["shop/web", "shop/db"]);
    for (const miss of ["db.10.96.0.10", "x10.96.0.10", "10.96.0.10.5", "10.96.0.10a", "110.96.0.10", "None"]) {
      assert.deepEqual(holds(miss), [], miss);
    }
    const twice = hardcodedIPFindings(
      index,
      [
        pod("p", {
          values: [
            { key: "env A", value: "10.96.0.10" },
            { key: "env B", value: "10.96.0.10" },
          ],
        }),
      ],
      [],
    );
    assert.equal(twice.length, 1);
    assert.match(twice[0]?.message ?? "", /in env A, env B;/);
  });

  it("reads env values, args and commands of containers and init containers", () => {
    const info = podInfo({
      metadata: { name: "p", namespace: "shop", creationTimestamp: "2026-01-01T00:00:00Z" },
      spec: {
        containers: [{ name: "app", env: [{ name: "A", value: "1" }, { name: "B" }], args: ["x"] }],
        initContainers: [{ name: "init", command: ["sh", "-c", "y"] }],
      },
    });
    assert.deepEqual(
      info.values.map((v) => v.key),
      [
        "container app env A",
        "container app args[0]",
        "initContainer init command[0]",
        "initContainer init command[1]",
        "initContainer init command[2]",
      ],
    );
    assert.equal(info.enableServiceLinks, true);
  });
});

describe("preflight: stale service links", () => {
  it("after a cutover lists per workload the pods that started before it", () => {
    const findings = staleServiceLinkFindings(
      [svc("web", { cutoverTime: "2026-06-01T00:00:00Z" }), svc("db")],
      [
        pod("web-a", { workload: "Deployment/frontend" }),
        pod("web-b", { workload: "Deployment/frontend" }),
        pod("late", { workload: "Deployment/frontend", creationTimestamp: "2026-07-01T00:00:00Z" }),
        pod("nolinks", { workload: "Deployment/quiet", enableServiceLinks: false }),
        pod("elsewhere", { namespace: "other", workload: "Deployment/x" }),
      ],
    );
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.object, "Deployment/shop/frontend");
    assert.match(findings[0]?.message ?? "", /^2 pod\(s\) .* WEB_SERVICE_HOST/);
    assert.equal(blockingByService(findings).size, 0, "not a blocker: the cutover already happened");
  });

  it("names a Deployment from its ReplicaSet via pod-template-hash", () => {
    assert.equal(
      workloadOf({
        name: "web-7d9f8-abcde",
        labels: { "pod-template-hash": "7d9f8" },
        ownerReferences: [{ kind: "ReplicaSet", name: "web-7d9f8", controller: true }],
      }),
      "Deployment/web",
    );
    assert.equal(
      workloadOf({ name: "db-0", ownerReferences: [{ kind: "StatefulSet", name: "db" }] }),
      "StatefulSet/db",
    );
    assert.equal(workloadOf({ name: "bare" }), "Pod/bare");
  });
});

describe("preflight: IPv4 values an IPv6-only Service would keep", () => {
  it("names each field with its IPv4 values, parsed with ipaddr.js, as Blocking for that Service", () => {
    const findings = ipv4ValueFindings([
      svc("lb", {
        type: "LoadBalancer",
        externalIPs: ["203.0.113.7", "2001:db8::7", "::ffff:198.51.100.1"],
        loadBalancerSourceRanges: ["10.0.0.0/8", " 192.168.0.0/16 ", "fd00::/8"],
        loadBalancerIP: "203.0.113.10",
      }),
    ]);
    assert.deepEqual(
      findings.map((f) => [f.reason, f.severity, f.object]),
      [
        ["IPv4ExternalIPs", "Blocking", "Service/shop/lb"],
        ["IPv4LoadBalancerSourceRanges", "Blocking", "Service/shop/lb"],
        ["IPv4LoadBalancerIP", "Blocking", "Service/shop/lb"],
      ],
    );
    // An IPv4-mapped IPv6 address is IPv4 to Kubernetes; the IPv6 values are not named.
    assert.match(
      findings[0]?.message ?? "",
      /^spec.externalIPs of Service shop\/lb holds IPv4 203.0.113.7, ::ffff:198.51.100.1,/,
    );
    assert.match(findings[1]?.message ?? "", /holds IPv4 10.0.0.0\/8, 192.168.0.0\/16, .* admits no client/);
    assert.match(findings[2]?.message ?? "", /spec.loadBalancerIP of Service shop\/lb holds IPv4 203.0.113.10/);
    assert.deepEqual([...blockingByService(findings).keys()], ["shop/lb"]);
  });

  it("IPv6 values, empty fields and ExternalName Services give none", () => {
    assert.deepEqual(
      ipv4ValueFindings([
        svc("v6", {
          externalIPs: ["2001:db8::1"],
          loadBalancerSourceRanges: ["2001:db8::/32"],
          loadBalancerIP: "2001:db8::2",
        }),
        svc("none"),
        svc("en", { type: "ExternalName", externalIPs: ["203.0.113.7"] }),
      ]),
      [],
    );
  });
});
