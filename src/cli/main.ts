#!/usr/bin/env node
// ipv6-migrate: the operator and its tools. Installed by npm also as `kubectl-ipv6_migrate` (kubectl runs it as
// `kubectl ipv6-migrate`) and as `ipv6-migration-operator` (what `npx ipv6-migration-operator` runs).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
// Only Node's modules, the flags and the start-up step are loaded before a command runs: the start-up step must
// come before client-node is loaded (../runtime/startup.ts), and `--help` or `version` need nothing else.
import type { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { errorMessage } from "../runtime/errors.js";
import { loadSlimClientNode, reexecWithMemoryLimits } from "../runtime/startup.js";
import { DEFAULT_CERT_NAME, DEFAULT_KEY_NAME, readTlsMaterial } from "../runtime/secure-serving.js";
import { formatFlags, HELP_FLAG, parseFlags, UsageError, type FlagSpecs, type ParsedFlags } from "./flags.js";

const KUBECTL_PLUGIN_PREFIX = "kubectl-";
/** How the user called us, for the help: kubectl finds a plugin `kubectl ipv6-migrate` as kubectl-ipv6_migrate. */
const PROGRAM = path.basename(process.argv[1] ?? "").startsWith(KUBECTL_PLUGIN_PREFIX)
  ? "kubectl ipv6-migrate"
  : "ipv6-migrate";
const CLIENT_NODE = "@kubernetes/client-node";
const DEFAULT_LEADER_ELECTION_NAMESPACE = "ipv6-migration-system";
/** kubebuilder's ports: HTTPS /metrics on 8443; plain HTTP (--metrics-secure=false) on 8080. */
const DEFAULT_SECURE_METRICS_ADDRESS = ":8443";
const DEFAULT_INSECURE_METRICS_ADDRESS = ":8080";
const SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
const AUDIT_USER_AGENT = "ipv6-migrate-audit";
const EXIT_USAGE = 2;
/** More writes in flight than this only queue inside the API server (its max-mutating-requests-inflight is 200). */
const MAX_WRITE_CONCURRENCY = 200;
const EXIT_IPV4_ONLY_REMAIN = 3;

const CONNECTION_FLAGS: FlagSpecs = {
  kubeconfig: {
    type: "string",
    value: "PATH",
    help: "kubeconfig file (else $KUBECONFIG, else ~/.kube/config, else the in-cluster config)",
  },
  context: { type: "string", value: "NAME", help: "the kubeconfig context to use (default: its current-context)" },
};

interface Command {
  /** The command line after the program's name, for the help. */
  usage: string;
  summary: string;
  details?: string;
  flags: FlagSpecs;
  run(flags: ParsedFlags): Promise<number>;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function clientNodeVersion(): string {
  // client-node's package.json has no "exports" map, so its package.json resolves like any file in it.
  const file = createRequire(import.meta.url).resolve(`${CLIENT_NODE}/package.json`);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

async function parseFlagDuration(name: string, value: string | undefined, fallbackMs: number): Promise<number> {
  const { parseDuration } = await import("../migration/plan.js");
  try {
    return parseDuration(value, fallbackMs);
  } catch {
    throw new UsageError(`--${name} must be a duration such as 30s or 5m, not "${value ?? ""}"`);
  }
}

function parseCount(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_WRITE_CONCURRENCY) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${MAX_WRITE_CONCURRENCY}, not "${value}"`);
  }
  return Number(value);
}

async function loadKubeConfig(flags: ParsedFlags): Promise<KubeConfig> {
  loadSlimClientNode();
  const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
  const kc = new KubeConfig();
  const file = flags.string("kubeconfig");
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  const context = flags.string("context");
  if (context !== undefined) {
    if (!kc.getContextObject(context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(`context "${context}" is not in the kubeconfig (it has: ${known.join(", ") || "none"})`);
    }
    kc.setCurrentContext(context);
  }
  return kc;
}

async function operator(flags: ParsedFlags): Promise<number> {
  // Before anything is loaded or written: this may replace the process by itself with V8's memory limits set.
  reexecWithMemoryLimits();
  loadSlimClientNode();
  const [
    { createLogger },
    { ApiError, KubeClient },
    { DEFAULT_CUTOVER_PACING_MS, DEFAULT_WRITE_CONCURRENCY, buildOperator, preflightAPI },
  ] = await Promise.all([
    import("../runtime/log.js"),
    import("../runtime/client.js"),
    import("../reconciler/operator.js"),
  ]);
  const logger = createLogger({ level: flags.string("log-level") });
  const secure = flags.booleanOr("metrics-secure", true);
  const certDir = flags.string("metrics-cert-dir");
  if (!secure && certDir !== undefined) {
    throw new UsageError("--metrics-cert-dir needs --metrics-secure (plain HTTP has no certificate)");
  }
  const certName = flags.string("metrics-cert-name");
  const keyName = flags.string("metrics-cert-key");
  if (certDir !== undefined) {
    // Before anything starts, so that a wrong mount says which flag to fix.
    try {
      readTlsMaterial(certDir, certName, keyName);
    } catch (err) {
      throw new UsageError(`--metrics-cert-dir: ${errorMessage(err)}`);
    }
  }
  const preflightIntervalMs = await parseFlagDuration(
    "preflight-interval",
    flags.string("preflight-interval"),
    300_000,
  );
  const pacing = flags.string("cutover-pacing");
  // "0" is a duration here too: pacing off.
  const cutoverPacingMs =
    pacing === "0" ? 0 : await parseFlagDuration("cutover-pacing", pacing, DEFAULT_CUTOVER_PACING_MS);
  const writeConcurrency = parseCount(
    "write-concurrency",
    flags.string("write-concurrency"),
    DEFAULT_WRITE_CONCURRENCY,
  );
  const client = new KubeClient(await loadKubeConfig(flags));
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
  let namespace = flags.string("leader-election-namespace");
  if (!namespace) {
    try {
      namespace = readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, "utf8").trim();
    } catch {
      namespace = DEFAULT_LEADER_ELECTION_NAMESPACE;
    }
  }
  const manager = await buildOperator({
    client,
    logger,
    metricsBindAddress:
      flags.string("metrics-bind-address") ??
      (secure ? DEFAULT_SECURE_METRICS_ADDRESS : DEFAULT_INSECURE_METRICS_ADDRESS),
    secureMetrics: secure ? { certDir, certName, keyName } : undefined,
    healthProbeBindAddress: flags.string("health-probe-bind-address") ?? ":8081",
    leaderElect: flags.boolean("leader-elect"),
    cutoverPacingMs,
    writeConcurrency,
    leaderElectionNamespace: namespace,
    preflightIntervalMs,
  });
  logger.info("starting ipv6-migration-operator", { version: packageVersion() });
  await manager.run();
  return manager.lostLeadership ? 1 : 0;
}

async function auditCommand(flags: ParsedFlags): Promise<number> {
  const output = flags.string("output") ?? "table";
  if (output !== "table" && output !== "json" && output !== "yaml") {
    throw new UsageError(`--output must be table, json or yaml, not "${output}"`);
  }
  loadSlimClientNode();
  const [{ KubeClient }, { audit, formatAudit }] = await Promise.all([
    import("../runtime/client.js"),
    import("./audit.js"),
  ]);
  const client = new KubeClient(await loadKubeConfig(flags), AUDIT_USER_AGENT);
  const report = await audit(client, {
    namespaces: flags.list("namespace"),
    excludeNamespaces: flags.list("exclude-namespace"),
    selector: flags.string("selector"),
  });
  // Written to the end before the exit: process.exit() would cut a large report short on a pipe.
  await new Promise<void>((resolve) => process.stdout.write(`${formatAudit(report, output)}\n`, () => resolve()));
  return report.summary.ipv4Only > 0 ? EXIT_IPV4_ONLY_REMAIN : 0;
}

async function demoCommand(flags: ParsedFlags): Promise<number> {
  // The demo runs the test harness (etcd and kube-apiserver built from Go modules): loaded only here, so the
  // operator and audit never load it, and the image and the npm package can leave it out.
  let module: typeof import("./demo.js");
  try {
    module = await import("./demo.js");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new Error(
      "this installation does not include the demo's local control plane; run `make demo` in a clone of the repository",
      { cause: err },
    );
  }
  return module.demo({ keep: flags.boolean("keep"), out: process.stdout });
}

function versionCommand(): Promise<number> {
  console.log(`ipv6-migrate: ${packageVersion()}`);
  console.log(`${CLIENT_NODE}: ${clientNodeVersion()}`);
  console.log(`node: ${process.version}`);
  return Promise.resolve(0);
}

const COMMANDS: Record<string, Command> = {
  operator: {
    usage: "operator [flags]",
    summary: "run the controller (in a cluster, or against a kubeconfig)",
    details: "Flags use kubebuilder's names. Exits 0 on SIGTERM after a graceful stop, 1 on an error.",
    flags: {
      ...CONNECTION_FLAGS,
      "metrics-bind-address": {
        type: "string",
        value: "ADDR",
        help: `where /metrics is served; 0 turns it off (default ${DEFAULT_SECURE_METRICS_ADDRESS}, ${DEFAULT_INSECURE_METRICS_ADDRESS} with --metrics-secure=false)`,
      },
      "metrics-secure": {
        type: "boolean",
        help: "serve /metrics over HTTPS to callers whose bearer token may get it (TokenReview and SubjectAccessReview); --metrics-secure=false serves plain HTTP to anyone (default true)",
      },
      "metrics-cert-dir": {
        type: "string",
        value: "DIR",
        help: "the certificate and key of HTTPS /metrics, read again when they change (default: a self-signed one made at start)",
      },
      "metrics-cert-name": {
        type: "string",
        value: "FILE",
        help: `the certificate's file in --metrics-cert-dir (default ${DEFAULT_CERT_NAME})`,
      },
      "metrics-cert-key": {
        type: "string",
        value: "FILE",
        help: `the key's file in --metrics-cert-dir (default ${DEFAULT_KEY_NAME})`,
      },
      "health-probe-bind-address": {
        type: "string",
        value: "ADDR",
        help: "where /healthz and /readyz are served; 0 turns it off (default :8081)",
      },
      "leader-elect": {
        type: "boolean",
        help: "elect a leader among replicas with a coordination.k8s.io Lease",
      },
      "leader-election-namespace": {
        type: "string",
        value: "NS",
        help: `namespace of that Lease (default: the pod's, else ${DEFAULT_LEADER_ELECTION_NAMESPACE})`,
      },
      "log-level": { type: "string", value: "LEVEL", help: "error, warn, info or debug (default info, or $LOG_LEVEL)" },
      "preflight-interval": {
        type: "string",
        value: "DURATION",
        help: "how often Pods and ConfigMaps are rescanned for preflight findings (default 5m)",
      },
      "cutover-pacing": {
        type: "string",
        value: "DURATION",
        help: "wait after the write that makes kube-proxy sync before a batch of cutovers; 0 turns pacing off (default 150ms)",
      },
      "write-concurrency": {
        type: "string",
        value: "N",
        help: "Service writes in flight at once within a batch (default 8)",
      },
      ...HELP_FLAG,
    },
    run: operator,
  },
  audit: {
    usage: "audit [flags]",
    summary: "report, read-only, where each Service stands and what IPv6-only would do",
    details: `Exit code: 0 when no selected Service is IPv4-only, ${EXIT_IPV4_ONLY_REMAIN} when some are, 1 on an error, ${EXIT_USAGE} on bad usage.`,
    flags: {
      ...CONNECTION_FLAGS,
      output: { type: "string", short: "o", value: "FORMAT", help: "table, json or yaml (default table)" },
      namespace: {
        type: "string",
        short: "n",
        multiple: true,
        value: "NS",
        help: "only this namespace (default: all but kube-system)",
      },
      "exclude-namespace": { type: "string", multiple: true, value: "NS", help: "never this namespace" },
      selector: { type: "string", short: "l", value: "SELECTOR", help: "only Services matching this label selector" },
      ...HELP_FLAG,
    },
    run: auditCommand,
  },
  demo: {
    usage: "demo [flags]",
    summary: "the whole job on a local control plane (from a clone of the repository; needs Go the first time)",
    flags: {
      keep: { type: "boolean", help: "leave the control plane running at the end, until Ctrl-C" },
      ...HELP_FLAG,
    },
    run: demoCommand,
  },
  version: {
    usage: "version",
    summary: `print the version, and those of ${CLIENT_NODE} and Node`,
    flags: { ...HELP_FLAG },
    run: versionCommand,
  },
};

