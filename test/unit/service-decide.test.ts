// Unit tests of the pure Service decisions in src/migration/service.ts: what a Service is now, and what it
// becomes next for a plan's target. Plain objects only: no cluster, no network, no timers.
import assert from "node:assert/strict";
import {
  ADDRESSES_NOT_KEPT_ANNOTATION,
  APPLIED_ANNOTATION,
  CUTOVER_ANNOTATION,
  CUTOVER_TIME_ANNOTATION,
  HOLD_ANNOTATION,
  ORIGINAL_ANNOTATION,
  PLAN_ANNOTATION,
  STATE_LABEL,
  type TargetPhase,
} from "../../src/api/migrationplan.js";
import {
  CUTOVER_EXTERNAL_NAME,
  relaxedRestorePatch,
  restorableSpec,
  restorePatch,
  type AddressesNotKept,
  type CutoverRecord,
} from "../../src/migration/cutover.js";
import {
  clusterIPOf,
  desiredFamilies,
  familyOfIP,
  familyState,
  hasSelector,
  shapeOf,
  trimService,
  type IPFamily,
  type MergePatch,
  type Service,
  type ServicePort,
  type ServiceSpec,
} from "../../src/migration/families.js";
import {
  decide,
  lastManagerOf,
  type Decision,
  type Hold,
  type PlanSettings,
  type ServiceFacts,
} from "../../src/migration/service.js";
import { type ServiceState } from "../../src/api/migrationplan.js";
import type { KubeObject, ManagedFieldsEntry, ObjectMeta } from "../../src/runtime/object.js";

const PLAN = "shop";
const PLAN_GENERATION = 3;
const V4 = "10.96.0.10";
const V6 = "fd00:10:96::a";
const HTTP: ServicePort = { name: "http", protocol: "TCP", port: 80, targetPort: 8080 };
const HTTP_NODE: ServicePort = { ...HTTP, nodePort: 30080 };

/** The spec fields the ExternalName step of a cutover deletes (as merge-patch nulls). */
const NULLED_FOR_EXTERNAL_NAME = {
  clusterIP: null,
  clusterIPs: null,
  ipFamilies: null,
  ipFamilyPolicy: null,
  externalTrafficPolicy: null,
  internalTrafficPolicy: null,
  healthCheckNodePort: null,
  allocateLoadBalancerNodePorts: null,
  loadBalancerClass: null,
  loadBalancerSourceRanges: null,
  loadBalancerIP: null,
};

const WITH_V6: ServiceFacts = { ipv6ReadyEndpoints: 2 };
const NO_V6: ServiceFacts = { ipv6ReadyEndpoints: 0 };

function settings(target: TargetPhase, extra: Partial<PlanSettings> = {}): PlanSettings {
  return {
    plan: PLAN,
    planGeneration: PLAN_GENERATION,
    target,
    dualStackPolicy: "PreferDualStack",
    requireIPv6Endpoints: true,
    allowLoadBalancerRecreate: false,
    requirePreflight: true,
    allowControllerOwned: false,
    ...extra,
  };
}

function service(spec: ServiceSpec, meta: Partial<ObjectMeta> = {}): Service {
  return {
    metadata: { name: "web", namespace: "shop", uid: "uid-web", resourceVersion: "100", generation: 7, ...meta },
    spec,
  };
}

type Kind = "ClusterIP" | "NodePort" | "LoadBalancer";

/** An IPv4 SingleStack Service as the API server returns it. */
function ipv4Spec(type: Kind, extra: Partial<ServiceSpec> = {}): ServiceSpec {
  const spec: ServiceSpec = {
    type,
    selector: { app: "web" },
    clusterIP: V4,
    clusterIPs: [V4],
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    ports: [type === "ClusterIP" ? HTTP : HTTP_NODE],
    internalTrafficPolicy: "Cluster",
    sessionAffinity: "None",
  };
  if (type !== "ClusterIP") spec.externalTrafficPolicy = "Local";
  if (type === "LoadBalancer") {
    spec.healthCheckNodePort = 31000;
    spec.allocateLoadBalancerNodePorts = true;
  }
  return { ...spec, ...extra };
}

/** What the operator records as the original: the spec without the fields it never changes. */
function originalOf(spec: ServiceSpec): ServiceSpec {
  const rest = structuredClone(spec);
  delete rest.selector;
  delete rest.sessionAffinity;
  return rest;
}

function headlessSpec(selector: boolean, families: IPFamily[] = ["IPv4"]): ServiceSpec {
  return {
    type: "ClusterIP",
    ...(selector ? { selector: { app: "db" } } : {}),
    clusterIP: "None",
    clusterIPs: ["None"],
    ipFamilies: families,
    ipFamilyPolicy: families.length === 2 ? "PreferDualStack" : "SingleStack",
    ports: [HTTP],
  };
}

/** A Service the plan has already moved: the operator's annotations and label, and the spec it has now. */
function managed(
  original: ServiceSpec,
  applied: TargetPhase,
  state: ServiceState,
  now: Partial<ServiceSpec>,
  meta: Partial<ObjectMeta> = {},
): Service {
  const base = service({ ...original, selector: { app: "web" }, ...now }, meta);
  base.metadata.labels = { app: "web", [STATE_LABEL]: state, ...meta.labels };
  base.metadata.annotations = {
    owner: "team-a",
    [PLAN_ANNOTATION]: PLAN,
    [ORIGINAL_ANNOTATION]: JSON.stringify(originalOf(original)),
    [APPLIED_ANNOTATION]: applied,
    ...meta.annotations,
  };
  return base;
}

const DUAL_NOW: Partial<ServiceSpec> = {
  clusterIP: V4,
  clusterIPs: [V4, V6],
  ipFamilies: ["IPv4", "IPv6"],
  ipFamilyPolicy: "PreferDualStack",
};
const IPV6_NOW: Partial<ServiceSpec> = {
  clusterIP: V6,
  clusterIPs: [V6],
  ipFamilies: ["IPv6"],
  ipFamilyPolicy: "SingleStack",
};

/** A Service after DualStack: IPv4 primary kept, IPv6 secondary added. */
function dualStack(type: Kind, extra: Partial<ServiceSpec> = {}, meta: Partial<ObjectMeta> = {}): Service {
  return managed(ipv4Spec(type, extra), "DualStack", "dual-stack", DUAL_NOW, meta);
}

/** A Service after IPv6Only (through a cutover from dual-stack). */
function ipv6Only(type: Kind, meta: Partial<ObjectMeta> = {}): Service {
  return managed(ipv4Spec(type), "IPv6Only", "ipv6-only", IPV6_NOW, meta);
}

function expectAction<A extends Decision["action"]>(decision: Decision, action: A): Extract<Decision, { action: A }> {
  assert.equal(decision.action, action, `expected ${action}, got ${JSON.stringify(decision)}`);
  return decision as Extract<Decision, { action: A }>;
}

/** A copy of a patch with the operator's JSON annotations parsed, so they compare by content. */
function decoded(patch: MergePatch): unknown {
  const copy = structuredClone(patch) as { metadata?: { annotations?: Record<string, unknown> } };
  const annotations = copy.metadata?.annotations;
  for (const key of [ORIGINAL_ANNOTATION, CUTOVER_ANNOTATION, HOLD_ANNOTATION]) {
    const raw = annotations?.[key];
    if (annotations && typeof raw === "string") annotations[key] = JSON.parse(raw) as unknown;
  }
  return copy;
}

