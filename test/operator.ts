// Runs the operator through its real entry point (`ipv6-migrate operator`) for the integration tests.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MIGRATION_PLANS, type MigrationPlan } from "../src/migration/api.js";
import type { KubeClient } from "../src/runtime/client.js";
import { findCondition } from "../src/runtime/object.js";
import type { ControlPlane } from "../src/testenv/controlplane.js";
import { eventually } from "./helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLI = path.join(here, "../src/cli/main.js");
export const CRD_DIR = path.join(here, "../../crds");

export class OperatorProcess {
  child: ChildProcess | undefined;
  output = "";
  exit: Promise<number | null> = Promise.resolve(null);

  constructor(
    private readonly cp: ControlPlane,
    private readonly user: string,
    private readonly env: Record<string, string> = {},
    private readonly args: string[] = [],
  ) {}

  start(extraEnv: Record<string, string> = {}): this {
    const kubeconfig = this.cp.writeKubeconfig(this.cp.user(this.user));
    const child = spawn(
      process.execPath,
      [
        CLI,
        "operator",
        `--kubeconfig=${kubeconfig}`,
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        ...this.args,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_FORMAT: "json", ...this.env, ...extraEnv } },
    );
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (this.output += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.output += d));
    this.exit = new Promise((resolve) => child.once("exit", (code, signal) => resolve(signal ? -1 : code)));
    this.child = child;
    return this;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exit;
    this.child.kill(signal);
    return this.exit;
  }
}

export async function installCRD(cp: ControlPlane): Promise<void> {
  const result = await cp.kubectl(["apply", "--server-side", "-f", CRD_DIR]);
  if (result.code !== 0) throw new Error(`installing the CRD failed: ${result.stderr}`);
  const established = await cp.kubectl([
    "wait",
    "--for=condition=Established",
    "crd/migrationplans.ipv6migration.io",
    "--timeout=60s",
  ]);
  if (established.code !== 0) throw new Error(`CRD not established: ${established.stderr}`);
}

export function getPlan(client: KubeClient, name: string): Promise<MigrationPlan> {
  return client.get<MigrationPlan>(MIGRATION_PLANS, undefined, name);
}

/** Waits until the plan's status is for its current generation and `condition` has `status`. */
export function waitForCondition(
  client: KubeClient,
  name: string,
  condition: string,
  status: "True" | "False" = "True",
  timeoutMs = 90_000,
): Promise<MigrationPlan> {
  return eventually(
    async () => {
      const plan = await getPlan(client, name);
      const c = findCondition(plan.status?.conditions, condition);
      return plan.status?.observedGeneration === plan.metadata.generation &&
        c?.status === status &&
        c.observedGeneration === plan.metadata.generation
        ? plan
        : undefined;
    },
    `plan ${name} ${condition}=${status}`,
    timeoutMs,
  );
}
