// The migration engine through `ipv6-migrate operator` on a real control plane: every Service shape through
// Audit -> DualStack -> IPv6Only -> Audit, the IPv4-only trap, and a crash between the two writes of a cutover.
import assert from "node:assert/strict";
import {
  CUTOVER_ANNOTATION,
  MIGRATION_PLANS,
  STATE_LABEL,
  type MigrationPlan,
  type TargetPhase,
} from "../../src/api/migrationplan.js";
import { restorableSpec } from "../../src/migration/cutover.js";
import { type Service } from "../../src/migration/families.js";
import { MigrationPlanReconciler } from "../../src/reconciler/migrationplan.js";
import { buildCaches } from "../../src/reconciler/snapshot.js";
import { KubeClient, SERVICES } from "../../src/runtime/client.js";
import { FakeClock, realClock, type Clock } from "../../src/runtime/clock.js";
import { EventRecorder } from "../../src/runtime/events.js";
import { keyOf } from "../../src/runtime/object.js";
import { silentLogger } from "../../src/runtime/log.js";
import { changedState, WRITE_VERBS, type ControlPlane } from "../../src/testenv/controlplane.js";
import {
  clusterIPService,
  createIPv6Slice,
  createNamespace,
  createService,
  eventually,
  sleep,
  useControlPlane,
  type ServiceObject,
} from "../helpers.js";
import { OperatorProcess, createPlan, getPlan, installCRD, waitForCondition } from "../operator.js";
import { refuseFamilyChanges } from "../fixtures/resources.js";

const NS = "shop";
const OPERATOR_USER = { name: "operator", groups: ["system:masters"] };

/** The estate: every shape the engine classifies. */
function estate(): ServiceObject[] {
  const port = (extra = {}) => [{ name: "http", port: 80, targetPort: 8080, ...extra }];
  return [
    {
      metadata: { name: "web", labels: { app: "web", tier: "front" } },
      spec: { selector: { app: "web" }, ports: port() },
    },
    {
      metadata: { name: "nodeport", annotations: { owner: "team-a" } },
      spec: {
        type: "NodePort",
        selector: { app: "np" },
        ports: port({ nodePort: 30081 }),
        externalTrafficPolicy: "Local",
      },
    },
    { metadata: { name: "headless" }, spec: { clusterIP: "None", selector: { app: "db" }, ports: port() } },
    { metadata: { name: "headless-manual" }, spec: { clusterIP: "None", ports: port() } },
    { metadata: { name: "external" }, spec: { type: "ExternalName", externalName: "example.invalid" } },
    { metadata: { name: "lb" }, spec: { type: "LoadBalancer", selector: { app: "lb" }, ports: port() } },
    { metadata: { name: "manual" }, spec: { ports: port() } },
    { metadata: { name: "waiting" }, spec: { selector: { app: "no-v6-yet" }, ports: port() } },
  ];
}

async function services(client: KubeClient): Promise<Map<string, Service>> {
  const list = await client.list<Service>(SERVICES, NS);
  return new Map(list.items.map((s) => [s.metadata.name, s]));
}

function setTarget(client: KubeClient, name: string, target: TargetPhase, extra: Record<string, unknown> = {}) {
  return client.patch(MIGRATION_PLANS, undefined, name, { spec: { targetPhase: target, ...extra } }, "merge");
}

function operatorWriteLog(env: { cp: ControlPlane }, ...resources: string[]): string[] {
  return env.cp
    .auditEvents(OPERATOR_USER.name)
    .filter((e) => changedState(e, ...resources))
    .map((e) => `${e.verb} ${e.requestURI}`);
}

function operatorWrites(env: { cp: ControlPlane }, resource: string): number {
  return operatorWriteLog(env, resource).length;
}

