// Runs the unit suite (no cluster) and then the integration suite (real control plane) in one mocha run, and
// ends with one line `N passed, N failed[, N skipped]` over both, which CI reads.
//   node dist/test/run.js [--unit|--integration|--faults] [--grep PATTERN] [FILE...]
// FILE picks test files, by path (test/integration/cli.test.ts, or its compiled dist/ twin) or by name (cli); then
// all three suites are searched unless one is named. A FILE that matches nothing is an error, not an empty run.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Mocha from "mocha";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const only = (["unit", "integration", "faults"] as const).filter((s) => args.includes(`--${s}`));
const grepAt = args.indexOf("--grep");
const fileArgs = args.filter((a, i) => !a.startsWith("--") && (grepAt < 0 || i !== grepAt + 1));
const suites =
  only.length > 0
    ? only
    : fileArgs.length > 0
      ? (["unit", "integration", "faults"] as const)
      : (["unit", "integration"] as const);

/** A test file's path from dist/test, as a FILE argument would name it: integration/cli.test.js. */
function normalizeFileArg(arg: string): string {
  return arg
    .replace(/^\.\//, "")
    .replace(/^dist\//, "")
    .replace(/^test\//, "")
    .replace(/\.ts$/, ".js");
}

function fileMatches(relative: string, arg: string): boolean {
  const wanted = normalizeFileArg(arg);
  return relative === wanted || path.basename(relative, ".test.js") === wanted;
}

function testFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.sort().flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return testFiles(full);
    return name.endsWith(".test.js") ? [full] : [];
  });
}

const mocha = new Mocha({
  timeout: 120_000,
  reporter: "spec",
  ...(grepAt >= 0 && args[grepAt + 1] ? { grep: args[grepAt + 1] } : {}),
});
const unmatched = new Set(fileArgs);
for (const suite of suites) {
  for (const file of testFiles(path.join(here, suite))) {
    const relative = path.relative(here, file);
    const picked = fileArgs.filter((arg) => fileMatches(relative, arg));
    for (const arg of picked) unmatched.delete(arg);
    if (fileArgs.length === 0 || picked.length > 0) mocha.addFile(file);
  }
}
if (unmatched.size > 0) {
  console.error(`no test file matches ${[...unmatched].join(", ")} (in ${suites.join(", ")})`);
  process.exit(2);
}

await mocha.loadFilesAsync();
const started = Date.now();
const runner = mocha.run((failures) => {
  const stats = runner.stats;
  const passed = stats?.passes ?? 0;
  const failed = stats?.failures ?? failures;
  const skipped = stats?.pending ?? 0;
  console.log(`\n(${suites.join(" + ")} in ${Math.round((Date.now() - started) / 1000)}s)`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exitCode = failed > 0 ? 1 : 0;
  // Leftover timers or sockets of a failed test must not keep the run (and CI) alive.
  setTimeout(() => process.exit(process.exitCode), 2000).unref();
});
