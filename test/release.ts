// Shared by the tests of what a release ships (dist/install.yaml, the Helm chart, the npm package and the kubectl
// plugin): running make, helm and other programs, and reading multi-document YAML.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { load, loadAll } from "js-yaml";
import { repoRoot, toolsDir, type ControlPlane } from "../src/testenv/controlplane.js";

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

export function runCommand(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

/** Fails with the program's output when it did not exit 0. */
export function succeeded(result: CommandResult, what: string): CommandResult {
  assert.equal(result.code, 0, `${what} exited ${result.code}:\n${result.stderr}\n${result.stdout}`);
  return result;
}

export const PACKAGE = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
  name: string;
  version: string;
  private?: boolean;
  bin?: Record<string, string>;
  files?: string[];
};

/** Node's directory first on the PATH: the CLI's `#!/usr/bin/env node` must find the Node that runs the tests. */
export function pathWithNode(...first: string[]): string {
  return [...first, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter);
}

/**
 * `make TARGET VAR=value...` in the repository. `-o build` because the test run has compiled dist/ already, and
 * a rebuild would rewrite the files other tests run.
 */
export function make(target: string, vars: Record<string, string> = {}): Promise<CommandResult> {
  const assignments = Object.entries(vars).map(([name, value]) => `${name}=${value}`);
  return runCommand("make", ["-s", "-C", repoRoot, "-o", "build", target, ...assignments], {
    env: { ...process.env, PATH: pathWithNode() },
  });
}

/** A Makefile variable's value, as make computes it. */
export async function makeVariable(name: string): Promise<string> {
  const result = await runCommand("make", [
    "-s",
    "-C",
    repoRoot,
    `--eval=print-variable: ; @echo $(${name})`,
    "print-variable",
  ]);
  return succeeded(result, `make print ${name}`).stdout.trim();
}

/** `kubectl` of the harness with the control plane's admin kubeconfig, as the Makefile's KUBECTL. */
export function kubectlVariable(cp: ControlPlane): string {
  return `${path.join(cp.bin, "kubectl")} --kubeconfig=${cp.kubeconfigPath}`;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/**
 * The objects of a multi-document YAML, as plain data: js-yaml, not client-node's loadAllYaml, which turns known
 * kinds into model classes with renamed keys (a CRD's `default` becomes `_default`).
 */
export function parseManifests(text: string): Manifest[] {
  return (loadAll(text) as (Manifest | null)[]).filter((m): m is Manifest => m !== null && !!m.kind);
}

export function parseYaml<T>(text: string): T {
  return load(text) as T;
}

export function findManifest(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  assert.ok(found, `no ${kind}${name ? ` ${name}` : ""} among ${manifests.map((m) => m.kind).join(", ")}`);
  return found;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  [field: string]: unknown;
}

export interface DeploymentManifest extends Manifest {
  spec: {
    replicas?: number;
    template: {
      metadata: { labels?: Record<string, string> };
      spec: { serviceAccountName?: string; containers: Container[]; [field: string]: unknown };
    };
  };
}

export function managerContainer(manifests: Manifest[]): Container {
  const deployment = findManifest(manifests, "Deployment") as DeploymentManifest;
  const container = deployment.spec.template.spec.containers.find((c) => c.name === "manager");
  assert.ok(container, "the Deployment has a manager container");
  return container;
}

/** The harness's helm (testenv/build.sh --tools), with its cache and configuration under `dir`. */
export async function helmRunner(dir: string): Promise<(args: string[], input?: string) => Promise<CommandResult>> {
  const helm = path.join(await toolsDir(), "helm");
  const home = path.join(dir, "helm");
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, sub] of [
    ["HELM_CACHE_HOME", "cache"],
    ["HELM_CONFIG_HOME", "config"],
    ["HELM_DATA_HOME", "data"],
  ] as const) {
    env[name] = path.join(home, sub);
    mkdirSync(env[name], { recursive: true });
  }
  return (args, input) => runCommand(helm, args, { env, input });
}
