// The ipv6-migrate CLI: audit against a real cluster, help and version, and the Dockerfile's steps run
// outside Docker (no engine here): `npm ci --omit=dev`, then its ENTRYPOINT and CMD.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { loadYaml } from "@kubernetes/client-node";
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

  it("bad usage exits 2 with the reason and the help; --help and --version read well", async () => {
    const bad = await run(["audit", "-o", "xml", "--kubeconfig", kubeconfig]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--output must be table, json or yaml, not "xml"/);
    assert.match(bad.stderr, /Usage:/);
    const unknown = await run(["migrate"]);
    assert.equal(unknown.code, 2);
    const help = await run(["--help"]);
    assert.equal(help.code, 0);
    for (const word of ["operator", "audit", "demo", "--leader-elect", "--metrics-bind-address"]) {
      assert.ok(help.stdout.includes(word), word);
    }
    const version = await run(["--version"]);
    const pkg = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);
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
      // As the final stage copies them: the compiled app (without tests) and the CRDs.
      cpSync(path.join(repo, "dist/src"), path.join(app, "dist/src"), { recursive: true });
      cpSync(path.join(repo, "crds"), path.join(app, "crds"), { recursive: true });
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