describe("migration engine on a dual-stack cluster", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;
  const original = new Map<string, Service>();

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    for (const svc of estate()) original.set(svc.metadata.name, (await createService(env.client, NS, svc)) as Service);
    for (const [svc, ip] of [
      ["web", "fd00:1::1"],
      ["nodeport", "fd00:1::2"],
      ["headless", "fd00:1::3"],
      ["lb", "fd00:1::4"],
      ["manual", "fd00:1::5"],
    ] as const) {
      await createIPv6Slice(env.client, NS, svc, ip);
    }
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name, {}, ["--log-level=debug"]).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("Audit classifies every shape and changes nothing", async () => {
    await createPlan(env.client, "shop", {
      selector: { namespaces: [NS] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    const plan = await waitForCondition(env.client, "shop", "Ready");
    assert.equal(plan.status?.summary?.selected, 8);
    assert.equal(plan.status?.summary?.ipv4Only, 6, "ClusterIP, NodePort, LB, 2 headless, selector-less");
    assert.equal(plan.status?.phase, "Audited");
    assert.equal(operatorWrites(env, "services"), 0);
  });

  it("DualStack adds IPv6 beside every IPv4 ClusterIP and keeps the primary", async () => {
    await setTarget(env.client, "shop", "DualStack");
    const plan = await waitForCondition(env.client, "shop", "DualStackComplete");
    await waitForCondition(env.client, "shop", "Ready");
    const now = await services(env.client);
    for (const name of ["web", "nodeport", "lb", "manual", "waiting"]) {
      const svc = now.get(name)!;
      assert.deepEqual(svc.spec.ipFamilies, ["IPv4", "IPv6"], name);
      assert.equal(svc.spec.clusterIPs?.[0], original.get(name)!.spec.clusterIP, `${name} keeps its IPv4 ClusterIP`);
      assert.equal(svc.metadata.labels?.[STATE_LABEL], "dual-stack");
    }
    assert.deepEqual(now.get("headless")!.spec.ipFamilies, ["IPv4", "IPv6"]);
    assert.equal(now.get("external")!.spec.type, "ExternalName");
    assert.equal(plan.status?.summary?.skippedByReason?.ExternalName, 1);
    const web = now.get("web")!;
    const events = await env.cp.kubectl([
      "get",
      "events",
      "-n",
      NS,
      "--field-selector",
      "involvedObject.name=web,reason=Migrated",
      "-o",
      "jsonpath={.items[*].message}",
    ]);
    assert.ok(
      events.stdout.includes(`-> ClusterIP dual-stack [IPv4,IPv6] clusterIPs=${JSON.stringify(web.spec.clusterIPs)}`),
      events.stdout,
    );
  });

  it("IPv6Only cuts over each shape, keeps UIDs, nodePorts and the IPv6 address, and blocks what must wait", async () => {
    const dual = await services(env.client);
    await setTarget(env.client, "shop", "IPv6Only");
    await eventually(async () => {
      const plan = await getPlan(env.client, "shop");
      return plan.status?.observedGeneration === plan.metadata.generation && plan.status?.phase === "Blocked"
        ? plan
        : undefined;
    }, "only blocked Services left");
    const now = await services(env.client);
    for (const name of ["web", "nodeport", "headless", "manual"]) {
      const svc = now.get(name)!;
      assert.deepEqual(svc.spec.ipFamilies, ["IPv6"], name);
      assert.equal(svc.spec.ipFamilyPolicy, "SingleStack");
      assert.equal(svc.metadata.uid, original.get(name)!.metadata.uid, `${name} keeps its UID`);
      assert.equal(svc.metadata.annotations?.[CUTOVER_ANNOTATION], undefined);
    }
    for (const name of ["web", "nodeport", "manual"]) {
      assert.equal(
        now.get(name)!.spec.clusterIP,
        dual.get(name)!.spec.clusterIPs?.[1],
        `${name} keeps its IPv6 address`,
      );
    }
    assert.equal(now.get("nodeport")!.spec.ports?.[0]?.nodePort, 30081);
    assert.equal(now.get("nodeport")!.spec.externalTrafficPolicy, "Local");
    assert.equal(now.get("nodeport")!.metadata.annotations?.owner, "team-a");
    assert.equal(now.get("web")!.metadata.labels?.tier, "front");
    const plan = await getPlan(env.client, "shop");
    const problems = new Map(plan.status?.problems?.map((p) => [p.name, p]));
    assert.equal(problems.get("lb")?.reason, "LoadBalancerRecreateNotAllowed");
    assert.equal(problems.get("waiting")?.reason, "WaitingForIPv6Endpoints");
    assert.equal(problems.get("headless-manual"), undefined);
    assert.equal(plan.status?.summary?.skippedByReason?.SelectorlessWithoutIPv6Endpoints, 1, "headless-manual");
    assert.equal(now.get("lb")!.spec.type, "LoadBalancer");
    assert.equal(now.get("lb")!.metadata.labels?.[STATE_LABEL], "blocked");
    assert.equal(now.get("waiting")!.metadata.labels?.[STATE_LABEL], "blocked");
    const events = await env.cp.kubectl([
      "get",
      "events",
      "-A",
      "--field-selector",
      "reason=ServiceBlocked",
      "-o",
      "json",
    ]);
    assert.match(events.stdout, /shop\/lb: LoadBalancerRecreateNotAllowed/);
    assert.match(events.stdout, /shop\/waiting: WaitingForIPv6Endpoints/);
  });

  it("a blocked Service moves by itself once its reason goes away", async () => {
    await createIPv6Slice(env.client, NS, "waiting", "fd00:1::9");
    await eventually(async () => {
      const svc = (await services(env.client)).get("waiting")!;
      return svc.spec.ipFamilies?.[0] === "IPv6" ? svc : undefined;
    }, "the waiting Service to move");
    const moved = (await services(env.client)).get("waiting")!;
    assert.equal(moved.metadata.labels?.[STATE_LABEL], "ipv6-only");
  });

  it("lowering to Audit restores every Service's original spec exactly", async () => {
    await setTarget(env.client, "shop", "Audit");
    await waitForCondition(env.client, "shop", "Ready");
    const now = await services(env.client);
    for (const [name, before] of original) {
      const svc = now.get(name)!;
      assert.deepEqual(restorableSpec(svc.spec), restorableSpec(before.spec), `${name} spec`);
      assert.deepEqual(svc.metadata.labels ?? {}, before.metadata.labels ?? {}, `${name} labels`);
      assert.deepEqual(svc.metadata.annotations ?? {}, before.metadata.annotations ?? {}, `${name} annotations`);
      assert.equal(svc.metadata.uid, before.metadata.uid);
    }
  });

  it("writes nothing at steady state", async () => {
    const before = operatorWriteLog(env, "services", "migrationplans").length;
    const statusBefore = (await getPlan(env.client, "shop")).status;
    await new Promise((r) => setTimeout(r, 3000));
    const since = operatorWriteLog(env, "services", "migrationplans").slice(before);
    const statusAfter = (await getPlan(env.client, "shop")).status;
    assert.deepEqual(
      since,
      [],
      `writes after Ready:\n${since.join("\n")}\nstatus before: ${JSON.stringify(statusBefore)}\nafter: ${JSON.stringify(statusAfter)}\n` +
        operator.output
          .split("\n")
          .filter((l) => l.includes("writing the plan's status"))
          .slice(-6)
          .join("\n"),
    );
  });

  it("kubectl get mplan shows the printer columns, and kubectl wait returns when Ready", async () => {
    const get = await env.cp.kubectl(["get", "mplan", "shop"]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /NAME\s+TARGET\s+PHASE\s+PROGRESS\s+READY\s+AGE/);
    assert.match(get.stdout, /shop\s+Audit\s+Audited\s+\d+\/8\s+True/);
    const wait = await env.cp.kubectl(["wait", "--for=condition=Ready", "mplan/shop", "--timeout=30s"]);
    assert.equal(wait.code, 0, wait.stderr);
  });
});

describe("migration engine on an IPv4-only cluster", function () {
  const env = useControlPlane({ families: "ipv4", users: [OPERATOR_USER] });
  let operator: OperatorProcess;

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    for (const svc of estate()) await createService(env.client, NS, svc);
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("a DualStack plan is Stalled with a clear message and no Service is written", async () => {
    await createPlan(env.client, "v4", { targetPhase: "DualStack", selector: { namespaces: [NS] } });
    const plan: MigrationPlan = await waitForCondition(env.client, "v4", "Stalled");
    const stalled = plan.status?.conditions?.find((c) => c.type === "Stalled");
    assert.equal(stalled?.reason, "NoIPv6ServiceRange");
    assert.match(stalled?.message ?? "", /no IPv6 range/);
    assert.equal(plan.status?.phase, "Stalled");
    assert.equal(operatorWrites(env, "services"), 0);
  });
});

describe("migration engine: a crash between the two writes of a cutover", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
  });

  it("the restarted operator finishes the cutover; nothing is lost or left ExternalName", async () => {
    const created = (await createService(env.client, NS, {
      metadata: { name: "crash", labels: { app: "crash" } },
      spec: { type: "NodePort", selector: { app: "crash" }, ports: [{ port: 80, targetPort: 80, nodePort: 30099 }] },
    })) as Service;
    await createIPv6Slice(env.client, NS, "crash", "fd00:1::7");
    await createPlan(env.client, "crash", { targetPhase: "IPv6Only", selector: { namespaces: [NS] } });
    const first = new OperatorProcess(env.cp, OPERATOR_USER.name).start({ killAfter: "externalname" });
    assert.equal(await first.exit, -1, "killed itself by SIGKILL after the first write");
    const mid = await env.client.get<Service>(SERVICES, NS, "crash");
    assert.equal(mid.spec.type, "ExternalName", "stopped between the two writes");
    assert.ok(mid.metadata.annotations?.[CUTOVER_ANNOTATION], "the record travels with the Service");
    const second = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    try {
      await waitForCondition(env.client, "crash", "IPv6OnlyComplete");
      const done = await env.client.get<Service>(SERVICES, NS, "crash");
      assert.equal(done.spec.type, "NodePort");
      assert.deepEqual(done.spec.ipFamilies, ["IPv6"]);
      assert.equal(done.spec.ports?.[0]?.nodePort, 30099);
      assert.equal(done.metadata.uid, created.metadata.uid);
      assert.equal(done.metadata.annotations?.[CUTOVER_ANNOTATION], undefined);
    } finally {
      await second.stop("SIGKILL");
    }
  });
});