function managedMetadata(state: ServiceState, target: TargetPhase, original: ServiceSpec) {
  return {
    resourceVersion: "100",
    labels: { [STATE_LABEL]: state },
    annotations: {
      [PLAN_ANNOTATION]: PLAN,
      [APPLIED_ANNOTATION]: target,
      [ORIGINAL_ANNOTATION]: original,
      [HOLD_ANNOTATION]: null,
    },
  };
}

const CLEARED_METADATA = {
  resourceVersion: "100",
  labels: { [STATE_LABEL]: null },
  annotations: {
    [ORIGINAL_ANNOTATION]: null,
    [APPLIED_ANNOTATION]: null,
    [PLAN_ANNOTATION]: null,
    [HOLD_ANNOTATION]: null,
    [CUTOVER_TIME_ANNOTATION]: null,
  },
};

describe("migration/service: classification", () => {
  describe("shapeOf", () => {
    const cases: [string, Service, string][] = [
      ["default/kubernetes", service(ipv4Spec("ClusterIP"), { namespace: "default", name: "kubernetes" }), "APIServer"],
      ["a Service named kubernetes elsewhere", service(ipv4Spec("ClusterIP"), { name: "kubernetes" }), "ClusterIP"],
      ["a Service in default with another name", service(ipv4Spec("ClusterIP"), { namespace: "default" }), "ClusterIP"],
      ["type ClusterIP", service(ipv4Spec("ClusterIP")), "ClusterIP"],
      ["no type at all", service({ clusterIP: V4, ports: [HTTP] }), "ClusterIP"],
      ["type NodePort", service(ipv4Spec("NodePort")), "NodePort"],
      ["type LoadBalancer", service(ipv4Spec("LoadBalancer")), "LoadBalancer"],
      ["clusterIP None", service(headlessSpec(true)), "Headless"],
      ["clusterIP None without selector", service(headlessSpec(false)), "Headless"],
      ["type ExternalName", service({ type: "ExternalName", externalName: "example.invalid" }), "ExternalName"],
    ];
    for (const [what, svc, shape] of cases) {
      it(`${what} is ${shape}`, () => assert.equal(shapeOf(svc), shape));
    }
  });

  it("hasSelector is false for a missing or empty selector", () => {
    assert.equal(hasSelector(service(ipv4Spec("ClusterIP"))), true);
    assert.equal(hasSelector(service({ ...ipv4Spec("ClusterIP"), selector: {} })), false);
    assert.equal(hasSelector(service(headlessSpec(false))), false);
  });

  describe("familyState", () => {
    const cases: [string, ServiceSpec, string][] = [
      ["IPv4 SingleStack", ipv4Spec("ClusterIP"), "ipv4-only"],
      ["IPv6 SingleStack", { ipFamilies: ["IPv6"] }, "ipv6-only"],
      ["[IPv4, IPv6]", { ipFamilies: ["IPv4", "IPv6"] }, "dual-stack"],
      ["[IPv6, IPv4]", { ipFamilies: ["IPv6", "IPv4"] }, "dual-stack"],
      ["headless IPv4", headlessSpec(true), "ipv4-only"],
      ["ExternalName", { type: "ExternalName", externalName: "x.invalid" }, "no-cluster-ip"],
      ["ExternalName even with stale families", { type: "ExternalName", ipFamilies: ["IPv4"] }, "no-cluster-ip"],
      ["no ipFamilies", { type: "ClusterIP" }, "no-cluster-ip"],
      ["empty ipFamilies", { type: "ClusterIP", ipFamilies: [] }, "no-cluster-ip"],
    ];
    for (const [what, spec, state] of cases) {
      it(`${what} is ${state}`, () => assert.equal(familyState(spec), state));
    }
  });

  describe("familyOfIP and clusterIPOf", () => {
    it("parses plain IPv4 and IPv6 addresses", () => {
      assert.equal(familyOfIP("10.96.0.10"), "IPv4");
      assert.equal(familyOfIP("192.168.1.255"), "IPv4");
      assert.equal(familyOfIP("fd00:10:96::a"), "IPv6");
      assert.equal(familyOfIP("2001:db8::1"), "IPv6");
      assert.equal(familyOfIP("::1"), "IPv6");
      assert.equal(familyOfIP("FD00:10:96:0:0:0:0:A"), "IPv6");
    });

    it("an IPv4-compatible (not mapped) address ::a.b.c.d is IPv6", () => {
      assert.equal(familyOfIP("::10.96.0.10"), "IPv6");
    });

    // Kubernetes counts ::ffff:a.b.c.d as IPv4 (k8s.io/utils/net IPFamilyOf: net.IP.To4() != nil).
    it("an IPv4-mapped IPv6 address is IPv4, as Kubernetes counts it", () => {
      assert.equal(familyOfIP("::ffff:10.96.0.10"), "IPv4");
      assert.equal(familyOfIP("::FFFF:10.96.0.10"), "IPv4");
      assert.equal(familyOfIP("0:0:0:0:0:ffff:10.96.0.10"), "IPv4");
      assert.equal(familyOfIP("::ffff:a60:a"), "IPv4");
    });

    it("finds the address of each family in clusterIPs, in either order", () => {
      assert.equal(clusterIPOf({ clusterIPs: [V4, V6] }, "IPv4"), V4);
      assert.equal(clusterIPOf({ clusterIPs: [V4, V6] }, "IPv6"), V6);
      assert.equal(clusterIPOf({ clusterIPs: [V6, V4] }, "IPv4"), V4);
      assert.equal(clusterIPOf({ clusterIPs: [V6, V4] }, "IPv6"), V6);
    });

    it("returns undefined for a missing family, None, invalid entries and no clusterIPs", () => {
      assert.equal(clusterIPOf({ clusterIPs: [V4] }, "IPv6"), undefined);
      assert.equal(clusterIPOf({ clusterIPs: [V6] }, "IPv4"), undefined);
      assert.equal(clusterIPOf({ clusterIPs: ["None"] }, "IPv4"), undefined);
      assert.equal(clusterIPOf({ clusterIPs: ["None"] }, "IPv6"), undefined);
      assert.equal(clusterIPOf({ clusterIPs: ["not-an-ip", ""] }, "IPv4"), undefined);
      assert.equal(clusterIPOf({}, "IPv4"), undefined);
    });

    it("does not take clusterIP (singular) for clusterIPs", () => {
      assert.equal(clusterIPOf({ clusterIP: V4 }, "IPv4"), undefined);
    });

    // Otherwise a cutover would request an IPv4 address as the IPv6 ClusterIP.
    it("an IPv4-mapped address in clusterIPs counts as the IPv4 address", () => {
      const spec: ServiceSpec = { clusterIPs: ["::ffff:10.96.0.10", V6] };
      assert.equal(clusterIPOf(spec, "IPv4"), "::ffff:10.96.0.10");
      assert.equal(clusterIPOf(spec, "IPv6"), V6);
    });
  });

  describe("desiredFamilies", () => {
    it("Audit wants the original families, whatever they are", () => {
      assert.deepEqual(desiredFamilies("Audit", { ipFamilies: ["IPv4"] }), ["IPv4"]);
      assert.deepEqual(desiredFamilies("Audit", { ipFamilies: ["IPv6", "IPv4"] }), ["IPv6", "IPv4"]);
      assert.deepEqual(desiredFamilies("Audit", {}), []);
    });

    it("DualStack adds IPv6 beside an IPv4-only Service and leaves others as they are", () => {
      assert.deepEqual(desiredFamilies("DualStack", { ipFamilies: ["IPv4"] }), ["IPv4", "IPv6"]);
      assert.deepEqual(desiredFamilies("DualStack", { ipFamilies: ["IPv6"] }), ["IPv6"]);
      assert.deepEqual(desiredFamilies("DualStack", { ipFamilies: ["IPv4", "IPv6"] }), ["IPv4", "IPv6"]);
      assert.deepEqual(desiredFamilies("DualStack", { ipFamilies: ["IPv6", "IPv4"] }), ["IPv6", "IPv4"]);
      assert.deepEqual(desiredFamilies("DualStack", {}), []);
    });

    it("IPv6Only always wants IPv6 alone", () => {
      assert.deepEqual(desiredFamilies("IPv6Only", { ipFamilies: ["IPv4"] }), ["IPv6"]);
      assert.deepEqual(desiredFamilies("IPv6Only", { ipFamilies: ["IPv4", "IPv6"] }), ["IPv6"]);
      assert.deepEqual(desiredFamilies("IPv6Only", { ipFamilies: ["IPv6", "IPv4"] }), ["IPv6"]);
    });
  });

  it("restorableSpec keeps the fields the operator may change and drops the rest", () => {
    const spec = ipv4Spec("LoadBalancer", { loadBalancerClass: "example.com/lb", externalIPs: ["192.0.2.1"] });
    const kept = restorableSpec(spec);
    assert.deepEqual(kept, {
      type: "LoadBalancer",
      clusterIP: V4,
      clusterIPs: [V4],
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      ports: [HTTP_NODE],
      externalTrafficPolicy: "Local",
      internalTrafficPolicy: "Cluster",
      healthCheckNodePort: 31000,
      allocateLoadBalancerNodePorts: true,
      loadBalancerClass: "example.com/lb",
    });
    assert.notEqual(kept.ports, spec.ports, "a copy, not the same array");
  });
});

