// Traffic through a plan on a real data plane: kube-proxy (nftables mode) and CoreDNS in a network namespace
// (src/testenv/dataplane.ts), the real operator, and the probe's five client kinds running all along. The
// zero-failure targets are asserted from the probe's records; durations are reported, never asserted.
import assert from "node:assert/strict";
import { KubeClient } from "../../src/runtime/client.js";
import { startControlPlane, type ControlPlane } from "../../src/testenv/controlplane.js";
import {
  dataPlaneLeftovers,
  dataPlaneUnavailable,
  startDataPlane,
  type DataPlane,
} from "../../src/testenv/dataplane.js";
import { defects, type PhaseWindow } from "../../src/testenv/probe-analysis.js";
import { CLIENT_KINDS, type ClientKind } from "../../src/testenv/probe-protocol.js";
import { pacingExperiment, type PacingVariant } from "../../bench/cutover-pacing.js";
import {
  SCENARIO_USERS,
  createEstate,
  createServicesAndWait,
  estate,
  pods,
  runScenario,
  type ScenarioOptions,
  type ScenarioResult,
} from "../dataplane-scenario.js";

const NS = "traffic";
/** A Service that becomes dual-stack, one that was dual-stack already (NodePort), and a headless one. */
const SERVICES = estate(3, ["clusterip", "nodeport-dual", "headless"]);
/** A dual-stack Service outside the plan, for the cutover experiment with and without a pacer write. */
const PACING_NS = "pacing";
const PACED = estate(1, ["clusterip-dual"], SERVICES.length);
const IPV6_KINDS: readonly ClientKind[] = ["name-aaaa", "name-he", "ip-v6"];

function describeFailures(result: ScenarioResult, phase: PhaseWindow, kinds: readonly ClientKind[]): string {
  const list = defects(result.records, phase, kinds);
  const start = result.records.startedAt;
  return list
    .slice(0, 20)
    .map((r) => `  +${Math.round(r.t - start)} ms ${r.s} ${r.k}: ${r.c} (${r.a ?? "-"}, ${Math.round(r.ms)} ms)`)
    .join("\n");
}