describe("migration engine: drift from another field manager", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS);
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("a Service reverted by server-side apply is reported by manager name and not fought", async () => {
    const created = (await createService(env.client, NS, {
      metadata: { name: "gitops", labels: { app: "gitops" } },
      spec: { selector: { app: "gitops" }, ports: [{ port: 80, targetPort: 80 }] },
    })) as Service;
    await createPlan(env.client, "drift", { targetPhase: "DualStack", selector: { namespaces: [NS] } });
    await waitForCondition(env.client, "drift", "DualStackComplete");
    // A GitOps controller applies the spec it has in Git, with force.
    await env.client.patch(
      SERVICES,
      NS,
      "gitops",
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "gitops", namespace: NS },
        spec: {
          selector: { app: "gitops" },
          ports: [{ port: 80, targetPort: 80, protocol: "TCP" }],
          ipFamilyPolicy: "SingleStack",
          ipFamilies: ["IPv4"],
          clusterIPs: [created.spec.clusterIP],
        },
      },
      "apply",
      { fieldManager: "kustomize-controller", force: true },
    );
    const writesAtRevert = operatorWrites(env, "services");
    const plan = await eventually(async () => {
      const p = await getPlan(env.client, "drift");
      return p.status?.problems?.some((x) => x.name === "gitops" && x.state === "Drifted") ? p : undefined;
    }, "the drift to be reported");
    const drifted = plan.status?.problems?.find((x) => x.name === "gitops");
    assert.match(drifted?.message ?? "", /kustomize-controller/);
    assert.equal(plan.status?.summary?.drifted, 1);
    const events = await env.cp.kubectl([
      "get",
      "events",
      "-n",
      NS,
      "--field-selector",
      "reason=Drifted",
      "-o",
      "json",
    ]);
    assert.match(events.stdout, /kustomize-controller/);
    await new Promise((r) => setTimeout(r, 3000));
    const svc = await env.client.get<Service>(SERVICES, NS, "gitops");
    assert.deepEqual(svc.spec.ipFamilies, ["IPv4"], "left as the other manager set it");
    assert.equal(svc.metadata.labels?.[STATE_LABEL], "drifted");
    assert.equal(operatorWrites(env, "services") - writesAtRevert, 1, "one write: the drift record, never the spec");
  });

  it("exits 0 on SIGTERM after a graceful stop", async () => {
    assert.equal(await operator.stop("SIGTERM"), 0);
  });
});

