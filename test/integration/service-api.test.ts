// Characterisation: the Service API rules the product relies on, each asserted from the server's own answer.
// Where the server disagrees with the design notes, the server is right and this file says what it does.
import assert from "node:assert/strict";
import { PLAN_ANNOTATION, STATE_LABEL } from "../../src/api/migrationplan.js";
import { trimService } from "../../src/migration/families.js";
import { ServiceWriter, WriteFailure } from "../../src/reconciler/service-writer.js";
import { SERVICE_CIDRS, SERVICES } from "../../src/runtime/client.js";
import { WriteExpectations } from "../../src/runtime/expectations.js";
import { silentLogger } from "../../src/runtime/log.js";
import type { KubeObject } from "../../src/runtime/object.js";
import {
  causeFields,
  clusterIPService,
  createNamespace,
  createService,
  expectApiError,
  useControlPlane,
  type ServiceObject,
} from "../helpers.js";

const NS = "chars";

describe("Service API on a dual-stack control plane (IPv4 primary)", function () {
  const env = useControlPlane({ families: "dual" });
  const patch = (name: string, body: unknown, dryRun = false) =>
    env.client.patch<ServiceObject>(SERVICES, NS, name, body, "merge", { dryRun });
  const get = (name: string) => env.client.get<ServiceObject>(SERVICES, NS, name);

  before(async () => {
    await createNamespace(env.client, NS);
  });

  it("SingleStack IPv4 -> PreferDualStack allocates an IPv6 secondary and keeps the primary", async () => {
    const created = await createService(env.client, NS, clusterIPService("prefer"));
    assert.deepEqual(created.spec.ipFamilies, ["IPv4"]);
    assert.equal(created.spec.ipFamilyPolicy, "SingleStack");
    const v4 = created.spec.clusterIP;
    const updated = await patch("prefer", { spec: { ipFamilyPolicy: "PreferDualStack" } });
    assert.deepEqual(updated.spec.ipFamilies, ["IPv4", "IPv6"]);
    assert.equal(updated.spec.clusterIPs?.[0], v4);
    assert.match(updated.spec.clusterIPs?.[1] ?? "", /^fd00:10:96::/);
    assert.equal(updated.metadata.uid, created.metadata.uid);
  });

  it("rejects ipFamilies [IPv6] on an allocated IPv4 Service with 422 on spec.clusterIPs[0]", async () => {
    await createService(env.client, NS, clusterIPService("flip"));
    const err = await expectApiError(patch("flip", { spec: { ipFamilies: ["IPv6"] } }), 422);
    assert.ok(causeFields(err).includes("spec.clusterIPs[0]"), `causes: ${causeFields(err).join(", ")}`);
    assert.match(err.message, /expected an IPv6 value as indicated by `ipFamilies\[0\]`/);
  });

  it("rejects reordering the families of a dual-stack ClusterIP Service with 422 on spec.clusterIPs[0]", async () => {
    await createService(env.client, NS, clusterIPService("reorder", { ipFamilyPolicy: "PreferDualStack" }));
    const err = await expectApiError(patch("reorder", { spec: { ipFamilies: ["IPv6", "IPv4"] } }), 422);
    assert.ok(causeFields(err).includes("spec.clusterIPs[0]"), `causes: ${causeFields(err).join(", ")}`);
  });

  it("patching only ipFamilyPolicy back to SingleStack keeps the primary and releases the secondary", async () => {
    const created = await createService(
      env.client,
      NS,
      clusterIPService("downgrade", { ipFamilyPolicy: "RequireDualStack" }),
    );
    assert.equal(created.spec.clusterIPs?.length, 2);
    const updated = await patch("downgrade", { spec: { ipFamilyPolicy: "SingleStack" } });
    assert.deepEqual(updated.spec.ipFamilies, ["IPv4"]);
    assert.deepEqual(updated.spec.clusterIPs, [created.spec.clusterIPs?.[0]]);
    // Released: a new Service can ask for the freed IPv6 address at once.
    const reuse = await createService(
      env.client,
      NS,
      clusterIPService("reuse-v6", {
        ipFamilyPolicy: "SingleStack",
        ipFamilies: ["IPv6"],
        clusterIP: created.spec.clusterIPs?.[1] ?? "",
        clusterIPs: [created.spec.clusterIPs?.[1] ?? ""],
      }),
    );
    assert.equal(reuse.spec.clusterIP, created.spec.clusterIPs?.[1]);
  });

  it("a headless Service changes family in one update", async () => {
    await createService(env.client, NS, clusterIPService("headless", { clusterIP: "None" }));
    const updated = await patch("headless", { spec: { ipFamilies: ["IPv6"], ipFamilyPolicy: "SingleStack" } });
    assert.deepEqual(updated.spec.ipFamilies, ["IPv6"]);
    assert.deepEqual(updated.spec.clusterIPs, ["None"]);
  });

  it("rejects changing clusterIP to None in place (422 'may not change once set')", async () => {
    await createService(env.client, NS, clusterIPService("to-headless"));
    const err = await expectApiError(patch("to-headless", { spec: { clusterIP: "None", clusterIPs: ["None"] } }), 422);
    assert.match(err.message, /may not change once set/);
  });

  for (const type of ["ClusterIP", "NodePort"] as const) {
    it(`${type} -> ExternalName -> back with ipFamilies [IPv6] keeps the UID and requested nodePorts`, async () => {
      const name = `rt-${type.toLowerCase()}`;
      const nodePort = type === "NodePort" ? 30080 : undefined;
      const created = await createService(env.client, NS, {
        metadata: { name, labels: { app: name, team: "a" }, annotations: { note: "keep" } },
        spec: {
          type,
          selector: { app: name },
          ports: [{ name: "http", port: 80, targetPort: 8080, ...(nodePort ? { nodePort } : {}) }],
          sessionAffinity: "ClientIP",
        },
      });
      const toExternal = await patch(name, {
        spec: {
          type: "ExternalName",
          externalName: "placeholder.invalid",
          clusterIP: null,
          clusterIPs: null,
          ipFamilies: null,
          ipFamilyPolicy: null,
          externalTrafficPolicy: null,
          internalTrafficPolicy: null,
          ports: [{ name: "http", port: 80, targetPort: 8080, nodePort: null }],
        },
      });
      assert.equal(toExternal.spec.type, "ExternalName");
      assert.equal(toExternal.spec.clusterIP, undefined);
      const back = await patch(name, {
        spec: {
          type,
          externalName: null,
          ipFamilies: ["IPv6"],
          ipFamilyPolicy: "SingleStack",
          ports: [{ name: "http", port: 80, targetPort: 8080, ...(nodePort ? { nodePort } : {}) }],
        },
      });
      assert.equal(back.metadata.uid, created.metadata.uid);
      assert.deepEqual(back.spec.ipFamilies, ["IPv6"]);
      assert.match(back.spec.clusterIP ?? "", /^fd00:10:96::/);
      assert.equal(back.metadata.labels?.team, "a");
      assert.equal(back.metadata.annotations?.note, "keep");
      assert.equal(back.spec.sessionAffinity, "ClientIP");
      if (nodePort) assert.equal(back.spec.ports?.[0]?.nodePort, nodePort);
    });
  }

  it("the round trip back to IPv4 re-grants a requested ClusterIP", async () => {
    const created = await createService(env.client, NS, clusterIPService("rt-back"));
    const v4 = created.spec.clusterIP ?? "";
    await patch("rt-back", {
      spec: {
        type: "ExternalName",
        externalName: "placeholder.invalid",
        clusterIP: null,
        clusterIPs: null,
        ipFamilies: null,
        ipFamilyPolicy: null,
      },
    });
    const back = await patch("rt-back", {
      spec: {
        type: "ClusterIP",
        externalName: null,
        clusterIP: v4,
        clusterIPs: [v4],
        ipFamilies: ["IPv4"],
        ipFamilyPolicy: "SingleStack",
      },
    });
    assert.equal(back.spec.clusterIP, v4);
  });

  it("server-side dry run of RequireDualStack returns allocated IPs and persists nothing", async () => {
    await createService(env.client, NS, clusterIPService("dry"));
    const dry = await patch("dry", { spec: { ipFamilyPolicy: "RequireDualStack" } }, true);
    assert.equal(dry.spec.clusterIPs?.length, 2);
    const stored = await get("dry");
    assert.equal(stored.spec.ipFamilyPolicy, "SingleStack");
    assert.equal(stored.spec.clusterIPs?.length, 1);
  });

  it("the ServiceCIDR object lists the configured ranges", async () => {
    const list = await env.client.list<{ metadata: { name: string }; spec: { cidrs: string[] } }>(
      SERVICE_CIDRS,
      undefined,
    );
    const kubernetes = list.items.find((i) => i.metadata.name === "kubernetes");
    assert.deepEqual(kubernetes?.spec.cidrs, ["10.96.0.0/16", "fd00:10:96::/108"]);
  });
});

