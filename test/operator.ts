// Runs the operator through its real entry point (`ipv6-migrate operator`) for the integration tests.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { fileURLToPath } from "node:url";
import { MIGRATION_PLANS, type MigrationPlan } from "../src/api/migrationplan.js";
import type { KubeClient } from "../src/runtime/client.js";
import { findCondition } from "../src/runtime/object.js";
import { repoRoot, toolsDir, type ControlPlane } from "../src/testenv/controlplane.js";
import { eventually } from "./helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const CLI = path.join(here, "../src/cli/main.js");
/** The operator with the fault suite's kill hook injected (test/fixtures/fault-operator.ts). */
export const FAULT_OPERATOR = path.join(here, "fixtures/fault-operator.js");
export const CRD_DIR = path.join(here, "../../crds");

interface ManagerContainer {
  env?: { name: string; value?: string }[];
  resources?: { limits?: { memory?: string } };
}

/** The operator container as config/manager ships it: its memory limit and the env that tunes V8 and malloc. */
export function shippedContainer(): { limitMiB: number; env: Record<string, string> } {
  const docs = loadAllYaml(readFileSync(path.join(repoRoot, "config/manager/manager.yaml"), "utf8")) as {
    kind?: string;
    spec?: { template?: { spec?: { containers?: ManagerContainer[] } } };
  }[];
  const container = docs.find((d) => d.kind === "Deployment")?.spec?.template?.spec?.containers?.[0];
  const limit = /^(\d+)Mi$/.exec(container?.resources?.limits?.memory ?? "")?.[1];
  assert.ok(limit, "config/manager/manager.yaml sets resources.limits.memory in Mi");
  const env: Record<string, string> = {};
  for (const e of container?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return { limitMiB: Number(limit), env };
}

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

  /** Starts `ipv6-migrate operator`; with `killAfter` (STEP[:N]), the fault fixture that kills itself there. */
  start(options: { killAfter?: string } = {}): this {
    const kubeconfig = this.cp.writeKubeconfig(this.cp.user(this.user));
    const args = options.killAfter
      ? [FAULT_OPERATOR, kubeconfig, options.killAfter]
      : [
          CLI,
          "operator",
          `--kubeconfig=${kubeconfig}`,
          "--metrics-bind-address=0",
          "--health-probe-bind-address=0",
          ...this.args,
        ];
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LOG_FORMAT: "json", ...this.env },
    });
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

export function createPlan(
  client: KubeClient,
  name: string,
  spec: MigrationPlan["spec"] | Record<string, unknown>,
): Promise<MigrationPlan> {
  return client.create<MigrationPlan>(MIGRATION_PLANS, undefined, {
    apiVersion: "ipv6migration.io/v1alpha1",
    kind: "MigrationPlan",
    metadata: { name },
    spec,
  });
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

export interface Verdict {
  status: string;
  message: string;
}

function run(
  file: string,
  args: string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The testenv helper binaries, built by testenv/build.sh --tools. */
export async function toolHelpers(): Promise<{ kstatus: string; luaHealth: string }> {
  const tools = await toolsDir();
  return { kstatus: path.join(tools, "kstatus-check"), luaHealth: path.join(tools, "lua-health") };
}

export async function verdict(file: string, args: string[], plan: MigrationPlan): Promise<Verdict> {
  const result = await run(file, args, JSON.stringify(plan));
  assert.equal(result.code, 0, `${path.basename(file)} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Verdict;
}

/** What Flux's kstatus makes of a plan. */
export async function kstatusOf(plan: MigrationPlan): Promise<Verdict> {
  return verdict((await toolHelpers()).kstatus, [], plan);
}