describe("migration/service: managedFields", () => {
  const entry = (manager: string, time: string, fields: string[], extra: Partial<ManagedFieldsEntry> = {}) => ({
    manager,
    operation: "Update",
    apiVersion: "v1",
    time,
    fieldsType: "FieldsV1",
    fieldsV1: { "f:spec": Object.fromEntries(fields.map((f) => [`f:${f}`, {}])) },
    ...extra,
  });

  describe("lastManagerOf", () => {
    const FIELDS = ["ipFamilies", "ipFamilyPolicy", "clusterIPs", "type"];

    it("names the most recent manager of one of the fields, never the operator", () => {
      const entries: ManagedFieldsEntry[] = [
        entry("helm", "2024-05-01T10:00:00Z", ["ipFamilies", "ports"]),
        entry("argocd-controller", "2024-05-02T10:00:00Z", ["ipFamilyPolicy"]),
        entry("ipv6-migration-operator", "2024-05-03T10:00:00Z", ["ipFamilyPolicy", "ipFamilies"]),
        entry("kubectl-edit", "2024-05-04T10:00:00Z", ["ports", "selector"]),
      ];
      assert.equal(lastManagerOf(entries, FIELDS), "argocd-controller");
    });

    it("only counts the fields asked about", () => {
      const entries: ManagedFieldsEntry[] = [
        entry("helm", "2024-05-01T10:00:00Z", ["type"]),
        entry("argocd-controller", "2024-05-02T10:00:00Z", ["clusterIPs"]),
      ];
      assert.equal(lastManagerOf(entries, ["type"]), "helm");
      assert.equal(lastManagerOf(entries, ["clusterIPs"]), "argocd-controller");
      assert.equal(lastManagerOf(entries, ["ports"]), undefined);
    });

    it("skips entries without a manager or without spec fields, and answers undefined for none", () => {
      const entries: ManagedFieldsEntry[] = [
        { operation: "Update", time: "2024-05-09T00:00:00Z", fieldsV1: { "f:spec": { "f:ipFamilies": {} } } },
        { manager: "labeler", time: "2024-05-09T00:00:00Z", fieldsV1: { "f:metadata": { "f:labels": {} } } },
        { manager: "status-writer", time: "2024-05-09T00:00:00Z" },
      ];
      assert.equal(lastManagerOf(entries, FIELDS), undefined);
      assert.equal(lastManagerOf(undefined, FIELDS), undefined);
      assert.equal(lastManagerOf([], FIELDS), undefined);
    });

    it("prefers an entry with a time over one without", () => {
      const entries: ManagedFieldsEntry[] = [
        entry("timed", "2024-05-01T10:00:00Z", ["ipFamilies"]),
        { manager: "untimed", fieldsV1: { "f:spec": { "f:ipFamilies": {} } } },
      ];
      assert.equal(lastManagerOf(entries, FIELDS), "timed");
    });
  });

  describe("trimService", () => {
    it("keeps the metadata the engine reads: the family-related managedFields, the controller's reference, the annotations read", () => {
      const raw: KubeObject & { spec?: ServiceSpec } = {
        apiVersion: "v1",
        kind: "Service",
        metadata: {
          name: "web",
          namespace: "shop",
          uid: "uid-web",
          resourceVersion: "42",
          generation: 5,
          creationTimestamp: "2024-01-01T00:00:00Z",
          labels: { app: "web" },
          annotations: {
            owner: "team-a",
            "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1","kind":"Service"}',
            "meta.helm.sh/release-name": "web",
            "ipv6migration.io/plan": "p",
          },
          ownerReferences: [
            { apiVersion: "v1", kind: "ConfigMap", name: "x", uid: "u" },
            { apiVersion: "postgresql.cnpg.io/v1", kind: "Cluster", name: "db", uid: "c", controller: true },
          ],
          finalizers: ["example.com/keep"],
          managedFields: [
            entry("helm", "2024-05-01T10:00:00Z", ["ipFamilies", "ports", "selector", "type"]),
            entry("kubectl-edit", "2024-05-02T10:00:00Z", ["ports", "sessionAffinity"]),
            entry("argocd-controller", "2024-05-03T10:00:00Z", ["ipFamilyPolicy", "clusterIPs"], {
              subresource: "",
            }),
            { manager: "labeler", operation: "Apply", fieldsV1: { "f:metadata": { "f:labels": {} } } },
          ],
        },
        spec: ipv4Spec("ClusterIP"),
      };
      const trimmed = trimService(raw);
      assert.deepEqual(trimmed, {
        metadata: {
          name: "web",
          namespace: "shop",
          uid: "uid-web",
          resourceVersion: "42",
          generation: 5,
          creationTimestamp: "2024-01-01T00:00:00Z",
          labels: { app: "web" },
          annotations: { "meta.helm.sh/release-name": "web", "ipv6migration.io/plan": "p" },
          ownerReferences: [
            { apiVersion: "postgresql.cnpg.io/v1", kind: "Cluster", name: "db", uid: "c", controller: true },
          ],
          managedFields: [
            {
              manager: "helm",
              operation: "Update",
              time: "2024-05-01T10:00:00Z",
              fieldsV1: { "f:spec": { "f:ipFamilies": {}, "f:type": {} } },
            },
            {
              manager: "argocd-controller",
              operation: "Update",
              time: "2024-05-03T10:00:00Z",
              fieldsV1: { "f:spec": { "f:ipFamilyPolicy": {}, "f:clusterIPs": {} } },
            },
          ],
        },
        spec: ipv4Spec("ClusterIP"),
      });
      assert.equal(lastManagerOf(trimmed.metadata.managedFields, ["ipFamilyPolicy"]), "argocd-controller");
    });

    it("gives an empty spec and no managedFields when the object has neither", () => {
      const trimmed = trimService({ metadata: { name: "bare", namespace: "shop" } });
      assert.deepEqual(trimmed.spec, {});
      assert.equal(trimmed.metadata.managedFields, undefined);
      assert.equal(trimmed.metadata.ownerReferences, undefined);
      assert.equal(trimmed.metadata.annotations, undefined);
    });
  });
});

