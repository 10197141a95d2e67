// The ipv6-migrate CLI: audit against a real cluster, help and version, and the Dockerfile's steps run
// outside Docker (no engine here): `npm ci --omit=dev`, then its ENTRYPOINT and CMD.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { KubeConfig, loadYaml } from "@kubernetes/client-node";
import type { AuditReport } from "../../src/cli/audit.js";
import { createIPv6Slice, createNamespace, createService, eventually, useControlPlane } from "../helpers.js";
import { CLI, installCRD } from "../operator.js";

const repo = path.resolve(path.dirname(CLI), "../../..");

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

describe("ipv6-migrate CLI", function () {
  const env = useControlPlane({ families: "dual" });
  let kubeconfig: string;

  before(async () => {
    kubeconfig = env.cp.kubeconfigPath;
    await createNamespace(env.client, "mixed");
    await createNamespace(env.client, "modern");
    await createService(env.client, "mixed", {
      metadata: { name: "old" },
      spec: { selector: { app: "old" }, ports: [{ port: 80 }] },
    });
    await createService(env.client, "mixed", {
      metadata: { name: "ext" },
      spec: { type: "ExternalName", externalName: "example.invalid" },
    });
    await createService(env.client, "mixed", {
      metadata: { name: "lb", labels: { tier: "edge" } },
      spec: { type: "LoadBalancer", selector: { app: "lb" }, ports: [{ port: 80 }] },
    });
    for (const svc of ["old", "lb"]) {
      await createIPv6Slice(env.client, "mixed", svc, "fd00:3::1");
    }
    await createService(env.client, "modern", {
      metadata: { name: "new" },
      spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], selector: { app: "new" }, ports: [{ port: 80 }] },
    });
  });

  it("audit -o json classifies each Service, says what IPv6-only would do, and exits 3 with IPv4-only ones", async () => {
    const result = await run(["audit", "--kubeconfig", kubeconfig, "-o", "json", "-n", "mixed", "-n", "modern"]);
    assert.equal(result.code, 3, result.stderr);
    const report = JSON.parse(result.stdout) as AuditReport;
    assert.equal(report.cluster.ipv6ServiceRange.status, true);
    const by = new Map(report.services.map((s) => [`${s.namespace}/${s.name}`, s]));
    assert.equal(by.size, 4);
    assert.equal(by.get("mixed/old")?.state, "ipv4-only");
    assert.equal(by.get("mixed/old")?.ipv6Only.action, "cutover");
    assert.equal(by.get("mixed/ext")?.ipv6Only.reason, "ExternalName");
    assert.equal(by.get("mixed/lb")?.ipv6Only.reason, "LoadBalancerRecreateNotAllowed");
    assert.equal(by.get("modern/new")?.state, "ipv6-only");
    assert.deepEqual(report.summary, { services: 4, ipv4Only: 2, dualStack: 0, ipv6Only: 1, noClusterIP: 1 });
  });

  it("audit exits 0 when nothing selected is IPv4-only, and reads yaml and table output", async () => {
    const yaml = await run(["audit", "--kubeconfig", kubeconfig, "-o", "yaml", "--namespace=modern"]);
    assert.equal(yaml.code, 0, yaml.stderr);
    const report = loadYaml<AuditReport>(yaml.stdout);
    assert.equal(report.services[0]?.name, "new");
    const tableOut = await run(["audit", "--kubeconfig", kubeconfig, "-n", "mixed", "-l", "tier=edge"]);
    assert.equal(tableOut.code, 3);
    assert.match(tableOut.stdout, /NAMESPACE\s+NAME\s+SHAPE\s+STATE\s+CLUSTER-IPS\s+TO IPV6-ONLY/);
    assert.match(
      tableOut.stdout,
      /mixed\s+lb\s+LoadBalancer\s+ipv4-only\s+\S+\s+block: LoadBalancerRecreateNotAllowed/,
    );
    assert.doesNotMatch(tableOut.stdout, /\bold\b/);
  });

  it("audit writes nothing", async () => {
    const writes = () =>
      env.cp
        .auditEvents("admin")
        .filter((e) => e.userAgent === "ipv6-migrate-audit" && ["create", "update", "patch", "delete"].includes(e.verb))
        .filter((e) => !e.requestURI.includes("dryRun")).length;
    await run(["audit", "--kubeconfig", kubeconfig]);
    assert.equal(writes(), 0);
  });

  it("bad usage exits 2 with the reason and the command's usage", async () => {
    const bad = await run(["audit", "-o", "xml", "--kubeconfig", kubeconfig]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--output must be table, json or yaml, not "xml"/);
    assert.match(bad.stderr, /Usage:\n {2}ipv6-migrate audit \[flags\]/);
    const unknown = await run(["migrate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "migrate"/);
    const none = await run([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Commands:/);
  });

  it("-h and --help exit 0 with that command's own help, on every command and on the program", async () => {
    const commands: Record<string, string[]> = {
      operator: ["--leader-elect", "--metrics-bind-address ADDR", "--context NAME", "--kubeconfig PATH"],
      audit: ["-o, --output FORMAT", "-n, --namespace NS", "-l, --selector", "--context NAME", "Exit code: 0"],
      demo: ["--keep"],
      version: ["-h, --help"],
    };
    for (const [command, words] of Object.entries(commands)) {
      const helps = [await run([command, "-h"]), await run([command, "--help"]), await run(["help", command])];
      for (const help of helps) {
        assert.equal(help.code, 0, `${command}: ${help.stderr}`);
        assert.match(help.stdout, new RegExp(`^Usage:\n {2}ipv6-migrate ${command}\\b`, "m"), command);
        for (const word of words) assert.ok(help.stdout.includes(word), `${command} --help names ${word}`);
      }
      assert.equal(helps[1]?.stdout, helps[0]?.stdout);
      assert.equal(helps[2]?.stdout, helps[0]?.stdout);
    }
    // Each help is its own: audit's flags are not in the operator's, and the other way round.
    const operatorHelp = (await run(["operator", "-h"])).stdout;
    assert.ok(!operatorHelp.includes("--selector"));
    assert.ok(!(await run(["audit", "-h"])).stdout.includes("--leader-elect"));
    for (const args of [["-h"], ["--help"], ["help"]]) {
      const help = await run(args);
      assert.equal(help.code, 0, args.join(" "));
      for (const command of Object.keys(commands)) assert.match(help.stdout, new RegExp(`^ {2}${command} `, "m"));
    }
  });

  it("an unknown flag exits 2 naming it, before the command and in each command", async () => {
    for (const args of [
      ["audit", "--kubeconfig", kubeconfig, "--bogus"],
      ["audit", "-x"],
      ["operator", "--kubeconfig", kubeconfig, "--bogus=1"],
      ["demo", "--bogus"],
      ["version", "--bogus"],
      ["--bogus", "audit"],
    ]) {
      const result = await run(args);
      const flag = args.find((a) => a === "-x" || a.startsWith("--bogus"))?.split("=")[0] ?? "";
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, new RegExp(`^ipv6-migrate: unknown flag ${flag}$`, "m"), args.join(" "));
      assert.equal(result.stdout, "", "nothing ran");
    }
    const noValue = await run(["audit", "--kubeconfig", kubeconfig, "-o"]);
    assert.equal(noValue.code, 2);
    assert.match(noValue.stderr, /flag -o needs a value/);
  });

  it("-- ends the flags: what follows is an argument, which no command takes", async () => {
    const ended = await run(["audit", "--kubeconfig", kubeconfig, "-n", "modern", "--"]);
    assert.equal(ended.code, 0, ended.stderr);
    const after = await run(["audit", "--kubeconfig", kubeconfig, "--", "--bogus"]);
    assert.equal(after.code, 2);
    assert.match(after.stderr, /unexpected argument "--bogus"/);
    const before = await run(["--", "version"]);
    assert.equal(before.code, 0, before.stderr);
  });

  it("--context picks that context of the kubeconfig, and an unknown one is an error naming it", async () => {
    // Two contexts on the same cluster: the current one as alice, whom no role grants anything, and "other"
    // as admin. Only the context's credentials tell them apart, so the answer says which one was used.
    const admin = env.cp.kubeConfig();
    const cluster = admin.getCurrentCluster();
    assert.ok(cluster);
    const alice = env.cp.user("alice");
    const two = new KubeConfig();
    two.loadFromOptions({
      clusters: [cluster],
      users: [
        { name: "alice", token: alice.token },
        { name: "admin", token: env.cp.admin.token },
      ],
      contexts: [
        { name: "alice", cluster: cluster.name, user: "alice" },
        { name: "other", cluster: cluster.name, user: "admin" },
      ],
      currentContext: "alice",
    });
    const file = path.join(env.cp.dir, "kubeconfig-two-contexts");
    writeFileSync(file, two.exportConfig());

    const current = await run(["audit", "--kubeconfig", file, "-n", "modern"]);
    assert.equal(current.code, 1, current.stdout);
    assert.match(current.stderr, /alice/);
    const other = await run(["audit", "--kubeconfig", file, "--context", "other", "-n", "modern", "-o", "json"]);
    assert.equal(other.code, 0, other.stderr);
    assert.equal((JSON.parse(other.stdout) as AuditReport).services[0]?.name, "new");
    // KUBECONFIG, as kubectl reads it, with the context given as --context=NAME.
    const fromEnv = await run(["audit", "--context=other", "-n", "modern"], { KUBECONFIG: file });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);

    const missing = await run(["audit", "--kubeconfig", file, "--context", "nowhere"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /context "nowhere" is not in the kubeconfig \(it has: alice, other\)/);
    const operatorMissing = await run(["operator", "--kubeconfig", file, "--context", "nowhere"]);
    assert.equal(operatorMissing.code, 1);
    assert.match(operatorMissing.stderr, /context "nowhere"/);
  });

  it("version and --version print this package's version, client-node's and Node's", async () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string };
    const clientNode = JSON.parse(
      readFileSync(path.join(repo, "node_modules/@kubernetes/client-node/package.json"), "utf8"),
    ) as { version: string };
    const expected = [
      `ipv6-migrate: ${pkg.version}`,
      `@kubernetes/client-node: ${clientNode.version}`,
      `node: ${process.version}`,
    ];
    for (const args of [["version"], ["--version"]]) {
      const result = await run(args);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split("\n"), expected);
    }
  });

  it("the Dockerfile's steps, outside Docker: production dependencies only, then its entry point runs the operator", async function () {
    this.timeout(300_000);
    const dockerfile = readFileSync(path.join(repo, "Dockerfile"), "utf8");
    const finalStage = dockerfile.split(/^FROM /m).pop() ?? "";
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(finalStage)?.[1] ?? "[]") as string[];
    const cmd = JSON.parse(/^CMD (.+)$/m.exec(finalStage)?.[1] ?? "[]") as string[];
    assert.match(dockerfile, /npm ci --omit=dev/);
    const app = mkdtempSync(path.join(os.tmpdir(), "ipv6mig-image-"));
    try {
      for (const file of ["package.json", "package-lock.json"]) cpSync(path.join(repo, file), path.join(app, file));
      await promisify(execFile)("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund"], { cwd: app });
      // As the final stage copies them: the compiled app (without tests), less what the build stage removes
      // (the demo and its harness), and the CRDs.
      cpSync(path.join(repo, "dist/src"), path.join(app, "dist/src"), { recursive: true });
      cpSync(path.join(repo, "crds"), path.join(app, "crds"), { recursive: true });
      const buildStage = dockerfile.split(/^FROM /m).find((stage) => / AS build$/m.test(stage)) ?? "";
      const removed = /&& rm -rf (.+)$/m.exec(buildStage)?.[1]?.split(/\s+/) ?? [];
      assert.deepEqual(removed, ["dist/src/testenv", "dist/src/cli/demo.js"]);
      for (const file of removed) rmSync(path.join(app, file), { recursive: true });
      const shipped = (readdirSync(path.join(app, "dist/src"), { recursive: true }) as string[]).filter((f) =>
        f.endsWith(".js"),
      );
      assert.ok(shipped.includes(path.join("cli", "main.js")));
      for (const file of shipped) {
        assert.doesNotMatch(readFileSync(path.join(app, "dist/src", file), "utf8"), /testenv\//, file);
      }
      const demo = await promisify(execFile)(process.execPath, [path.join(app, "dist/src/cli/main.js"), "demo"], {
        cwd: app,
      }).then(
        () => assert.fail("the demo ran without its harness"),
        (err: { code?: number; stderr?: string }) => err,
      );
      assert.equal(demo.code, 1);
      assert.match(demo.stderr ?? "", /does not include the demo's local control plane; run `make demo`/);
      const dev = ["mocha", "typescript", "eslint", "nock"].filter((p) => {
        try {
          readFileSync(path.join(app, "node_modules", p, "package.json"));
          return true;
        } catch {
          return false;
        }
      });
      assert.deepEqual(dev, [], "no dev dependency in the image");
      await installCRD(env.cp);
      const [, script, ...rest] = entrypoint;
      const args = [...rest, ...cmd, `--kubeconfig=${kubeconfig}`, "--leader-election-namespace=default"];
      args.push("--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0");
      const child = spawn(process.execPath, [script ?? "", ...args], { cwd: app, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
      child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      await eventually(() => (output.includes("became leader") ? true : undefined), "the operator to lead", 60_000);
      await eventually(() => (output.includes("caches synced") ? true : undefined), "the caches to sync", 60_000);
      child.kill("SIGTERM");
      assert.equal(await exited, 0, output);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });
});
