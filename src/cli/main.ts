#!/usr/bin/env node
// ipv6-migrate: the operator and its tools.
import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { ApiError, KubeClient } from "../runtime/client.js";
import { createLogger, errorMessage } from "../runtime/log.js";
import { buildOperator, preflightAPI } from "../reconciler/operator.js";
import { parseDuration } from "../migration/plan.js";
import { audit, formatAudit } from "./audit.js";
import { demo } from "./demo.js";

const HELP = `ipv6-migrate moves a cluster's Services from IPv4 to IPv6 without losing anything.

Usage:
  ipv6-migrate operator [flags]   run the controller (in a cluster, or against a kubeconfig)
  ipv6-migrate audit [flags]      report, read-only, where each Service stands and what IPv6-only would do
  ipv6-migrate demo [--keep]      the whole job on a local control plane (needs Go the first time)
  ipv6-migrate --version          print the version
  ipv6-migrate --help             this text

Audit flags:
  --kubeconfig PATH                  as for operator (else $KUBECONFIG, else ~/.kube/config)
  -o, --output table|json|yaml       output format (default table)
  -n, --namespace NS                 only this namespace (repeatable; default all but kube-system)
  --exclude-namespace NS             never this namespace (repeatable)
  -l, --selector SELECTOR            only Services matching this label selector
  Exit code: 0 when no selected Service is IPv4-only, 3 when some are, 1 on error, 2 on bad usage.

Operator flags (kubebuilder's names):
  --kubeconfig PATH                  kubeconfig to use (else $KUBECONFIG, else in-cluster config)
  --metrics-bind-address ADDR        where /metrics is served, e.g. :8080; 0 turns it off (default :8080)
  --health-probe-bind-address ADDR   where /healthz and /readyz are served; 0 turns it off (default :8081)
  --leader-elect                     elect a leader among replicas with a coordination.k8s.io Lease
  --leader-election-namespace NS     namespace of that Lease (default: the pod's, else ipv6-migration-system)
  --log-level LEVEL                  error, warn, info or debug (default info, or $LOG_LEVEL)
  --preflight-interval DURATION      how often Pods and ConfigMaps are rescanned for preflight findings (default 5m)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

interface Flags {
  [name: string]: string | string[] | boolean | undefined;
}

class UsageError extends Error {}

const SHORT_FLAGS: Record<string, string> = { o: "output", n: "namespace", l: "selector" };

/** Flags as kubectl takes them: --name value, --name=value, -x value; repeatable ones collect into lists. */
function parseFlags(args: string[], booleans: Set<string>, repeatable = new Set<string>()): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    let arg = args[i] ?? "";
    if (/^-[a-z]$/.test(arg)) arg = `--${SHORT_FLAGS[arg.slice(1)] ?? arg.slice(1)}`;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (booleans.has(name)) {
      flags[name] = eq < 0 ? true : arg.slice(eq + 1) !== "false";
    } else {
      const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
      if (value === undefined) throw new UsageError(`flag --${name} needs a value`);
      if (repeatable.has(name)) {
        const list = flags[name];
        flags[name] = Array.isArray(list) ? [...list, value] : [value];
      } else {
        flags[name] = value;
      }
    }
  }
  return flags;
}

function parseFlagDuration(name: string, value: string | undefined, fallbackMs: number): number {
  try {
    return parseDuration(value, fallbackMs);
  } catch {
    throw new UsageError(`--${name} must be a duration such as 30s or 5m, not "${value ?? ""}"`);
  }
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
    "preflight-interval",
  ]);
  const flags = parseFlags(args, new Set(["leader-elect"]));
  for (const name of Object.keys(flags)) if (!known.has(name)) throw new UsageError(`unknown flag --${name}`);
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
    preflightIntervalMs: parseFlagDuration(
      "preflight-interval",
      flags["preflight-interval"] as string | undefined,
      300_000,
    ),
  });
  logger.info("starting ipv6-migration-operator", { version: version() });
  await manager.run();
  return manager.lostLeadership ? 1 : 0;
}

async function auditCommand(args: string[]): Promise<number> {
  const known = new Set(["kubeconfig", "output", "namespace", "exclude-namespace", "selector"]);
  const flags = parseFlags(args, new Set(), new Set(["namespace", "exclude-namespace"]));
  for (const name of Object.keys(flags)) if (!known.has(name)) throw new UsageError(`unknown flag --${name}`);
  const output = (flags.output as string | undefined) ?? "table";
  if (output !== "table" && output !== "json" && output !== "yaml") {
    throw new UsageError(`--output must be table, json or yaml, not "${output}"`);
  }
  const client = new KubeClient(loadKubeConfig(flags.kubeconfig as string | undefined), "ipv6-migrate-audit");
  const report = await audit(client, {
    namespaces: (flags.namespace as string[] | undefined) ?? [],
    excludeNamespaces: (flags["exclude-namespace"] as string[] | undefined) ?? [],
    selector: flags.selector as string | undefined,
  });
  // Written to the end before the exit: process.exit() would cut a large report short on a pipe.
  await new Promise<void>((resolve) => process.stdout.write(`${formatAudit(report, output)}\n`, () => resolve()));
  return report.summary.ipv4Only > 0 ? 3 : 0;
}

async function demoCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, new Set(["keep"]));
  for (const name of Object.keys(flags)) if (name !== "keep") throw new UsageError(`unknown flag --${name}`);
  return demo({ keep: flags.keep === true, out: process.stdout });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "operator":
      return operator(rest);
    case "audit":
      return auditCommand(rest);
    case "demo":
      return demoCommand(rest);
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
      console.error(`ipv6-migrate: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ipv6-migrate: ${errorMessage(err)}`);
    if (err instanceof UsageError) console.error(`\n${HELP}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