const GLOBAL_FLAGS: FlagSpecs = {
  version: { type: "boolean", help: "the same as the version command" },
  ...HELP_FLAG,
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const commands = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}   ${c.summary}`);
  return [
    `${PROGRAM} moves a cluster's Services from IPv4 to IPv6 without losing anything.`,
    "",
    "Usage:",
    `  ${PROGRAM} <command> [flags]`,
    "",
    "Commands:",
    ...commands,
    `  ${"help".padEnd(width)}   the help of a command, as <command> --help`,
    "",
    "Flags:",
    formatFlags(GLOBAL_FLAGS),
    "",
    `Run "${PROGRAM} <command> --help" for a command's flags.`,
  ].join("\n");
}

function commandHelp(command: Command): string {
  return [
    command.summary,
    "",
    "Usage:",
    `  ${PROGRAM} ${command.usage}`,
    "",
    "Flags:",
    formatFlags(command.flags),
    ...(command.details ? ["", command.details] : []),
  ].join("\n");
}

/** Bad usage, with how to use the command it happened in (the program's help when none). */
class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly help: string,
  ) {
    super(message);
  }
}

/** Runs `step`, giving a UsageError it throws the usage of the command it happened in. */
async function withHelp<T>(help: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof UsageError && !(err instanceof CommandUsageError))
      throw new CommandUsageError(err.message, help);
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  // Flags before the command are the program's own; `--` may stand before the command too.
  let at = argv.findIndex((a) => a === "--" || !a.startsWith("-"));
  if (at < 0) at = argv.length;
  const global = await withHelp(mainHelp(), () => parseFlags(argv.slice(0, at), GLOBAL_FLAGS));
  if (global.boolean("help")) {
    console.log(mainHelp());
    return 0;
  }
  if (global.boolean("version")) return versionCommand();
  const commandAt = argv[at] === "--" ? at + 1 : at;
  const name = argv[commandAt];
  const args = argv.slice(commandAt + 1);
  if (name === undefined) {
    console.error(mainHelp());
    return EXIT_USAGE;
  }
  if (name === "help") {
    const topic = args[0];
    const command = topic === undefined ? undefined : COMMANDS[topic];
    if (topic !== undefined && !command) throw new CommandUsageError(`unknown command "${topic}"`, mainHelp());
    console.log(command ? commandHelp(command) : mainHelp());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new CommandUsageError(`unknown command "${name}"`, mainHelp());
  const help = commandHelp(command);
  const hint = `Usage:\n  ${PROGRAM} ${command.usage}\n\nRun "${PROGRAM} ${name} --help" for its flags.`;
  return withHelp(hint, () => {
    const flags = parseFlags(args, command.flags);
    if (flags.boolean("help")) {
      console.log(help);
      return 0;
    }
    const [extra] = flags.positionals;
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    return command.run(flags);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`${PROGRAM}: ${errorMessage(err)}`);
    if (err instanceof CommandUsageError) console.error(`\n${err.help}`);
    process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
  },
);
