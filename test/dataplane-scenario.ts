// The traffic scenario shared by the data-plane test (short) and `make bench-dataplane` (long): Services of
// every shape with a pod each, the real operator (`ipv6-migrate operator`, as a child process), a plan driven
// through target phases while the probe's clients run, and the figures per phase.
import { MIGRATION_PLANS, type MigrationPlan, type TargetPhase } from "../src/api/migrationplan.js";
import { KubeClient, NAMESPACES, SERVICES, isAlreadyExists } from "../src/runtime/client.js";
import { findCondition } from "../src/runtime/object.js";
import type { ControlPlane } from "../src/testenv/controlplane.js";
import { APP_LABEL, POD_ECHO_PORT, POD_HTTP_PORT, podFor, type DataPlane } from "../src/testenv/dataplane.js";
import type { PodSpec } from "../src/testenv/node-agent.js";
import { phaseFigures, type PhaseFigures, type PhaseWindow } from "../src/testenv/probe-analysis.js";
import { startProbe, type ProbeRecords, type ProbeService } from "../src/testenv/probe.js";
import type { ProbeConfig } from "../src/testenv/probe-protocol.js";
import { createNamespace, eventually, sleep } from "./helpers.js";
import { OperatorProcess, installCRD, shippedContainer } from "./operator.js";

export const OPERATOR_USER = "operator";
/** Where `ipv6-migrate operator` keeps its own objects when not told otherwise (--leader-election-namespace). */
const OPERATOR_NAMESPACE = "ipv6-migration-system";
export const PLAN = "traffic";
export const SERVICE_PORT = 80;

/** The shapes the probe covers; "dual" ones are created PreferDualStack, as a cluster's newer Services are. */
export const SHAPES = ["clusterip", "clusterip-dual", "nodeport", "nodeport-dual", "headless", "loadbalancer"] as const;
export type Shape = (typeof SHAPES)[number];

export interface EstateService {
  name: string;
  shape: Shape;
  pod: PodSpec;
}

/**
 * n Services cycling through the shapes, each with its own pod (which its selector names); `podOffset` keeps the
 * pods of two estates on one node apart.
 */
export function estate(n: number, shapes: readonly Shape[] = SHAPES, podOffset = 0): EstateService[] {
  return Array.from({ length: n }, (_, i) => {
    const shape = shapes[i % shapes.length];
    const name = `${shape}-${Math.floor(i / shapes.length)}`;
    return { name, shape, pod: podFor(`pod-${podOffset + i}`, podOffset + i) };
  });
}

function serviceBody(svc: EstateService): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    selector: { [APP_LABEL]: svc.pod.name },
    ports: [
      { name: "http", port: SERVICE_PORT, targetPort: POD_HTTP_PORT, protocol: "TCP" },
      { name: "echo", port: POD_ECHO_PORT, targetPort: POD_ECHO_PORT, protocol: "TCP" },
    ],
  };
  if (svc.shape.startsWith("nodeport")) spec.type = "NodePort";
  if (svc.shape === "loadbalancer") spec.type = "LoadBalancer";
  if (svc.shape === "headless") spec.clusterIP = "None";
  if (svc.shape.endsWith("-dual")) spec.ipFamilyPolicy = "PreferDualStack";
  return { apiVersion: "v1", kind: "Service", metadata: { name: svc.name, labels: { [APP_LABEL]: svc.name } }, spec };
}

export interface ScenarioOptions {
  namespace: string;
  services: EstateService[];
  /** Target phases in order, from a plan created at Audit. */
  phases: TargetPhase[];
  batchSize: number | string;
  pauseBetweenBatches: string;
  /** Traffic before the first promotion and after each phase is Ready: the quiet after a change counts too. */
  settleMs: number;
  probe?: Partial<ProbeConfig>;
  log?: (message: string) => void;
  /** Extra environment for the operator process. */
  operatorEnv?: Record<string, string>;
}

export interface ScenarioResult {
  records: ProbeRecords;
  phases: PhaseWindow[];
  figures: PhaseFigures[];
  operatorOutput: string;
}

/** A control plane's users for the scenario: the operator runs as its own identity, as in the fault suite. */
export const SCENARIO_USERS = [{ name: OPERATOR_USER, groups: ["system:masters"] }];

export function pods(services: EstateService[]): PodSpec[] {
  return services.map((s) => s.pod);
}

export async function createEstate(
  cp: ControlPlane,
  dp: DataPlane,
  client: KubeClient,
  options: ScenarioOptions,
): Promise<void> {
  await installCRD(cp);
  await createServicesAndWait(dp, client, options);
}