describe("migration/service: decide", () => {
  describe("what is never moved", () => {
    for (const target of ["Audit", "DualStack", "IPv6Only"] as const) {
      it(`default/kubernetes is skipped (${target})`, () => {
        const svc = service(ipv4Spec("ClusterIP", { selector: undefined }), {
          namespace: "default",
          name: "kubernetes",
        });
        assert.deepEqual(decide(svc, settings(target), WITH_V6), {
          action: "skip",
          reason: "APIServerOwned",
          message: "default/kubernetes belongs to the API server",
        });
      });

      it(`an ExternalName Service is skipped (${target})`, () => {
        const svc = service({ type: "ExternalName", externalName: "db.example.com" });
        assert.deepEqual(decide(svc, settings(target), WITH_V6), {
          action: "skip",
          reason: "ExternalName",
          message: "an ExternalName Service has no ClusterIP to move",
        });
      });
    }

    it("Audit writes nothing on a Service the operator never touched, whatever its families", () => {
      assert.deepEqual(decide(service(ipv4Spec("NodePort")), settings("Audit"), WITH_V6), {
        action: "none",
        state: "ipv4-only",
      });
      assert.deepEqual(decide(service({ ...ipv4Spec("ClusterIP"), ...DUAL_NOW }), settings("Audit"), WITH_V6), {
        action: "none",
        state: "dual-stack",
      });
      assert.deepEqual(decide(service(headlessSpec(false)), settings("Audit"), NO_V6), {
        action: "none",
        state: "ipv4-only",
      });
    });
  });

  describe("IPv4 SingleStack -> DualStack", () => {
    for (const type of ["ClusterIP", "NodePort", "LoadBalancer"] as const) {
      it(`${type}: one merge patch of ipFamilyPolicy only, with the original and the state recorded`, () => {
        const spec = ipv4Spec(type);
        const svc = service(spec, { labels: { app: "web" } });
        const d = expectAction(decide(svc, settings("DualStack"), NO_V6), "patch");
        assert.deepEqual(decoded(d.patch), {
          metadata: managedMetadata("dual-stack", "DualStack", originalOf(spec)),
          spec: { ipFamilyPolicy: "PreferDualStack" },
        });
        assert.deepEqual(d.expect, ["IPv4", "IPv6"]);
        assert.equal(d.state, "dual-stack");
        assert.equal(d.description, "ipv4-only -> dual-stack");
      });
    }

    it("uses the plan's RequireDualStack policy", () => {
      const d = expectAction(
        decide(service(ipv4Spec("ClusterIP")), settings("DualStack", { dualStackPolicy: "RequireDualStack" }), NO_V6),
        "patch",
      );
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "RequireDualStack" });
    });

    it("the original annotation is exactly the restorable spec as it was", () => {
      const d = expectAction(decide(service(ipv4Spec("NodePort")), settings("DualStack"), NO_V6), "patch");
      const annotations = (d.patch.metadata as { annotations: Record<string, string> }).annotations;
      assert.deepEqual(JSON.parse(annotations[ORIGINAL_ANNOTATION] ?? "null"), {
        type: "NodePort",
        clusterIP: V4,
        clusterIPs: [V4],
        ipFamilies: ["IPv4"],
        ipFamilyPolicy: "SingleStack",
        ports: [HTTP_NODE],
        externalTrafficPolicy: "Local",
        internalTrafficPolicy: "Cluster",
      });
    });

    it("a selector-less Service without IPv6 endpoints still gets IPv6 beside IPv4 (no IPv6-primary gate)", () => {
      const spec = ipv4Spec("ClusterIP", { selector: undefined });
      const d = expectAction(decide(service(spec), settings("DualStack"), NO_V6), "patch");
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "PreferDualStack" });
      assert.deepEqual(d.expect, ["IPv4", "IPv6"]);
    });

    for (const selector of [true, false]) {
      it(`headless ${selector ? "with" : "without"} selector: families set outright, no clusterIPs`, () => {
        const spec = headlessSpec(selector);
        const d = expectAction(decide(service(spec), settings("DualStack"), NO_V6), "patch");
        assert.deepEqual(decoded(d.patch), {
          metadata: managedMetadata("dual-stack", "DualStack", originalOf(spec)),
          spec: { ipFamilyPolicy: "PreferDualStack", ipFamilies: ["IPv4", "IPv6"] },
        });
        assert.deepEqual(d.expect, ["IPv4", "IPv6"]);
      });
    }

    it("an IPv6 SingleStack Service is already where DualStack wants it", () => {
      const svc = service({ ...ipv4Spec("ClusterIP"), ...IPV6_NOW });
      assert.deepEqual(decide(svc, settings("DualStack"), WITH_V6), { action: "none", state: "ipv6-only" });
    });

    it("a Service the plan already made dual-stack needs nothing more", () => {
      assert.deepEqual(decide(dualStack("NodePort"), settings("DualStack"), NO_V6), {
        action: "none",
        state: "dual-stack",
      });
    });

    it("a changed dualStack.ipFamilyPolicy is patched onto Services already moved", () => {
      const svc = dualStack("ClusterIP");
      const d = expectAction(
        decide(svc, settings("DualStack", { dualStackPolicy: "RequireDualStack" }), NO_V6),
        "patch",
      );
      assert.deepEqual(decoded(d.patch), {
        metadata: managedMetadata("dual-stack", "DualStack", originalOf(ipv4Spec("ClusterIP"))),
        spec: { ipFamilyPolicy: "RequireDualStack" },
      });
      assert.equal(d.description, "ipFamilyPolicy PreferDualStack -> RequireDualStack");
    });

    it("a Service at the target without the applied annotation gets its state recorded (metadata only)", () => {
      const svc = dualStack("ClusterIP");
      delete svc.metadata.annotations?.[APPLIED_ANNOTATION];
      const d = expectAction(decide(svc, settings("DualStack"), NO_V6), "patch");
      assert.deepEqual(decoded(d.patch), {
        metadata: managedMetadata("dual-stack", "DualStack", originalOf(ipv4Spec("ClusterIP"))),
      });
      assert.equal(d.description, "record state");
      assert.deepEqual(d.expect, ["IPv4", "IPv6"]);
    });
  });

  describe("dual-stack [IPv4, IPv6] -> IPv6Only", () => {
    it("ClusterIP: a cutover through ExternalName that re-requests the current IPv6 address", () => {
      const svc = dualStack("ClusterIP");
      const d = expectAction(decide(svc, settings("IPv6Only"), WITH_V6), "cutover");
      const record: CutoverRecord = {
        restore: {
          type: "ClusterIP",
          clusterIP: V6,
          clusterIPs: [V6],
          ipFamilies: ["IPv6"],
          ipFamilyPolicy: "SingleStack",
          ports: [HTTP],
          internalTrafficPolicy: "Cluster",
        },
        snapshot: {
          type: "ClusterIP",
          clusterIP: V4,
          clusterIPs: [V4, V6],
          ipFamilies: ["IPv4", "IPv6"],
          ipFamilyPolicy: "PreferDualStack",
          ports: [HTTP],
          internalTrafficPolicy: "Cluster",
        },
        state: "ipv6-only",
        applied: "IPv6Only",
        plan: PLAN,
      };
      assert.deepEqual(d.record, record);
      assert.deepEqual(d.expect, ["IPv6"]);
      assert.equal(d.description, "dual-stack -> ipv6-only (cutover)");
      assert.deepEqual(decoded(d.toExternalName), {
        metadata: {
          resourceVersion: "100",
          labels: { [STATE_LABEL]: "cutting-over" },
          annotations: {
            [PLAN_ANNOTATION]: PLAN,
            [ORIGINAL_ANNOTATION]: originalOf(ipv4Spec("ClusterIP")),
            [CUTOVER_ANNOTATION]: record,
            [HOLD_ANNOTATION]: null,
          },
        },
        spec: {
          type: "ExternalName",
          externalName: CUTOVER_EXTERNAL_NAME,
          ...NULLED_FOR_EXTERNAL_NAME,
          ports: [HTTP],
        },
      });
    });

    it("NodePort: the restore keeps nodePorts and traffic policy; the ExternalName patch strips nodePorts", () => {
      const d = expectAction(decide(dualStack("NodePort"), settings("IPv6Only"), WITH_V6), "cutover");
      assert.deepEqual(d.record.restore, {
        type: "NodePort",
        clusterIP: V6,
        clusterIPs: [V6],
        ipFamilies: ["IPv6"],
        ipFamilyPolicy: "SingleStack",
        ports: [HTTP_NODE],
        externalTrafficPolicy: "Local",
        internalTrafficPolicy: "Cluster",
      });
      assert.equal(d.record.restore.clusterIPs?.[0], V6, "the current IPv6 ClusterIP is requested first");
      assert.deepEqual(d.toExternalName.spec, {
        type: "ExternalName",
        externalName: CUTOVER_EXTERNAL_NAME,
        ...NULLED_FOR_EXTERNAL_NAME,
        ports: [HTTP],
      });
      const annotations = (d.toExternalName.metadata as { annotations: Record<string, string> }).annotations;
      const carried = JSON.parse(annotations[CUTOVER_ANNOTATION] ?? "{}") as CutoverRecord;
      assert.deepEqual(carried.restore, d.record.restore);
      assert.deepEqual(carried.snapshot, d.record.snapshot);
      assert.deepEqual(carried.snapshot.ports, [HTTP_NODE], "the snapshot keeps nodePorts too");
    });

    it("the cutover patch does not modify the Service it was decided from", () => {
      const svc = dualStack("NodePort");
      const before = structuredClone(svc);
      decide(svc, settings("IPv6Only"), WITH_V6);
      assert.deepEqual(svc, before);
    });

    it("LoadBalancer without allowLoadBalancerRecreate is blocked", () => {
      assert.deepEqual(decide(dualStack("LoadBalancer"), settings("IPv6Only"), WITH_V6), {
        action: "block",
        reason: "LoadBalancerRecreateNotAllowed",
        message:
          "changing the primary family of a LoadBalancer Service recreates its cloud load balancer; set spec.ipv6Only.allowLoadBalancerRecreate to allow it",
      });
    });

    it("a Service with a controlling ownerReference is blocked, and cuts over with allowControllerOwned", () => {
      const svc = dualStack("ClusterIP");
      svc.metadata.ownerReferences = [
        { apiVersion: "v1", kind: "ConfigMap", name: "not-the-controller", uid: "u1" },
        { apiVersion: "postgresql.cnpg.io/v1", kind: "Cluster", name: "db", uid: "u2", controller: true },
      ];
      assert.deepEqual(decide(svc, settings("IPv6Only"), WITH_V6), {
        action: "block",
        reason: "ControllerOwned",
        message:
          "controlled by Cluster db, which may revert it or re-create it mid-cutover; set spec.ipv6Only.allowControllerOwned to cut it over anyway",
      });
      expectAction(decide(svc, settings("IPv6Only", { allowControllerOwned: true }), WITH_V6), "cutover");
      // Not a preflight finding's gate: turning requirePreflight off does not let it through.
      assert.equal(decide(svc, settings("IPv6Only", { requirePreflight: false }), WITH_V6).action, "block");
      // Going dual-stack keeps the IPv4 address the controller knows: not gated.
      const v4 = service(ipv4Spec("ClusterIP"), { ownerReferences: svc.metadata.ownerReferences });
      assert.equal(decide(v4, settings("DualStack"), WITH_V6).action, "patch");
    });

    it("an ownerReference that is not the controller does not block", () => {
      const svc = dualStack("ClusterIP");
      svc.metadata.ownerReferences = [{ apiVersion: "v1", kind: "ConfigMap", name: "x", uid: "u1" }];
      expectAction(decide(svc, settings("IPv6Only"), WITH_V6), "cutover");
    });

    it("LoadBalancer with allowLoadBalancerRecreate cuts over and keeps its load-balancer fields in the restore", () => {
      const svc = dualStack("LoadBalancer", {
        loadBalancerClass: "example.com/lb",
        loadBalancerSourceRanges: ["203.0.113.0/24"],
      });
      const d = expectAction(
        decide(svc, settings("IPv6Only", { allowLoadBalancerRecreate: true }), WITH_V6),
        "cutover",
      );
      assert.deepEqual(d.record.restore, {
        type: "LoadBalancer",
        clusterIP: V6,
        clusterIPs: [V6],
        ipFamilies: ["IPv6"],
        ipFamilyPolicy: "SingleStack",
        ports: [HTTP_NODE],
        externalTrafficPolicy: "Local",
        internalTrafficPolicy: "Cluster",
        healthCheckNodePort: 31000,
        allocateLoadBalancerNodePorts: true,
        loadBalancerClass: "example.com/lb",
        loadBalancerSourceRanges: ["203.0.113.0/24"],
      });
      assert.deepEqual(d.toExternalName.spec, {
        type: "ExternalName",
        externalName: CUTOVER_EXTERNAL_NAME,
        ...NULLED_FOR_EXTERNAL_NAME,
        ports: [HTTP],
      });
    });

    it("with a selector and requireIPv6Endpoints, waits for a ready IPv6 endpoint", () => {
      assert.deepEqual(decide(dualStack("ClusterIP"), settings("IPv6Only"), NO_V6), {
        action: "block",
        reason: "WaitingForIPv6Endpoints",
        message: "no ready endpoint in an EndpointSlice of addressType IPv6 (spec.ipv6Only.requireIPv6Endpoints)",
      });
    });

    it("with a selector and requireIPv6Endpoints false, moves without IPv6 endpoints", () => {
      const d = decide(dualStack("ClusterIP"), settings("IPv6Only", { requireIPv6Endpoints: false }), NO_V6);
      assert.equal(expectAction(d, "cutover").record.restore.clusterIP, V6);
    });

    it("a selector-less Service without IPv6 endpoints is skipped, even with requireIPv6Endpoints false", () => {
      const svc = dualStack("ClusterIP");
      delete svc.spec.selector;
      const expected = {
        action: "skip",
        reason: "SelectorlessWithoutIPv6Endpoints",
        message: "a Service without a selector has hand-made endpoints, and none of them is IPv6",
      };
      assert.deepEqual(decide(svc, settings("IPv6Only"), NO_V6), expected);
      assert.deepEqual(decide(svc, settings("IPv6Only", { requireIPv6Endpoints: false }), NO_V6), expected);
    });

    it("a selector-less Service with IPv6 endpoints cuts over", () => {
      const svc = dualStack("ClusterIP");
      delete svc.spec.selector;
      const d = expectAction(decide(svc, settings("IPv6Only"), { ipv6ReadyEndpoints: 1 }), "cutover");
      assert.deepEqual(d.record.restore.clusterIPs, [V6]);
    });

    it("IPv4 SingleStack straight to IPv6Only cuts over without requesting an address", () => {
      const spec = ipv4Spec("NodePort");
      const d = expectAction(decide(service(spec), settings("IPv6Only"), WITH_V6), "cutover");
      assert.deepEqual(d.record.restore, {
        type: "NodePort",
        ipFamilies: ["IPv6"],
        ipFamilyPolicy: "SingleStack",
        ports: [HTTP_NODE],
        externalTrafficPolicy: "Local",
        internalTrafficPolicy: "Cluster",
      });
      assert.equal(d.description, "ipv4-only -> ipv6-only (cutover)");
      const annotations = (d.toExternalName.metadata as { annotations: Record<string, string> }).annotations;
      assert.deepEqual(JSON.parse(annotations[ORIGINAL_ANNOTATION] ?? "null"), originalOf(spec));
    });

    it("a Service already IPv6Only needs nothing", () => {
      assert.deepEqual(decide(ipv6Only("NodePort"), settings("IPv6Only"), NO_V6), {
        action: "none",
        state: "ipv6-only",
      });
    });
  });

  describe("in-place moves to IPv6Only", () => {
    it("dual-stack [IPv6, IPv4] drops the secondary in place, keeping the IPv6 ClusterIP", () => {
      const spec: ServiceSpec = {
        ...ipv4Spec("NodePort"),
        clusterIP: V6,
        clusterIPs: [V6, V4],
        ipFamilies: ["IPv6", "IPv4"],
        ipFamilyPolicy: "PreferDualStack",
      };
      const d = expectAction(decide(service(spec), settings("IPv6Only"), NO_V6), "patch");
      assert.deepEqual(decoded(d.patch), {
        metadata: managedMetadata("ipv6-only", "IPv6Only", originalOf(spec)),
        spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], clusterIPs: [V6] },
      });
      assert.deepEqual(d.expect, ["IPv6"]);
      assert.equal(d.state, "ipv6-only");
      assert.equal(d.description, "dual-stack -> ipv6-only");
    });

    it("a LoadBalancer [IPv6, IPv4] is patched in place even without allowLoadBalancerRecreate", () => {
      const spec: ServiceSpec = {
        ...ipv4Spec("LoadBalancer"),
        clusterIP: V6,
        clusterIPs: [V6, V4],
        ipFamilies: ["IPv6", "IPv4"],
        ipFamilyPolicy: "RequireDualStack",
      };
      const d = expectAction(decide(service(spec), settings("IPv6Only"), WITH_V6), "patch");
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], clusterIPs: [V6] });
    });

    it("headless with a selector changes family in one patch, without clusterIPs", () => {
      const spec = headlessSpec(true, ["IPv4", "IPv6"]);
      const d = expectAction(decide(service(spec), settings("IPv6Only"), WITH_V6), "patch");
      assert.deepEqual(decoded(d.patch), {
        metadata: managedMetadata("ipv6-only", "IPv6Only", originalOf(spec)),
        spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"] },
      });
      assert.deepEqual(d.expect, ["IPv6"]);
    });

    it("headless IPv4 SingleStack also moves in place (no cutover)", () => {
      const d = expectAction(decide(service(headlessSpec(true)), settings("IPv6Only"), WITH_V6), "patch");
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"] });
      assert.equal(d.description, "ipv4-only -> ipv6-only");
    });

    it("headless with a selector waits for IPv6 endpoints when required", () => {
      const d = expectAction(decide(service(headlessSpec(true)), settings("IPv6Only"), NO_V6), "block");
      assert.equal(d.reason, "WaitingForIPv6Endpoints");
    });

    it("headless without a selector: skipped without IPv6 endpoints, moved in place with them", () => {
      const svc = service(headlessSpec(false));
      const skipped = expectAction(decide(svc, settings("IPv6Only"), NO_V6), "skip");
      assert.equal(skipped.reason, "SelectorlessWithoutIPv6Endpoints");
      const d = expectAction(decide(svc, settings("IPv6Only"), WITH_V6), "patch");
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"] });
    });
  });

  describe("rollback to Audit", () => {
    it("IPv6Only -> Audit: a cutover whose restore re-requests the original IPv4 ClusterIP", () => {
      const svc = ipv6Only("NodePort");
      const original = originalOf(ipv4Spec("NodePort"));
      const d = expectAction(decide(svc, settings("Audit"), NO_V6), "cutover");
      const record: CutoverRecord = {
        restore: original,
        snapshot: {
          type: "NodePort",
          clusterIP: V6,
          clusterIPs: [V6],
          ipFamilies: ["IPv6"],
          ipFamilyPolicy: "SingleStack",
          ports: [HTTP_NODE],
          externalTrafficPolicy: "Local",
          internalTrafficPolicy: "Cluster",
        },
        state: "ipv4-only",
        applied: "Audit",
        plan: PLAN,
      };
      assert.deepEqual(d.record, record);
      assert.equal(d.record.restore.clusterIP, V4);
      assert.deepEqual(d.record.restore.clusterIPs, [V4]);
      assert.deepEqual(d.expect, ["IPv4"]);
      assert.equal(d.description, "ipv6-only -> original (cutover)");
      assert.deepEqual(decoded(d.toExternalName), {
        metadata: {
          resourceVersion: "100",
          labels: { [STATE_LABEL]: "cutting-over" },
          annotations: {
            [PLAN_ANNOTATION]: PLAN,
            [ORIGINAL_ANNOTATION]: original,
            [CUTOVER_ANNOTATION]: record,
            [HOLD_ANNOTATION]: null,
          },
        },
        spec: {
          type: "ExternalName",
          externalName: CUTOVER_EXTERNAL_NAME,
          ...NULLED_FOR_EXTERNAL_NAME,
          ports: [HTTP],
        },
      });
    });

    it("IPv6Only -> Audit of a LoadBalancer without allowLoadBalancerRecreate is blocked", () => {
      assert.deepEqual(decide(ipv6Only("LoadBalancer"), settings("Audit"), NO_V6), {
        action: "block",
        reason: "LoadBalancerRecreateNotAllowed",
        message: "restoring the primary family of a LoadBalancer Service recreates its load balancer",
      });
    });

    it("IPv6Only -> Audit of a LoadBalancer with allowLoadBalancerRecreate cuts over to the original", () => {
      const d = decide(ipv6Only("LoadBalancer"), settings("Audit", { allowLoadBalancerRecreate: true }), NO_V6);
      assert.deepEqual(expectAction(d, "cutover").record.restore, originalOf(ipv4Spec("LoadBalancer")));
    });

    it("IPv6Only -> DualStack cuts over, requesting the original IPv4 and the current IPv6 address", () => {
      const d = expectAction(decide(ipv6Only("ClusterIP"), settings("DualStack"), NO_V6), "cutover");
      assert.deepEqual(d.record.restore.clusterIPs, [V4, V6]);
      assert.equal(d.record.restore.clusterIP, V4);
      assert.deepEqual(d.record.restore.ipFamilies, ["IPv4", "IPv6"]);
      assert.equal(d.record.restore.ipFamilyPolicy, "PreferDualStack");
      assert.equal(d.record.state, "dual-stack");
      assert.equal(d.record.applied, "DualStack");
    });

    it("headless IPv6Only -> Audit is one in-place patch back to the original families", () => {
      const spec = headlessSpec(true);
      const svc = managed(spec, "IPv6Only", "ipv6-only", { ipFamilies: ["IPv6"], ipFamilyPolicy: "SingleStack" });
      const d = expectAction(decide(svc, settings("Audit"), NO_V6), "patch");
      assert.deepEqual(decoded(d.patch), {
        metadata: CLEARED_METADATA,
        spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"] },
      });
      assert.deepEqual(d.expect, ["IPv4"]);
    });

    for (const type of ["ClusterIP", "NodePort", "LoadBalancer"] as const) {
      it(`${type} DualStack -> Audit: in place, original policy/families/clusterIPs back and no operator metadata`, () => {
        const d = expectAction(decide(dualStack(type), settings("Audit"), NO_V6), "patch");
        assert.deepEqual(decoded(d.patch), {
          metadata: CLEARED_METADATA,
          spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv4"], clusterIPs: [V4] },
        });
        assert.deepEqual(d.expect, ["IPv4"]);
        assert.equal(d.state, "ipv4-only");
        assert.equal(d.description, "dual-stack -> original (ipv4-only)");
      });
    }
  });

  describe("a cutover in flight", () => {
    function midCutover(record: CutoverRecord, extra: Record<string, string> = {}): Service {
      return service(
        { type: "ExternalName", externalName: CUTOVER_EXTERNAL_NAME, ports: [HTTP] },
        {
          labels: { [STATE_LABEL]: "cutting-over" },
          annotations: {
            [PLAN_ANNOTATION]: PLAN,
            [ORIGINAL_ANNOTATION]: JSON.stringify(originalOf(ipv4Spec("ClusterIP"))),
            [APPLIED_ANNOTATION]: "DualStack",
            [CUTOVER_ANNOTATION]: JSON.stringify(record),
            ...extra,
          },
        },
      );
    }
    const record: CutoverRecord = {
      restore: {
        type: "ClusterIP",
        clusterIP: V6,
        clusterIPs: [V6],
        ipFamilies: ["IPv6"],
        ipFamilyPolicy: "SingleStack",
      },
      snapshot: { type: "ClusterIP", clusterIP: V4, clusterIPs: [V4, V6], ipFamilies: ["IPv4", "IPv6"] },
      state: "ipv6-only",
      applied: "IPv6Only",
      plan: PLAN,
    };

    for (const target of ["Audit", "DualStack", "IPv6Only"] as const) {
      it(`an ExternalName Service carrying the cutover record is resumed (${target})`, () => {
        assert.deepEqual(decide(midCutover(record), settings(target), NO_V6), { action: "resume", record });
      });
    }

    it("is resumed even when a current hold says to wait", () => {
      const hold: Hold = {
        kind: "Failed",
        generation: 7,
        planGeneration: PLAN_GENERATION,
        reason: "CutoverRefused",
        message: "refused",
      };
      const svc = midCutover(record, { [HOLD_ANNOTATION]: JSON.stringify(hold) });
      assert.deepEqual(decide(svc, settings("IPv6Only"), NO_V6), { action: "resume", record });
    });

    it("a cutover annotation on a Service that is not ExternalName does not resume", () => {
      const svc = ipv6Only("ClusterIP", { annotations: { [CUTOVER_ANNOTATION]: JSON.stringify(record) } });
      assert.deepEqual(decide(svc, settings("IPv6Only"), NO_V6), { action: "none", state: "ipv6-only" });
    });

    it("an unreadable cutover annotation reads as absent", () => {
      const svc = midCutover(record, { [CUTOVER_ANNOTATION]: "{not json" });
      assert.notEqual(decide(svc, settings("IPv6Only"), WITH_V6).action, "resume");
    });
  });

  describe("drift and holds", () => {
    const managedFields: ManagedFieldsEntry[] = [
      {
        manager: "helm",
        operation: "Update",
        time: "2024-05-01T10:00:00Z",
        fieldsV1: { "f:spec": { "f:ipFamilies": {}, "f:type": {} } },
      },
      {
        manager: "ipv6-migration-operator",
        operation: "Update",
        time: "2024-05-02T10:00:00Z",
        fieldsV1: { "f:spec": { "f:ipFamilyPolicy": {} } },
      },
      {
        manager: "argocd-controller",
        operation: "Apply",
        time: "2024-05-03T10:00:00Z",
        fieldsV1: { "f:spec": { "f:ipFamilyPolicy": {}, "f:clusterIPs": {} } },
      },
    ];
    /** Applied says DualStack, but someone put ipFamilies back to [IPv4]. */
    function drifted(meta: Partial<ObjectMeta> = {}): Service {
      return managed(
        ipv4Spec("ClusterIP"),
        "DualStack",
        "dual-stack",
        { ipFamilies: ["IPv4"], ipFamilyPolicy: "SingleStack", clusterIPs: [V4] },
        { managedFields, ...meta },
      );
    }
    const driftHold: Hold = {
      kind: "Drifted",
      generation: 7,
      planGeneration: PLAN_GENERATION,
      reason: "ChangedByAnotherManager",
      message: 'ipFamilies is ["IPv4"], not ["IPv4","IPv6"] as the plan left it',
      manager: "argocd-controller",
    };

    for (const target of ["DualStack", "IPv6Only", "Audit"] as const) {
      it(`a Service changed back by another manager is held as Drifted, naming that manager (${target})`, () => {
        assert.deepEqual(decide(drifted(), settings(target), WITH_V6), { action: "hold", hold: driftHold });
      });
    }

    it("the drift hold has no manager when only the operator wrote the fields", () => {
      const svc = drifted({ managedFields: managedFields.slice(1, 2) });
      const d = expectAction(decide(svc, settings("DualStack"), WITH_V6), "hold");
      assert.equal(d.hold.manager, undefined);
      assert.equal(d.hold.kind, "Drifted");
    });

    it("a recorded hold for this Service generation and plan generation holds (no write)", () => {
      const svc = drifted({ annotations: { [HOLD_ANNOTATION]: JSON.stringify(driftHold) } });
      assert.deepEqual(decide(svc, settings("DualStack"), WITH_V6), { action: "hold", hold: driftHold });
    });

    it("a recorded hold holds even a Service that would otherwise be moved", () => {
      const failed: Hold = {
        kind: "Failed",
        generation: 7,
        planGeneration: PLAN_GENERATION,
        reason: "CutoverRefused",
        message: "the API server refused the new families",
      };
      const svc = dualStack("ClusterIP", {}, { annotations: { [HOLD_ANNOTATION]: JSON.stringify(failed) } });
      assert.deepEqual(decide(svc, settings("IPv6Only"), WITH_V6), { action: "hold", hold: failed });
    });

    it("after the Service changes (new generation), a recorded hold no longer holds: the plan applies again", () => {
      const svc = drifted({ generation: 8, annotations: { [HOLD_ANNOTATION]: JSON.stringify(driftHold) } });
      const d = expectAction(decide(svc, settings("DualStack"), WITH_V6), "patch");
      assert.deepEqual(decoded(d.patch), {
        metadata: managedMetadata("dual-stack", "DualStack", originalOf(ipv4Spec("ClusterIP"))),
        spec: { ipFamilyPolicy: "PreferDualStack" },
      });
    });

    it("after the plan changes (new plan generation), a recorded hold no longer holds", () => {
      const svc = drifted({ annotations: { [HOLD_ANNOTATION]: JSON.stringify(driftHold) } });
      const d = expectAction(
        decide(svc, settings("DualStack", { planGeneration: PLAN_GENERATION + 1 }), NO_V6),
        "patch",
      );
      assert.deepEqual(d.patch.spec, { ipFamilyPolicy: "PreferDualStack" });
    });

    it("an unreadable hold annotation reads as absent", () => {
      const svc = drifted({ annotations: { [HOLD_ANNOTATION]: "oops" } });
      assert.deepEqual(decide(svc, settings("DualStack"), WITH_V6), { action: "hold", hold: driftHold });
    });
  });
});

