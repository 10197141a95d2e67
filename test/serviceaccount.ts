// The operator as it runs in its Pod: authenticated as a ServiceAccount, with a token from the TokenRequest API
// (what the kubelet mounts), rather than as one of the control plane's static token users.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../src/runtime/client.js";
import type { ControlPlane } from "../src/testenv/controlplane.js";
import { CLI } from "./operator.js";

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

/** The user name the API server gives the ServiceAccount's requests (in RBAC denials and the audit log). */
export function serviceAccountUser(sa: ServiceAccountRef): string {
  return `system:serviceaccount:${sa.namespace}:${sa.name}`;
}

interface TokenRequest {
  status?: { token?: string };
}

/** A bound token for the ServiceAccount, for the API server's default audience. */
export async function requestToken(
  admin: KubeClient,
  sa: ServiceAccountRef,
  expirationSeconds = 3600,
): Promise<string> {
  const answer = await admin.request<TokenRequest>(
    "POST",
    `/api/v1/namespaces/${sa.namespace}/serviceaccounts/${sa.name}/token`,
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds } } },
  );
  const token = answer.status?.token;
  if (!token) throw new Error(`the TokenRequest for ${sa.namespace}/${sa.name} returned no token`);
  return token;
}

/** A KubeConfig for the control plane that authenticates with `token`. */
export function serviceAccountKubeConfig(cp: ControlPlane, sa: ServiceAccountRef, token: string): KubeConfig {
  const cluster = cp.kubeConfig().getCurrentCluster();
  if (!cluster) throw new Error("the control plane's kubeconfig has no cluster");
  const user = `${sa.namespace}-${sa.name}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  return kc;
}

export function writeServiceAccountKubeconfig(cp: ControlPlane, sa: ServiceAccountRef, token: string): string {
  const file = path.join(cp.dir, `kubeconfig-sa-${sa.namespace}-${sa.name}`);
  writeFileSync(file, serviceAccountKubeConfig(cp, sa, token).exportConfig(), { mode: 0o600 });
  return file;
}

/** `ipv6-migrate operator` with a given kubeconfig and flags (OperatorProcess runs only the token users). */
export class KubeconfigOperatorProcess {
  child: ChildProcess | undefined;
  output = "";
  exit: Promise<number | null> = Promise.resolve(null);

  constructor(
    private readonly kubeconfig: string,
    private readonly flags: string[] = [],
  ) {}

  start(): this {
    const child = spawn(
      process.execPath,
      [
        CLI,
        "operator",
        `--kubeconfig=${this.kubeconfig}`,
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        ...this.flags,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_FORMAT: "json" } },
    );
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (this.output += d));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (this.output += d));
    this.exit = new Promise((resolve) => child.once("exit", (code, signal) => resolve(signal ? -1 : code)));
    this.child = child;
    return this;
  }

  stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.exit;
    this.child.kill(signal);
    return this.exit;
  }
}
