// What a long-running Node process must settle before it loads anything else: V8's memory limits (fixed when
// the isolate is created, so only a re-exec can set them) and which of client-node's modules are loaded.
// Imports nothing but Node's own modules, so that the entry point can run it first.
import { registerHooks } from "node:module";
import process from "node:process";

/**
 * V8's young generation grows to 64 MiB semi-spaces (128 MiB of RSS, kept) after an allocation burst such as
 * a LIST of thousands of objects. Measured after a 3,000-Service rollout (as shipped, twice each): 8 MiB
 * semi-spaces held 141-146 MiB of RSS, 2 MiB 127-130 MiB (and 14 MiB less during the audit), for 3-5% more CPU
 * in scavenges; 1 MiB saved no more. What is left is mostly fixed (bench/README.md).
 */
export const MAX_SEMI_SPACE_MIB = 2;
/**
 * V8 lets the old generation grow to up to 4 times its live size before the next full collection; 20% keeps it
 * near what the caches hold (a 1,000-Service rollout: 125 MiB of RSS instead of 154, for 8% more CPU, where
 * --optimize-for-size made 112 MiB for 40% more CPU and a slower rollout).
 */
const HEAP_GROWING_PERCENT = 20;
/**
 * The highest of V8's compiler tiers used: 1 is the baseline compiler (Sparkplug), without Maglev and TurboFan.
 * The operator's hot paths are JSON parsing and the network, which no tier changes. Measured after a
 * 3,000-Service rollout (bench/memprobe.ts): 98 MiB of RSS instead of 116 (8 MiB fewer pages of the node
 * executable, 9 MiB less optimized code and its metadata), the same rollout time (38.3 s / 39.0 s, bound by the
 * API server), 25% more of the operator's own CPU in it (8.2 s / 6.6 s). A 20,000-Service audit (spawn to Audited)
 * took 2.97-3.16 s against 2.88-2.90 s with Maglev allowed (--max-opt=2), while its classification still parsed
 * every ClusterIP; without that waste it takes 2.44-2.46 s with the baseline compiler alone.
 */
const MAX_OPT_TIER = 1;
/** After a burst (a rollout, a rescan), the heap is shrunk once the process idles this long; V8's default is 8 s. */
const MEMORY_REDUCER_DELAY_MS = 1000;
/** Of a container's memory limit, what V8's old generation may use before it must collect rather than grow. */
const OLD_SPACE_SHARE = 0.75;
/** glibc's default of one malloc arena per core lets freed response buffers fragment across arenas. */
const MALLOC_ARENA_MAX = "2";
const HEAP_SIZE_FLAG = "--max-heap-size";

/**
 * The V8 flags to re-exec with: each of ours that the user (NODE_OPTIONS, node's own flags) did not give; the
 * sizes are left alone altogether when the user set the heap's size.
 */
export function memoryFlags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
  constrainedBytes: number,
): string[] {
  const given = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].map((a) => a.split("=")[0]?.replace(/_/g, "-"));
  const sized = given.includes(HEAP_SIZE_FLAG);
  const flags: [string, string | undefined][] = [
    ["--max-semi-space-size", sized ? undefined : String(MAX_SEMI_SPACE_MIB)],
    // process.constrainedMemory() is the cgroup's limit, or a huge number (or 0) when there is none.
    [
      "--max-old-space-size",
      !sized && constrainedBytes > 0 && constrainedBytes < 2 ** 50
        ? String(Math.max(64, Math.floor((constrainedBytes / 2 ** 20) * OLD_SPACE_SHARE)))
        : undefined,
    ],
    ["--heap-growing-percent", String(HEAP_GROWING_PERCENT)],
    ["--max-opt", String(MAX_OPT_TIER)],
    ["--gc-memory-reducer-start-delay-ms", String(MEMORY_REDUCER_DELAY_MS)],
  ];
  return flags.flatMap(([name, value]) => (value === undefined || given.includes(name) ? [] : [`${name}=${value}`]));
}

/**
 * Replaces this process (same pid, so signals and the container's PID 1 are unchanged) by the same command with
 * V8's memory limits and heap growth (flags that only the command line can set, not NODE_OPTIONS nor a running
 * process), unless they are set already; returns when it does not re-exec. Node without
 * process.execve (before 22.15/23.11) runs on with V8's defaults.
 */
export function reexecWithMemoryLimits(): void {
  if (typeof process.execve !== "function" || process.platform === "win32") return;
  const flags = memoryFlags(process.execArgv, process.env.NODE_OPTIONS, process.constrainedMemory());
  if (flags.length === 0) return;
  const env = { ...process.env };
  env.MALLOC_ARENA_MAX ??= MALLOC_ARENA_MAX;
  process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], env);
}

const CLIENT_NODE_DIST = "/@kubernetes/client-node/dist/";
/**
 * What config.js imports that ./client-node-deps.ts stands in for: the generated index for two names (every
 * generated API comes with it), undici's index, and the OIDC and SOCKS support, loaded there when first used.
 */
const REPLACED_IMPORTS = new Set(["./gen/index.js", "undici", "./oidc_auth.js", "socks-proxy-agent", "socks"]);
/**
 * Node's modules that config.js imports and that, bound as ES modules, evaluate their lazy exports (WebSocket and
 * the like), which load Node's own copy of undici: 13 MiB of RSS for two Agent classes (measured with Node 24.21).
 * A module that require()s them stands in: require() binds nothing.
 */
const REQUIRED_BUILTINS = new Set(["node:http", "node:https"]);
const REQUIRE_QUERY = "?require=";
/** Watch, health, log and metrics import fetch from undici; when they are loaded (client-node's index), so is it. */
const UNDICI = "undici";
let slim = false;

/**
 * Makes client-node's config.js (KubeConfig) load without what the operator never uses: client-node's generated
 * API classes and models (it sends its own requests and keeps plain JSON), undici's fetch and WebSocket, and until
 * a kubeconfig asks for them, OIDC and SOCKS proxies. Measured on Node 24 (RSS after loading the operator's
 * modules): 130 MiB with client-node's index, 81 MiB with config.js and its own imports, 78 MiB with these; after
 * a 3,000-Service rollout, 117 MiB instead of 123 (bench/memprobe.ts). Must run before config.js is loaded, so
 * the caller imports client-node (and whatever imports it) dynamically after this. A process that also loads
 * client-node's index still gets the whole generated index from it; the names are the same classes either way.
 */
export function loadSlimClientNode(): void {
  if (slim) return;
  slim = true;
  const deps = new URL("./client-node-deps.js", import.meta.url).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL ?? "";
      if (
        parent.includes(CLIENT_NODE_DIST) &&
        (specifier === UNDICI || (parent.endsWith(`${CLIENT_NODE_DIST}config.js`) && REPLACED_IMPORTS.has(specifier)))
      ) {
        return { url: deps, format: "module", shortCircuit: true };
      }
      if (parent.endsWith(`${CLIENT_NODE_DIST}config.js`) && REQUIRED_BUILTINS.has(specifier)) {
        return { url: `${deps}${REQUIRE_QUERY}${specifier}`, format: "module", shortCircuit: true };
      }
      return nextResolve(specifier, context);
    },
    load(url, context, nextLoad) {
      if (!url.startsWith(`${deps}${REQUIRE_QUERY}`)) return nextLoad(url, context);
      const builtin = JSON.stringify(url.slice(deps.length + REQUIRE_QUERY.length));
      const source = `import { createRequire } from "node:module";\nexport default createRequire(import.meta.url)(${builtin});\n`;
      return { format: "module", source, shortCircuit: true };
    },
  });
}
