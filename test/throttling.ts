// API Priority and Fairness squeezing the operator's user until it really receives 429s: a FlowSchema that sends
// its every request to a PriorityLevelConfiguration of one concurrency share and a queue of two. Through that,
// six `ipv6-migrate audit` runs at once and a dual-stack rollout of every Service must finish, their 429s absorbed
// by retries (counted from the operator's /metrics). Shared by make test (a few hundred Services) and
// make test-faults (2,000).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { ResourceType, KubeClient } from "../src/runtime/client.js";
import { freePort, type ControlPlane } from "../src/testenv/controlplane.js";
import { clusterIPService, createNamespace, createService, eventually } from "./helpers.js";
import { CLI, OperatorProcess, createPlan, getPlan, installCRD, waitForCondition } from "./operator.js";

/** A static token user outside system:masters, whose group the exempt FlowSchema would let through. */
export const SQUEEZED_USER = { name: "squeezed", groups: [] };

const FLOWCONTROL = (resource: string, kind: string): ResourceType => ({
  group: "flowcontrol.apiserver.k8s.io",
  version: "v1",
  resource,
  kind,
  namespaced: false,
});
const RBAC = (resource: string, kind: string): ResourceType => ({
  group: "rbac.authorization.k8s.io",
  version: "v1",
  resource,
  kind,
  namespaced: false,
});

async function squeeze(client: KubeClient, user: string): Promise<void> {
  await client.create(RBAC("clusterrolebindings", "ClusterRoleBinding"), undefined, {
    metadata: { name: `${user}-admin` },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ kind: "User", name: user, apiGroup: "rbac.authorization.k8s.io" }],
  });
  await client.create(FLOWCONTROL("prioritylevelconfigurations", "PriorityLevelConfiguration"), undefined, {
    metadata: { name: "squeeze" },
    spec: {
      type: "Limited",
      limited: {
        nominalConcurrencyShares: 1,
        lendablePercent: 0,
        borrowingLimitPercent: 0,
        limitResponse: { type: "Queue", queuing: { queues: 1, handSize: 1, queueLengthLimit: 2 } },
      },
    },
  });
  await client.create(FLOWCONTROL("flowschemas", "FlowSchema"), undefined, {
    metadata: { name: "squeeze" },
    spec: {
      priorityLevelConfiguration: { name: "squeeze" },
      matchingPrecedence: 500,
      distinguisherMethod: { type: "ByUser" },
      rules: [
        {
          subjects: [{ kind: "User", user: { name: user } }],
          resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"] }],
          nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
        },
      ],
    },
  });
}

function runAudit(kubeconfig: string, namespace: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, "audit", `--kubeconfig=${kubeconfig}`, "-o", "json", "-n", namespace],
      { maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function retriesFromMetrics(address: string): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    const m = /^rest_client_request_retries_total\{[^}]*code="429"[^}]*\} (\d+)/.exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}

export async function throttledRollout(env: { cp: ControlPlane; client: KubeClient }, services: number): Promise<void> {
  const ns = "throttled";
  await installCRD(env.cp);
  await createNamespace(env.client, ns);
  await squeeze(env.client, SQUEEZED_USER.name);
  const names = Array.from({ length: services }, (_, i) => `svc-${String(i).padStart(4, "0")}`);
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(names.slice(i, i + 25).map((name) => createService(env.client, ns, clusterIPService(name))));
  }
  const kubeconfig = env.cp.writeKubeconfig(env.cp.user(SQUEEZED_USER.name));
  const throttled = () => env.cp.auditEvents(SQUEEZED_USER.name).filter((e) => e.responseStatus?.code === 429).length;

  // Six audits at once, as six people might run them: each finishes and reports every Service.
  const audits = await Promise.all(Array.from({ length: 6 }, () => runAudit(kubeconfig, ns)));
  for (const audit of audits) {
    assert.equal(audit.code, 3, `the audit finished (3: IPv4-only Services remain), not 1:\n${audit.stderr}`);
    assert.equal((JSON.parse(audit.stdout) as { services: unknown[] }).services.length, services);
  }
  const auditThrottles = throttled();

  const metrics = `127.0.0.1:${await freePort()}`;
  const operator = new OperatorProcess(env.cp, SQUEEZED_USER.name, {}, [
    `--metrics-bind-address=${metrics}`,
    "--metrics-secure=false",
  ]).start();
  try {
    await createPlan(env.client, "throttled", {
      targetPhase: "DualStack",
      selector: { namespaces: [ns] },
      rollout: { batchSize: "100%", pauseBetweenBatches: "0s" },
    });
    const done = await waitForCondition(env.client, "throttled", "DualStackComplete", "True", 900_000);
    const why = `${JSON.stringify(done.status?.summary)}\n${JSON.stringify(done.status?.problems)}\n${operator.output.slice(-4000)}`;
    assert.equal(done.status?.summary?.dualStack, services, why);
    assert.equal(done.status?.summary?.failed, 0, `no Service failed for a 429: ${why}`);
    const retries = await eventually(async () => (await retriesFromMetrics(metrics)) || undefined, "the retries");
    const rolloutThrottles = throttled() - auditThrottles;
    assert.ok(rolloutThrottles > 0, "the operator's user really was throttled");
    assert.ok(retries > 0, "the operator retried what was throttled");
    console.log(
      `      ${services} Services; 6 audits at once: ${auditThrottles} answers 429, all 6 finished; ` +
        `rollout: ${rolloutThrottles} answers 429, ${retries} retried by the operator, 0 Services failed, ` +
        `phase ${(await getPlan(env.client, "throttled")).status?.phase}`,
    );
  } finally {
    await operator.stop("SIGKILL");
  }
}
