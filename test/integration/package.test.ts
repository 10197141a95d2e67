// The CLI on its own, as users get it: the npm package (what `npm pack` ships, `npx ipv6-migration-operator`)
// and the kubectl plugin (make kubectl-plugin's archive installed by the real krew from plugins/krew's
// template, then `kubectl ipv6-migrate audit` through the harness's kubectl), against a real control plane.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { AuditReport } from "../../src/cli/audit.js";
import { repoRoot, toolsDir } from "../../src/testenv/controlplane.js";
import { createNamespace, createService, useControlPlane } from "../helpers.js";
import { make, PACKAGE, pathWithNode, runCommand, succeeded, type CommandResult } from "../release.js";

const MAIN = "dist/src/cli/main.js";
const PLUGIN_ARCHIVE = path.join(repoRoot, "dist/kubectl-ipv6_migrate.tar.gz");
const KREW_TEMPLATE = path.join(repoRoot, "plugins/krew/ipv6-migrate.yaml");
const DEMO_ABSENT = /does not include the demo's local control plane; run `make demo`/;

/** What krew-release-bot makes of the template for a tag: the tag, and the archive's URL and sha256. */
function renderKrewManifest(template: string, tag: string, sha256: string): string {
  return template
    .replace(/^( *)\{\{\s*addURIAndSha "([^"]+)" \.TagName\s*\}\}$/m, (_, indent: string, uri: string) =>
      [`${indent}uri: ${uri}`, `${indent}sha256: ${sha256}`].join("\n"),
    )
    .replaceAll("{{ .TagName }}", tag);
}