describe("migration/service: restorePatch", () => {
  const restore: ServiceSpec = {
    type: "NodePort",
    clusterIP: V4,
    clusterIPs: [V4],
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    ports: [HTTP_NODE],
    externalTrafficPolicy: "Local",
  };
  const snapshot: ServiceSpec = { type: "NodePort", clusterIP: V6, clusterIPs: [V6], ipFamilies: ["IPv6"] };
  const record = (applied: TargetPhase, state: ServiceState): CutoverRecord => ({
    restore,
    snapshot,
    state,
    applied,
    plan: PLAN,
  });

  it("the final restore of an Audit rollback removes every operator annotation and the state label", () => {
    assert.deepEqual(restorePatch(record("Audit", "ipv4-only"), restore, true), {
      metadata: {
        labels: { [STATE_LABEL]: null },
        annotations: {
          [CUTOVER_ANNOTATION]: null,
          [ORIGINAL_ANNOTATION]: null,
          [APPLIED_ANNOTATION]: null,
          [PLAN_ANNOTATION]: null,
          [HOLD_ANNOTATION]: null,
          [CUTOVER_TIME_ANNOTATION]: null,
        },
      },
      spec: { externalName: null, ...restore },
    });
  });

  for (const [applied, state] of [
    ["IPv6Only", "ipv6-only"],
    ["DualStack", "dual-stack"],
  ] as const) {
    it(`the final restore for ${applied} records the target and state and keeps the original`, () => {
      assert.deepEqual(restorePatch(record(applied, state), restore, true), {
        metadata: {
          labels: { [STATE_LABEL]: state },
          annotations: {
            [CUTOVER_ANNOTATION]: null,
            [APPLIED_ANNOTATION]: applied,
            [PLAN_ANNOTATION]: PLAN,
            // No startedAt in this record, so no cutover time to keep (the stale-link check needs one).
            [CUTOVER_TIME_ANNOTATION]: null,
          },
        },
        spec: { externalName: null, ...restore },
      });
    });
  }

  it("putting the snapshot back (not final) keeps the original annotation even for an Audit rollback", () => {
    const patch = restorePatch(record("Audit", "ipv4-only"), snapshot, false);
    const metadata = patch.metadata as { annotations: Record<string, string | null> };
    assert.equal(metadata.annotations[CUTOVER_ANNOTATION], null);
    assert.equal(ORIGINAL_ANNOTATION in metadata.annotations, false);
    assert.deepEqual(patch.spec, { externalName: null, ...snapshot });
  });

  it("the final restore of a cutover to IPv6-only records when it started, for the stale service-link check", () => {
    const patch = restorePatch(
      { ...record("IPv6Only", "ipv6-only"), startedAt: "2026-01-01T00:00:00.000Z" },
      restore,
      true,
    );
    const metadata = patch.metadata as { annotations: Record<string, string | null> };
    assert.equal(metadata.annotations[CUTOVER_TIME_ANNOTATION], "2026-01-01T00:00:00.000Z");
  });

  it("the restore patch of a decided cutover brings back the type, nodePorts and requested address", () => {
    const svc = dualStack("NodePort");
    const d = expectAction(decide(svc, settings("IPv6Only"), WITH_V6), "cutover");
    const patch = restorePatch(d.record, d.record.restore, true);
    assert.deepEqual(patch.spec, {
      externalName: null,
      type: "NodePort",
      clusterIP: V6,
      clusterIPs: [V6],
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: "SingleStack",
      ports: [HTTP_NODE],
      externalTrafficPolicy: "Local",
      internalTrafficPolicy: "Cluster",
    });
    assert.deepEqual(patch.metadata, {
      labels: { [STATE_LABEL]: "ipv6-only" },
      annotations: {
        [CUTOVER_ANNOTATION]: null,
        [APPLIED_ANNOTATION]: "IPv6Only",
        [PLAN_ANNOTATION]: PLAN,
        [CUTOVER_TIME_ANNOTATION]: null,
      },
    });
  });
});