describe("ipv6-migrate operator: start-up errors", function () {
  const env = useControlPlane({ families: "ipv4", users: [OPERATOR_USER] });

  it("exits non-zero with a clear message when the CRD is not installed", async () => {
    const op = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    assert.equal(await op.exit, 1);
    assert.match(op.output, /MigrationPlan CRD .* is not installed/);
  });

  it("exits non-zero with a clear message when the credentials are refused", async () => {
    env.cp.user(OPERATOR_USER.name).token = "not-a-valid-token";
    const op = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
    assert.equal(await op.exit, 1);
    assert.match(op.output, /refused the credentials \(401/);
  });
});

describe("migration engine: the other transitions", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER] });
  let operator: OperatorProcess;
  const original = new Map<string, Service>();
  const NS2 = "paths";

  const list = async () =>
    new Map((await env.client.list<Service>(SERVICES, NS2)).items.map((s) => [s.metadata.name, s] as const));

  before(async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, NS2);
    const port = [{ name: "http", port: 80, targetPort: 8080 }];
    for (const svc of [
      { metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: port } },
      { metadata: { name: "np" }, spec: { type: "NodePort", selector: { app: "np" }, ports: port } },
      {
        metadata: { name: "lb" },
        spec: { type: "LoadBalancer", selector: { app: "lb" }, ports: port, externalTrafficPolicy: "Local" },
      },
      { metadata: { name: "hl" }, spec: { clusterIP: "None", selector: { app: "hl" }, ports: port } },
    ] as ServiceObject[]) {
      original.set(svc.metadata.name, (await createService(env.client, NS2, svc)) as Service);
      await createIPv6Slice(env.client, NS2, svc.metadata.name, "fd00:2::1");
    }
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("Audit -> IPv6Only directly, LoadBalancer included when allowed, keeping nodePorts", async () => {
    await createPlan(env.client, "paths", {
      targetPhase: "IPv6Only",
      selector: { namespaces: [NS2] },
      ipv6Only: { allowLoadBalancerRecreate: true },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    await waitForCondition(env.client, "paths", "IPv6OnlyComplete");
    await waitForCondition(env.client, "paths", "Ready");
    const now = await list();
    for (const [name, svc] of now) {
      assert.deepEqual(svc.spec.ipFamilies, ["IPv6"], name);
      assert.equal(svc.metadata.uid, original.get(name)!.metadata.uid, name);
      assert.equal(svc.spec.type, original.get(name)!.spec.type, name);
    }
    for (const name of ["np", "lb"]) {
      assert.equal(now.get(name)!.spec.ports?.[0]?.nodePort, original.get(name)!.spec.ports?.[0]?.nodePort, name);
    }
    assert.equal(now.get("lb")!.spec.externalTrafficPolicy, "Local");
    assert.equal(now.get("lb")!.spec.healthCheckNodePort, original.get("lb")!.spec.healthCheckNodePort);
  });

  it("IPv6Only -> DualStack re-requests the original IPv4 ClusterIP as primary and keeps the IPv6 one", async () => {
    const v6 = await list();
    await setTarget(env.client, "paths", "DualStack");
    await eventually(async () => {
      const plan = await getPlan(env.client, "paths");
      const c = plan.status?.conditions?.find((x) => x.type === "DualStackComplete");
      return plan.status?.observedGeneration === plan.metadata.generation && c?.status === "True" ? plan : undefined;
    }, "DualStackComplete after the rollback");
    const now = await list();
    for (const name of ["web", "np", "lb"]) {
      const svc = now.get(name)!;
      assert.deepEqual(svc.spec.ipFamilies, ["IPv4", "IPv6"], name);
      assert.equal(svc.spec.clusterIPs?.[0], original.get(name)!.spec.clusterIP, `${name}: original IPv4`);
      assert.equal(svc.spec.clusterIPs?.[1], v6.get(name)!.spec.clusterIP, `${name}: IPv6 kept`);
    }
    assert.deepEqual(now.get("hl")!.spec.ipFamilies, ["IPv4", "IPv6"]);
  });

  it("DualStack -> Audit restores the original spec exactly, and removes every trace of the operator", async () => {
    await setTarget(env.client, "paths", "Audit");
    await waitForCondition(env.client, "paths", "Ready");
    const now = await list();
    for (const [name, before] of original) {
      const svc = now.get(name)!;
      assert.deepEqual(restorableSpec(svc.spec), restorableSpec(before.spec), name);
      assert.deepEqual(svc.metadata.annotations ?? {}, before.metadata.annotations ?? {}, name);
      assert.deepEqual(svc.metadata.labels ?? {}, before.metadata.labels ?? {}, name);
    }
  });
});