/** The relative modules a shipped file imports statically (the demo's dynamic import is meant to be absent). */
function staticImports(source: string): string[] {
  return [
    ...source.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"|^\s*import\s+"(\.{1,2}\/[^"]+)"/gm),
  ].map((m) => m[1] ?? m[2] ?? "");
}

describe("the npm package and the kubectl plugin", function () {
  const env = useControlPlane({ families: "dual" });
  let packed: string[] = [];

  before(async () => {
    await createNamespace(env.client, "modern");
    await createService(env.client, "modern", {
      metadata: { name: "new" },
      spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], selector: { app: "new" }, ports: [{ port: 80 }] },
    });
  });

  const auditedModern = (result: CommandResult, what: string) => {
    succeeded(result, what);
    const report = JSON.parse(result.stdout) as AuditReport;
    assert.deepEqual(
      report.services.map((s) => `${s.namespace}/${s.name} ${s.state}`),
      ["modern/new ipv6-only"],
    );
  };

  it("npm pack ships the CLI, the CRD and the project files, and nothing of the tests or the harness", async () => {
    const dry = succeeded(
      await runCommand("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
        env: { ...process.env, PATH: pathWithNode() },
      }),
      "npm pack --dry-run",
    );
    packed = (JSON.parse(dry.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    for (const file of [
      "package.json",
      "README.md",
      "LICENSE",
      "CHANGELOG.md",
      "crds/ipv6migration.io_migrationplans.yaml",
      MAIN,
    ]) {
      assert.ok(packed.includes(file), `the package has ${file}`);
    }
    const unwanted = packed.filter(
      (f) =>
        /^(src|test|bench|testenv|config|charts|docs|plugins|dist\/test|dist\/bench|dist\/src\/testenv)\//.test(f) ||
        f === "dist/src/cli/demo.js" ||
        /\.(ts|map)$/.test(f),
    );
    assert.deepEqual(unwanted, []);

    // Whatever a shipped module imports is shipped: the package runs without what it leaves out.
    for (const file of packed.filter((f) => f.endsWith(".js"))) {
      for (const spec of staticImports(readFileSync(path.join(repoRoot, file), "utf8"))) {
        const target = path.posix.join(path.posix.dirname(file), spec);
        assert.ok(packed.includes(target), `${file} imports ${spec}, which is not in the package`);
      }
    }

    assert.equal(PACKAGE.private, undefined, "publishable");
    assert.deepEqual(PACKAGE.bin, {
      "ipv6-migrate": MAIN,
      [PACKAGE.name]: MAIN,
      // kubectl runs `kubectl ipv6-migrate` from kubectl-ipv6_migrate on the PATH.
      "kubectl-ipv6_migrate": MAIN,
    });
    assert.match(readFileSync(path.join(repoRoot, MAIN), "utf8"), /^#!\/usr\/bin\/env node\n/);
  });

  it("npx runs it by the package's name: npx ipv6-migration-operator audit", async function () {
    this.timeout(300_000);
    const dir = path.join(env.cp.dir, "npm");
    mkdirSync(dir);
    const npmEnv = {
      ...process.env,
      PATH: pathWithNode(),
      npm_config_yes: "true",
      npm_config_update_notifier: "false",
    };
    const pack = succeeded(
      await runCommand("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dir], { env: npmEnv }),
      "npm pack",
    );
    const tarball = path.join(dir, (JSON.parse(pack.stdout) as { filename: string }[])[0]?.filename ?? "");
    // From the registry, `npx ipv6-migration-operator` runs the package's bin of that name (the package has three);
    // a local tarball has to be named with --package, and the command is then looked up among its bins the same way.
    const npx = (...args: string[]) =>
      runCommand("npx", ["--yes", `--package=${tarball}`, PACKAGE.name, ...args], { env: npmEnv, cwd: dir });
    auditedModern(await npx("audit", "--kubeconfig", env.cp.kubeconfigPath, "-n", "modern", "-o", "json"), "npx audit");
    const demo = await npx("demo");
    assert.equal(demo.code, 1, demo.stdout);
    assert.match(demo.stderr, DEMO_ABSENT);
  });

  it("krew installs make kubectl-plugin's archive from plugins/krew's manifest, and kubectl ipv6-migrate audit runs", async function () {
    this.timeout(300_000);
    succeeded(await make("kubectl-plugin"), "make kubectl-plugin");
    const tools = await toolsDir();
    const dir = path.join(env.cp.dir, "krew");
    mkdirSync(dir);
    const sha256 = createHash("sha256").update(readFileSync(PLUGIN_ARCHIVE)).digest("hex");
    const manifest = path.join(dir, "ipv6-migrate.yaml");
    writeFileSync(manifest, renderKrewManifest(readFileSync(KREW_TEMPLATE, "utf8"), `v${PACKAGE.version}`, sha256));
    assert.doesNotMatch(readFileSync(manifest, "utf8"), /\{\{/, "every placeholder filled");
    // krew-index's own check, but for the download of the release URL, which does not exist yet.
    succeeded(
      await runCommand(path.join(tools, "validate-krew-manifest"), ["-manifest", manifest, "-skip-install"]),
      "validate-krew-manifest",
    );
    const root = path.join(dir, "root");
    const krewEnv = { ...process.env, KREW_ROOT: root, PATH: pathWithNode() };
    succeeded(
      await runCommand(path.join(tools, "krew"), ["install", `--manifest=${manifest}`, `--archive=${PLUGIN_ARCHIVE}`], {
        env: krewEnv,
      }),
      "krew install",
    );
    // krew-index also wants the license among the installed files.
    const store = path.join(root, "store/ipv6-migrate", `v${PACKAGE.version}`);
    assert.ok(existsSync(path.join(store, "package/LICENSE")), readdirSync(store).join(", "));

    const kubectl = path.join(env.cp.bin, "kubectl");
    const pluginEnv = { ...process.env, PATH: pathWithNode(path.join(root, "bin")) };
    const plugins = succeeded(await runCommand(kubectl, ["plugin", "list"], { env: pluginEnv }), "kubectl plugin list");
    assert.match(plugins.stdout, /kubectl-ipv6_migrate$/m);
    const plugin = (...args: string[]) => runCommand(kubectl, ["ipv6-migrate", ...args], { env: pluginEnv });
    auditedModern(
      await plugin("audit", "--kubeconfig", env.cp.kubeconfigPath, "-n", "modern", "-o", "json"),
      "kubectl ipv6-migrate audit",
    );
    // kubectl hands the plugin KUBECONFIG as it found it.
    auditedModern(
      await runCommand(kubectl, ["ipv6-migrate", "audit", "-n", "modern", "-o", "json"], {
        env: { ...pluginEnv, KUBECONFIG: env.cp.kubeconfigPath },
      }),
      "kubectl ipv6-migrate audit with KUBECONFIG",
    );
    const help = succeeded(await plugin("audit", "--help"), "kubectl ipv6-migrate audit --help");
    assert.match(help.stdout, /^Usage:\n {2}kubectl ipv6-migrate audit \[flags\]$/m);
  });
});