describe("data plane: traffic through DualStack and an IPv6Only cutover (kube-proxy nftables + CoreDNS)", function () {
  this.timeout(300_000);
  let cp: ControlPlane | undefined;
  let dp: DataPlane | undefined;
  let result: ScenarioResult;
  let pacing: PacingVariant[];
  let stopped = false;

  const teardown = async () => {
    if (stopped) return;
    stopped = true;
    await dp?.stop();
    await cp?.stop();
  };

  before(async function () {
    this.timeout(900_000); // a cold cache builds kube-proxy and CoreDNS first
    const reason = await dataPlaneUnavailable();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    cp = await startControlPlane({ users: SCENARIO_USERS });
    dp = await startDataPlane(cp, { pods: pods([...SERVICES, ...PACED]) });
    const client = new KubeClient(cp.kubeConfig(), "ipv6mig-dataplane-test");
    const options: ScenarioOptions = {
      namespace: NS,
      services: SERVICES,
      phases: ["DualStack", "IPv6Only"],
      batchSize: 1,
      pauseBetweenBatches: "1s",
      settleMs: 3000,
      probe: { rate: 150 },
    };
    await createEstate(cp, dp, client, options);
    await createServicesAndWait(dp, client, { namespace: PACING_NS, services: PACED });
    result = await runScenario(cp, dp, client, options);
    ({ variants: pacing } = await pacingExperiment(dp, client, {
      namespace: PACING_NS,
      services: PACED,
      rounds: 2,
      idleMs: 2500,
      leadMs: 150,
      rate: 100,
    }));
    console.log(`      cutover experiment: ${pacing.map((v) => JSON.stringify(v)).join("; ")}`);
    for (const f of result.figures) {
      const kinds = CLIENT_KINDS.map((k) => `${k} ${f.kinds[k].failed}/${f.kinds[k].requests}`).join(", ");
      console.log(
        `      ${f.name}: failed/requests ${kinds}; kube-proxy: ${f.rules.map((r) => `${r.ip} absent ${r.longestAbsentMs} ms`).join(", ")}`,
      );
    }
  });

  after(teardown);

  const phase = (name: string): PhaseWindow => {
    const found = result.phases.find((p) => p.name === name);
    assert.ok(found, `phase ${name} ran`);
    return found;
  };

  it("the clients reached every Service in every phase (the probe measures something)", () => {
    for (const f of result.figures) {
      for (const kind of ["name-a", "name-he", "ip-v4"] as const) {
        assert.ok(f.kinds[kind].requests - f.kinds[kind].failed > 0, `${f.name}: ${kind} had successful requests`);
      }
    }
    const ipv6 = result.figures.find((f) => f.name === "Audit → DualStack");
    assert.ok(ipv6 && ipv6.kinds["ip-v6"].requests > 0, "IPv6 ClusterIP clients started once the Services had one");
    // The A-only client must lose the Services that end IPv6-only: the probe can tell a failure.
    const cut = result.figures.find((f) => f.name === "DualStack → IPv6Only");
    assert.ok(cut && cut.kinds["name-a"].failedByDesign > 0, "A-only clients lost the IPv6-only Services, by design");
  });

  it("DualStack: no request of any client kind fails", () => {
    const p = phase("Audit → DualStack");
    const failed = defects(result.records, p);
    assert.equal(failed.length, 0, `failed requests through DualStack:\n${describeFailures(result, p, CLIENT_KINDS)}`);
  });

  it("IPv6Only: no request of IPv6 or happy-eyeballs clients fails for Services that keep their address", () => {
    const p = phase("DualStack → IPv6Only");
    const failed = defects(result.records, p, IPV6_KINDS);
    const gap = result.figures.find((f) => f.name === p.name)?.rules[0];
    const message =
      `failed requests through the cutover:\n${describeFailures(result, p, IPV6_KINDS)}\n` +
      `kube-proxy: ${gap?.ip} had no rule for ${gap?.longestAbsentMs} ms`;
    // The operator paces its cutovers (src/reconciler/pacer.ts): without it about a second of requests fails here.
    assert.ok(result.operatorOutput.includes("creating the Service that paces kube-proxy"), "the cutovers were paced");
    assert.equal(failed.length, 0, message);
  });

  it("a cutover made right after kube-proxy synced (a pacer write first) loses no IPv6 request", () => {
    const paced = pacing.find((v) => v.variant === "paced");
    assert.ok(paced && paced.cutovers === 2, "two paced cutovers ran");
    assert.ok(paced.ipv6Requests > 0, "IPv6 clients sent requests through them");
    assert.equal(paced.withRuleGap, 0, "kube-proxy never dropped the kept IPv6 ClusterIP");
    assert.equal(paced.ipv6Failed, 0, "no IPv6 request failed");
  });

  it("stops every process, and removes the network namespace and its nftables tables", async () => {
    assert.ok(dp, "the data plane ran");
    const netns = dp.netns;
    const pids = await dp.namespacePids();
    assert.ok(pids.length >= 3, `kube-proxy, CoreDNS and the node agent ran in ${netns}: ${pids.join(",")}`);
    const ruleset = await dp.ruleset();
    assert.match(ruleset, /table ip kube-proxy/, "kube-proxy's IPv4 table was in the namespace");
    assert.match(ruleset, /table ip6 kube-proxy/, "kube-proxy's IPv6 table was in the namespace");
    await teardown();
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), `process ${pid} of the data plane is gone`);
    }
    const left = await dataPlaneLeftovers();
    assert.ok(!left.namespaces.includes(netns), `${netns} removed: ${left.namespaces.join(",")}`);
    assert.deepEqual(left.hostTables, [], "no kube-proxy table outside the namespace");
  });
});