describe("migration engine: plan behaviours", function () {
  const env = useControlPlane({ families: "dual", users: [OPERATOR_USER, { name: "limited" }] });
  let operator: OperatorProcess;

  const plan = (name: string, namespace: string, spec: Record<string, unknown>) =>
    createPlan(env.client, name, { selector: { namespaces: [namespace] }, ...spec });

  async function estateIn(namespace: string, names: string[], labels: Record<string, string> = {}) {
    await createNamespace(env.client, namespace);
    for (const name of names) {
      await createService(env.client, namespace, {
        metadata: { name, labels },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 80 }] },
      });
    }
  }

  const families = async (namespace: string) =>
    Object.fromEntries(
      (await env.client.list<Service>(SERVICES, namespace)).items.map((s) => [
        s.metadata.name,
        s.spec.ipFamilies?.length,
      ]),
    );

  before(async () => {
    await installCRD(env.cp);
    operator = new OperatorProcess(env.cp, OPERATOR_USER.name).start();
  });

  after(async () => {
    await operator?.stop("SIGKILL");
  });

  it("moves Services in batches of batchSize with the pause between them, counting batches in status", async () => {
    await estateIn("batches", ["a", "b", "c", "d", "e"]);
    await plan("batches", "batches", {
      targetPhase: "DualStack",
      rollout: { batchSize: 2, pauseBetweenBatches: "1s" },
    });
    const done = await waitForCondition(env.client, "batches", "DualStackComplete");
    assert.equal(done.status?.currentBatch?.number, 3);
    assert.equal(done.status?.currentBatch?.size, 1);
    // The server's own record: the Service writes came in three groups, each after the previous batch's pause.
    const writes = env.cp
      .auditEvents(OPERATOR_USER.name)
      .filter((e) => e.verb === "patch" && e.objectRef?.namespace === "batches" && !e.requestURI.includes("dryRun"))
      .map((e) => Date.parse(e.requestReceivedTimestamp ?? ""))
      .sort((x, y) => x - y);
    assert.equal(writes.length, 5);
    const gaps = writes.slice(1).map((t, i) => t - writes[i]);
    assert.equal(
      gaps.filter((g) => g >= 1000).length,
      2,
      `two pauses of at least 1s between batches: ${gaps.join(",")}`,
    );
    const events = await env.cp.kubectl([
      "get",
      "events",
      "-A",
      "--field-selector",
      "reason=BatchStarted",
      "-o",
      "name",
    ]);
    assert.equal(events.stdout.trim().split("\n").filter(Boolean).length, 3);
  });

  it("two plans selecting the same Service: the older keeps it, the newer reports the conflict", async () => {
    await estateIn("shared", ["s1"]);
    await plan("older", "shared", { targetPhase: "DualStack", rollout: { pauseBetweenBatches: "0s" } });
    await waitForCondition(env.client, "older", "DualStackComplete");
    await sleep(1100); // creationTimestamp has one-second resolution
    await plan("newer", "shared", { targetPhase: "Audit" });
    const newer = await eventually(async () => {
      const p = await getPlan(env.client, "newer");
      return p.status?.problems?.length ? p : undefined;
    }, "the conflict to be reported");
    assert.deepEqual(newer.status?.problems?.[0], {
      namespace: "shared",
      name: "s1",
      state: "Conflict",
      reason: "ClaimedByOlderPlan",
      message: "also selected by the older plan older, which keeps it",
    });
    assert.deepEqual(await families("shared"), { s1: 2 }, "the newer plan did not roll it back");
  });

  it("default/kubernetes is skipped as the API server's own, and never written", async () => {
    await plan("defaults", "default", { targetPhase: "DualStack" });
    const done = await waitForCondition(env.client, "defaults", "Ready");
    assert.equal(done.status?.summary?.skippedByReason?.APIServerOwned, 1);
    const kubernetes = await env.client.get<Service>(SERVICES, "default", "kubernetes");
    assert.deepEqual(kubernetes.spec.ipFamilies, ["IPv4"]);
    assert.equal(kubernetes.metadata.labels?.[STATE_LABEL], undefined);
  });

  it("suspend stops all changes; resuming carries on", async () => {
    await estateIn("paused", ["p1"]);
    await plan("paused", "paused", { targetPhase: "DualStack", suspend: true });
    const suspended = await eventually(async () => {
      const p = await getPlan(env.client, "paused");
      return p.status?.phase === "Suspended" ? p : undefined;
    }, "phase Suspended");
    assert.equal(suspended.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
    assert.deepEqual(await families("paused"), { p1: 1 });
    await env.client.patch(MIGRATION_PLANS, undefined, "paused", { spec: { suspend: false } }, "merge");
    await waitForCondition(env.client, "paused", "DualStackComplete");
    assert.deepEqual(await families("paused"), { p1: 2 });
  });

  it("a write the server refuses fails the Service; maxFailures 0 stalls the plan at the first failure", async () => {
    await estateIn("frozen", ["a-frozen"], { frozen: "yes" });
    await createService(env.client, "frozen", {
      metadata: { name: "b-free" },
      spec: { selector: { app: "b" }, ports: [{ port: 80, targetPort: 80 }] },
    });
    await refuseFamilyChanges(env.client, { namespace: "frozen", name: "a-frozen" });
    await plan("frozen", "frozen", { targetPhase: "DualStack", rollout: { batchSize: 1, pauseBetweenBatches: "0s" } });
    const stalled = await waitForCondition(env.client, "frozen", "Stalled");
    const condition = stalled.status?.conditions?.find((c) => c.type === "Stalled");
    assert.equal(condition?.reason, "MaxFailuresReached");
    const failed = stalled.status?.problems?.find((p) => p.name === "a-frozen");
    assert.equal(failed?.state, "Failed");
    assert.match(failed?.message ?? "", /frozen Service may not change/);
    assert.deepEqual(await families("frozen"), { "a-frozen": 1, "b-free": 1 }, "nothing moved after the failure");
    const svc = await env.client.get<Service>(SERVICES, "frozen", "a-frozen");
    assert.equal(svc.metadata.labels?.[STATE_LABEL], "failed");
  });

  it("a Forbidden answer stalls the plan with a condition that names the refused call", async () => {
    await estateIn("forbidden", ["f1"]);
    const rbac = (resource: string) => ({
      group: "rbac.authorization.k8s.io",
      version: "v1",
      resource,
      kind: "",
      namespaced: false,
    });
    // Everything the operator needs except writing Services.
    await env.client.create(rbac("clusterroles"), undefined, {
      metadata: { name: "limited" },
      rules: [
        { apiGroups: [""], resources: ["services", "namespaces"], verbs: ["get", "list", "watch"] },
        { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["servicecidrs", "networkpolicies"], verbs: ["list", "watch"] },
        { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
        { apiGroups: [""], resources: ["pods", "configmaps"], verbs: ["list", "watch"] },
        { apiGroups: ["ipv6migration.io"], resources: ["migrationplans"], verbs: ["get", "list", "watch", "patch"] },
        { apiGroups: ["ipv6migration.io"], resources: ["migrationplans/status"], verbs: ["patch"] },
      ],
    });
    await env.client.create(rbac("clusterrolebindings"), undefined, {
      metadata: { name: "limited" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "limited" },
      subjects: [{ kind: "User", name: "limited", apiGroup: "rbac.authorization.k8s.io" }],
    });
    await operator.stop("SIGTERM");
    operator = new OperatorProcess(env.cp, "limited").start();
    await plan("forbidden", "forbidden", { targetPhase: "DualStack" });
    const stalled = await waitForCondition(env.client, "forbidden", "Stalled");
    const condition = stalled.status?.conditions?.find((c) => c.type === "Stalled");
    assert.equal(condition?.reason, "Forbidden");
    assert.match(condition?.message ?? "", /PATCH \/api\/v1\/namespaces\/forbidden\/services\/f1 was forbidden/);
    // It stays Stalled (no flapping back to progressing while it waits to retry).
    await sleep(2000);
    const later = await getPlan(env.client, "forbidden");
    assert.equal(later.status?.conditions?.find((c) => c.type === "Stalled")?.status, "True");
    assert.equal(later.status?.phase, "Stalled");
  });
});