describe("Service API on an IPv4-only control plane", function () {
  const env = useControlPlane({ families: "ipv4" });

  before(async () => {
    await createNamespace(env.client, NS);
  });

  it("accepts PreferDualStack and silently stays single-stack (the trap the precondition check exists for)", async () => {
    await createService(env.client, NS, clusterIPService("trap"));
    const updated = await env.client.patch<ServiceObject>(
      SERVICES,
      NS,
      "trap",
      { spec: { ipFamilyPolicy: "PreferDualStack" } },
      "merge",
    );
    assert.equal(updated.spec.ipFamilyPolicy, "PreferDualStack");
    assert.deepEqual(updated.spec.ipFamilies, ["IPv4"]);
    assert.equal(updated.spec.clusterIPs?.length, 1);
  });

  it("the in-place write, which has no dry run, puts the Service back when the answer stays single-stack", async () => {
    const created = await createService(env.client, NS, {
      ...clusterIPService("put-back"),
      metadata: { name: "put-back", labels: { app: "put-back" } },
    });
    const writer = new ServiceWriter(env.client, silentLogger, new WriteExpectations());
    const before = trimService(created as unknown as KubeObject);
    const patch = {
      metadata: { labels: { [STATE_LABEL]: "DualStack" }, annotations: { [PLAN_ANNOTATION]: "p" } },
      spec: { ipFamilyPolicy: "PreferDualStack" },
    };
    await assert.rejects(writer.patchInPlace(before, patch, ["IPv4", "IPv6"]), (err: unknown) => {
      assert.ok(err instanceof WriteFailure);
      assert.equal(err.reason, "SecondaryFamilyNotAllocated");
      return true;
    });
    const after = await env.client.get<ServiceObject>(SERVICES, NS, "put-back");
    assert.equal(after.spec.ipFamilyPolicy, "SingleStack");
    assert.deepEqual(after.spec.clusterIPs, created.spec.clusterIPs);
    assert.deepEqual(after.metadata.labels, { app: "put-back" });
    assert.equal(after.metadata.annotations?.[PLAN_ANNOTATION], undefined);
  });

  it("rejects RequireDualStack with 422 on spec.ipFamilyPolicy, and a dry run answers the same", async () => {
    await createService(env.client, NS, clusterIPService("require"));
    for (const dryRun of [true, false]) {
      const err = await expectApiError(
        env.client.patch(SERVICES, NS, "require", { spec: { ipFamilyPolicy: "RequireDualStack" } }, "merge", {
          dryRun,
        }),
        422,
      );
      assert.ok(causeFields(err).includes("spec.ipFamilyPolicy"), `causes: ${causeFields(err).join(", ")}`);
      assert.match(err.message, /not configured for dual-stack/);
    }
  });

  it("the ServiceCIDR object lists only the IPv4 range", async () => {
    const list = await env.client.list<{ spec: { cidrs: string[] } }>(SERVICE_CIDRS, undefined);
    assert.deepEqual(
      list.items.flatMap((i) => i.spec.cidrs),
      ["10.96.0.0/16"],
    );
  });
});

describe("Service API on an IPv6-primary dual-stack control plane", function () {
  const env = useControlPlane({ families: "ipv6-dual" });

  before(async () => {
    await createNamespace(env.client, NS);
  });

  it("a new Service defaults to IPv6 SingleStack, and PreferDualStack adds IPv4 as secondary", async () => {
    const created = await createService(env.client, NS, clusterIPService("v6first"));
    assert.deepEqual(created.spec.ipFamilies, ["IPv6"]);
    const updated = await env.client.patch<ServiceObject>(
      SERVICES,
      NS,
      "v6first",
      { spec: { ipFamilyPolicy: "PreferDualStack" } },
      "merge",
    );
    assert.deepEqual(updated.spec.ipFamilies, ["IPv6", "IPv4"]);
  });
});