describe("migration/cutover: relaxedRestorePatch", () => {
  const restore: ServiceSpec = {
    type: "LoadBalancer",
    clusterIP: V4,
    clusterIPs: [V4, V6],
    ipFamilies: ["IPv4", "IPv6"],
    ipFamilyPolicy: "RequireDualStack",
    ports: [HTTP_NODE],
    externalTrafficPolicy: "Local",
    healthCheckNodePort: 31000,
  };
  const record: CutoverRecord = { restore, snapshot: restore, state: "ipv4-only", applied: "Audit", plan: PLAN };
  const AT = "2026-11-29T12:00:00.000Z";
  const IP_TAKEN = `Service "lb" is invalid: spec.clusterIPs: Invalid value: ["${V4}","${V6}"]: failed to allocate IP ${V4}: provided IP is already allocated`;
  const PORT_TAKEN = `Service "lb" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`;
  const notKept = (patch: MergePatch): AddressesNotKept =>
    JSON.parse(
      (patch.metadata as { annotations: Record<string, string> }).annotations[ADDRESSES_NOT_KEPT_ANNOTATION] ?? "",
    ) as AddressesNotKept;

  it("a refused ClusterIP gives up the ClusterIPs only, and records them with the answer in the same write", () => {
    const patch = relaxedRestorePatch(record, [IP_TAKEN], AT);
    const spec = patch.spec as ServiceSpec;
    assert.equal("clusterIP" in spec || "clusterIPs" in spec, false);
    assert.deepEqual(spec.ports, [HTTP_NODE]);
    assert.equal(spec.healthCheckNodePort, 31000);
    assert.deepEqual(notKept(patch), { at: AT, refusals: [IP_TAKEN], clusterIPs: [V4, V6] });
  });

  it("once a port is refused, the nodePorts and the healthCheckNodePort go too, and both answers are kept", () => {
    const patch = relaxedRestorePatch(record, [IP_TAKEN, PORT_TAKEN], AT);
    const spec = patch.spec as ServiceSpec;
    assert.deepEqual(spec.ports, [HTTP]);
    assert.equal("healthCheckNodePort" in spec, false);
    assert.deepEqual(notKept(patch), {
      at: AT,
      refusals: [IP_TAKEN, PORT_TAKEN],
      clusterIPs: [V4, V6],
      nodePorts: [30080, 31000],
    });
  });

  it("is otherwise the final restore: at Audit every other operator annotation goes, this record stays", () => {
    const patch = relaxedRestorePatch(record, [PORT_TAKEN], AT);
    const annotations = (patch.metadata as { annotations: Record<string, string | null> }).annotations;
    const { [ADDRESSES_NOT_KEPT_ANNOTATION]: kept, ...rest } = annotations;
    assert.ok(kept);
    const final = restorePatch(record, restore, true).metadata as { annotations: Record<string, string | null> };
    assert.deepEqual(rest, final.annotations);
    assert.equal(ADDRESSES_NOT_KEPT_ANNOTATION in final.annotations, false, "a later restore keeps the record");
  });
});
