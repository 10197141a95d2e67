#!/usr/bin/env node
// ipv6-migrate: the operator and its tools.
import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { ApiError, KubeClient } from "../runtime/client.js";
import { createLogger, errorMessage } from "../runtime/log.js";
import { buildOperator, preflightAPI } from "../reconciler/operator.js";

const HELP = `ipv6-migrate moves a cluster's Services from IPv4 to IPv6 without losing anything.

Usage:
  ipv6-migrate operator [flags]   run the controller (in a cluster, or against a kubeconfig)
  ipv6-migrate --version          print the version

Operator flags (kubebuilder's names):
  --kubeconfig PATH                  kubeconfig to use (else $KUBECONFIG, else in-cluster config)
  --metrics-bind-address ADDR        where /metrics is served, e.g. :8080; 0 turns it off (default :8080)
  --health-probe-bind-address ADDR   where /healthz and /readyz are served; 0 turns it off (default :8081)
  --leader-elect                     elect a leader among replicas with a coordination.k8s.io Lease
  --leader-election-namespace NS     namespace of that Lease (default: the pod's, else ipv6-migration-system)
  --log-level LEVEL                  error, warn, info or debug (default info, or $LOG_LEVEL)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

interface Flags {
  [name: string]: string | boolean | undefined;
}

function parseFlags(args: string[], booleans: Set<string>): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (booleans.has(name)) {
      flags[name] = eq < 0 ? true : arg.slice(eq + 1) !== "false";
    } else {
      const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new Error(`flag --${name} needs a value`);
      flags[name] = value;
    }
  }
  return flags;
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

async function operator(args: string[]): Promise<number> {
  const known = new Set([
    "kubeconfig",
    "metrics-bind-address",
    "health-probe-bind-address",
    "leader-elect",
    "leader-election-namespace",
    "log-level",
  ]);
  const flags = parseFlags(args, new Set(["leader-elect"]));
  for (const name of Object.keys(flags)) if (!known.has(name)) throw new Error(`unknown flag --${name}\n\n${HELP}`);
  const logger = createLogger({ level: flags["log-level"] as string | undefined });
  const client = new KubeClient(loadKubeConfig(flags.kubeconfig as string | undefined));
  try {
    await preflightAPI(client);
  } catch (err) {
    if (err instanceof ApiError && (err.code === 401 || err.code === 403)) {
      throw new Error(
        `the API server refused the credentials (${err.code} ${err.reason}): ${err.status.message ?? ""}`,
        { cause: err },
      );
    }
    throw err;
  }
  let namespace = flags["leader-election-namespace"] as string | undefined;
  if (!namespace) {
    try {
      namespace = readFileSync("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "utf8").trim();
    } catch {
      namespace = "ipv6-migration-system";
    }
  }
  const manager = await buildOperator({
    client,
    logger,
    metricsBindAddress: (flags["metrics-bind-address"] as string | undefined) ?? ":8080",
    healthProbeBindAddress: (flags["health-probe-bind-address"] as string | undefined) ?? ":8081",
    leaderElect: flags["leader-elect"] === true,
    leaderElectionNamespace: namespace,
  });
  logger.info("starting ipv6-migration-operator", { version: version() });
  await manager.run();
  return manager.lostLeadership ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "operator":
      return operator(rest);
    case "--version":
    case "version":
      console.log(version());
      return 0;
    case undefined:
    case "--help":
    case "-h":
    case "help":
      console.log(HELP);
      return command === undefined ? 2 : 0;
    default:
      console.error(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ipv6-migrate: ${errorMessage(err)}`);
    process.exit(1);
  },
);