/** A namespace with the Services of `options`, each answering through kube-proxy and CoreDNS when this returns. */
export async function createServicesAndWait(
  dp: DataPlane,
  client: KubeClient,
  options: Pick<ScenarioOptions, "namespace" | "services">,
): Promise<void> {
  await client.create(NAMESPACES, undefined, { metadata: { name: options.namespace } });
  for (const svc of options.services) await client.create(SERVICES, options.namespace, serviceBody(svc));
  // Measure only once kube-proxy and CoreDNS have every Service: until kube-proxy has seen a Service's
  // EndpointSlices, its ClusterIP refuses connections.
  for (const svc of options.services) {
    const fqdn = `${svc.name}.${options.namespace}.svc.cluster.local`;
    await eventually(async () => {
      const answer = await dp.dns(fqdn, "A");
      if (!answer.addresses?.length) return undefined;
      if (svc.shape === "headless") return true;
      const reply = await dp.get(`http://${answer.addresses[0]}:${SERVICE_PORT}/`);
      return reply.ok && reply.body === svc.pod.name ? true : undefined;
    }, `${svc.name} to answer through kube-proxy and CoreDNS`);
  }
}

function planReady(plan: MigrationPlan): boolean {
  const ready = findCondition(plan.status?.conditions, "Ready");
  return (
    plan.status?.observedGeneration === plan.metadata.generation &&
    ready?.status === "True" &&
    ready.observedGeneration === plan.metadata.generation
  );
}

export async function runScenario(
  cp: ControlPlane,
  dp: DataPlane,
  client: KubeClient,
  options: ScenarioOptions,
): Promise<ScenarioResult> {
  const log = options.log ?? (() => undefined);
  // The operator's own namespace, where it keeps the Service that paces kube-proxy before cutovers.
  await createNamespace(client, OPERATOR_NAMESPACE).catch((err: unknown) => {
    if (!isAlreadyExists(err)) throw err;
  });
  const operator = new OperatorProcess(cp, OPERATOR_USER, {
    ...shippedContainer().env,
    ...options.operatorEnv,
  }).start();
  const probeServices: ProbeService[] = options.services.map((s) => ({
    namespace: options.namespace,
    name: s.name,
    backend: s.pod.name,
    port: SERVICE_PORT,
  }));
  try {
    await client.create(MIGRATION_PLANS, undefined, {
      apiVersion: "ipv6migration.io/v1alpha1",
      kind: "MigrationPlan",
      metadata: { name: PLAN },
      spec: {
        targetPhase: "Audit",
        selector: { namespaces: [options.namespace] },
        ipv6Only: { allowLoadBalancerRecreate: true },
        rollout: { batchSize: options.batchSize, pauseBetweenBatches: options.pauseBetweenBatches },
      },
    });
    await eventually(
      async () => (planReady(await client.get<MigrationPlan>(MIGRATION_PLANS, undefined, PLAN)) ? true : undefined),
      "the plan to be Ready at Audit",
      90_000,
    );
    const probe = await startProbe(dp, client, probeServices, options.probe);
    const phases: PhaseWindow[] = [];
    try {
      let start = performance.timeOrigin + performance.now();
      await sleep(options.settleMs);
      phases.push({ name: "Audit (before)", start, end: performance.timeOrigin + performance.now(), batches: [] });
      let from: TargetPhase = "Audit";
      for (const target of options.phases) {
        start = performance.timeOrigin + performance.now();
        log(`plan ${PLAN}: ${from} -> ${target}`);
        await client.patch(MIGRATION_PLANS, undefined, PLAN, { spec: { targetPhase: target } }, "merge");
        const batches: PhaseWindow["batches"] = [];
        let seen =
          (await client.get<MigrationPlan>(MIGRATION_PLANS, undefined, PLAN)).status?.currentBatch?.number ?? 0;
        await eventually(
          async () => {
            const plan = await client.get<MigrationPlan>(MIGRATION_PLANS, undefined, PLAN);
            const batch = plan.status?.currentBatch;
            if (batch && batch.number !== seen && batch.startedAt) {
              seen = batch.number;
              batches.push({ number: batch.number, t: Date.parse(batch.startedAt) });
            }
            return plan.metadata.generation !== undefined && planReady(plan) ? true : undefined;
          },
          `the plan to be Ready at ${target}`,
          180_000,
        );
        log(`  Ready after ${batches.length} batches; ${Math.round(options.settleMs / 1000)} s more of traffic`);
        await sleep(options.settleMs);
        phases.push({ name: `${from} → ${target}`, start, end: performance.timeOrigin + performance.now(), batches });
        from = target;
      }
    } finally {
      await probe.stop();
    }
    const records = probe.records;
    return { records, phases, figures: phases.map((p) => phaseFigures(records, p)), operatorOutput: operator.output };
  } finally {
    await operator.stop();
  }
}