describe("migration engine: a cache that has not yet seen the reconciler's own writes", function () {
  const RECONCILER_USER = { name: "in-process-reconciler", groups: ["system:masters"] };
  const env = useControlPlane({ families: "dual", users: [RECONCILER_USER] });

  it("is not acted on: no status going backwards, no second write, until the watch catches up", async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, "lag");
    for (const name of ["a", "b", "c"]) await createService(env.client, "lag", clusterIPService(name));
    await createPlan(env.client, "lag", {
      targetPhase: "DualStack",
      selector: { namespaces: ["lag"] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    const { caches, reconciler, stop } = await inProcess(realClock);
    try {
      // A plan's first reconcile only adds its finalizer; the plan cache then shows it.
      assert.equal(await reconciler.reconcile("lag"), undefined);
      await eventually(
        () => (caches.plans.store.get("lag")?.metadata.finalizers?.length ? true : undefined),
        "the plan cache to show the finalizer",
      );
      // The Service cache stops here, as a watch event in flight would leave it.
      await caches.services.stop();
      await reconciler.reconcile("lag");
      const done = await getPlan(env.client, "lag");
      assert.equal(done.status?.phase, "DualStack");
      const writes = () =>
        env.cp
          .auditEvents(RECONCILER_USER.name)
          .filter(
            (e) =>
              WRITE_VERBS.has(e.verb) &&
              (e.objectRef?.resource === "services" || e.objectRef?.resource === "migrationplans"),
          )
          .map((e) => `${e.verb} ${e.requestURI} -> ${e.responseStatus?.code ?? 0}`);
      const after = writes().length;
      const finalizer = writes().filter((w) => /\/migrationplans\/lag(\?\S*)? ->/.test(w));
      assert.equal(finalizer.length, 1, `the finalizer, once:\n${writes().join("\n")}`);
      assert.equal(
        writes().filter((w) => !w.includes("dryRun")).length,
        5,
        `the finalizer, 3 patches and a status write, besides dry runs:\n${writes().join("\n")}`,
      );

      const again = await reconciler.reconcile("lag");
      assert.deepEqual(writes().slice(after), [], "nothing written from the stale cache");
      assert.equal((await getPlan(env.client, "lag")).metadata.resourceVersion, done.metadata.resourceVersion);
      assert.ok((again?.requeueAfterMs ?? 0) > 0, "asks to be reconciled again");

      // The watch resumes from where it stopped and delivers the writes: then the plan is at rest.
      caches.services.start();
      await eventually(
        () =>
          caches.services.store.list().filter((s) => s.spec.ipFamilies?.length === 2).length === 3 ? true : undefined,
        "the Service cache to catch up",
      );
      await reconciler.reconcile("lag");
      assert.deepEqual(writes().slice(after), [], "nothing more to write once the cache caught up");
      assert.equal((await getPlan(env.client, "lag")).status?.phase, "DualStack");
    } finally {
      await stop();
    }
  });

  it("writes each finished batch at once, however soon after the last status write: the next batch is numbered and paced from it", async () => {
    await installCRD(env.cp);
    await createNamespace(env.client, "paced");
    for (const name of ["a", "b", "c"]) await createService(env.client, "paced", clusterIPService(name));
    await createPlan(env.client, "paced", {
      targetPhase: "DualStack",
      selector: { namespaces: ["paced"] },
      rollout: { batchSize: 1, pauseBetweenBatches: "1s" },
    });
    const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));
    const { client, caches, reconciler, stop } = await inProcess(clock);
    // A status write that takes 200 ms: the pause after a batch then ends less than a second after that write.
    const patch = client.patch.bind(client);
    client.patch = async <T>(...args: Parameters<KubeClient["patch"]>): Promise<T> => {
      const written = await patch<T>(...args);
      if (args[0] === MIGRATION_PLANS && args[5]?.subresource === "status") clock.step(200);
      return written;
    };
    /** Waits for the caches to see the server's objects; returns their resourceVersions, to tell whether a reconcile wrote. */
    const caughtUp = async () => {
      const plan = await getPlan(env.client, "paced");
      const services = (await env.client.list<Service>(SERVICES, "paced")).items;
      await eventually(
        () =>
          caches.plans.store.get("paced")?.metadata.resourceVersion === plan.metadata.resourceVersion &&
          services.every(
            (s) => caches.services.store.get(keyOf(s))?.metadata.resourceVersion === s.metadata.resourceVersion,
          )
            ? true
            : undefined,
        "the caches to see the last writes",
      );
      return [plan, ...services].map((o) => o.metadata.resourceVersion).join();
    };
    try {
      // As the workqueue drives it: every write's watch event reconciles again at once; time passes only when a
      // reconcile wrote nothing, up to the requeue it asked for (the end of the pause, measured from the batch).
      let plan = await getPlan(env.client, "paced");
      for (let round = 0; round < 30 && plan.status?.phase !== "DualStack"; round++) {
        const before = await caughtUp();
        const result = await reconciler.reconcile("paced");
        if ((await caughtUp()) === before) clock.step(result?.requeueAfterMs ?? 0);
        plan = await getPlan(env.client, "paced");
      }
      assert.equal(plan.status?.phase, "DualStack");
      assert.deepEqual(
        { number: plan.status?.currentBatch?.number, size: plan.status?.currentBatch?.size },
        { number: 3, size: 1 },
        "three batches of one, each recorded before the next",
      );
    } finally {
      await stop();
    }
  });

  /** The reconciler and its caches in this process, as the operator's user, on the given clock. */
  async function inProcess(clock: Clock) {
    const client = new KubeClient(env.cp.kubeConfig(env.cp.user(RECONCILER_USER.name)), "lag-test");
    const caches = await buildCaches(client, silentLogger);
    const informers = [caches.plans, caches.services, caches.namespaces, caches.endpointSlices, caches.nodes];
    const all = [...informers, caches.networkPolicies, ...(caches.serviceCIDRs ? [caches.serviceCIDRs] : [])];
    for (const informer of all) informer.start();
    await Promise.all(all.map((i) => i.waitForSync()));
    const events = new EventRecorder(client, { component: "lag-test" });
    const reconciler = new MigrationPlanReconciler({ client, caches, events, logger: silentLogger, clock });
    return { client, caches, reconciler, stop: () => Promise.all(all.map((i) => i.stop())) };
  }
});
