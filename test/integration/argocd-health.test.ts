// config/argocd/health.lua in Argo CD's own interpreter: testenv's lua-health runs it in gopher-lua with the
// libraries Argo CD gives a script from argocd-cm, over the cases of health_test.yaml (Argo CD's layout).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { repoRoot, toolsDir } from "../../src/testenv/controlplane.js";

const CONFIG = path.join(repoRoot, "config/argocd");

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("Argo CD health check for MigrationPlan", function () {
  let luaHealth = "";
  let scratch = "";

  before(async function () {
    this.timeout(600_000); // a cold cache builds the testenv binaries first
    luaHealth = path.join(await toolsDir(), "lua-health");
  });

  beforeEach(() => {
    scratch = mkdtempSync(path.join(os.tmpdir(), "ipv6mig-argocd-"));
    cpSync(CONFIG, scratch, { recursive: true });
  });

  afterEach(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("passes every case of health_test.yaml, and every input in testdata/ is a case", async () => {
    const tests = readFileSync(path.join(CONFIG, "health_test.yaml"), "utf8");
    const inputs = [...tests.matchAll(/inputPath:\s*(\S+)/g)].map((m) => m[1]);
    const files = readdirSync(path.join(CONFIG, "testdata")).map((f) => `testdata/${f}`);
    assert.deepEqual([...inputs].sort(), files.sort(), "health_test.yaml and testdata/ list the same inputs");
    for (const name of ["healthy", "progressing", "degraded-stalled", "suspended", "stale-generation", "no-status"]) {
      assert.ok(inputs.includes(`testdata/${name}.yaml`), `a ${name} case`);
    }

    const result = await run(luaHealth, [CONFIG]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.pop(), `${inputs.length} passed, 0 failed`);
    assert.deepEqual(
      lines.map((l) => l.split(":")[0]),
      inputs.map((i) => `ok   ${i}`),
    );
  });

  it("fails when an expectation is wrong", async () => {
    const testsPath = path.join(scratch, "health_test.yaml");
    const tests = readFileSync(testsPath, "utf8");
    const wrong = tests.replace("status: Healthy", "status: Progressing");
    assert.notEqual(wrong, tests);
    writeFileSync(testsPath, wrong);

    const result = await run(luaHealth, [scratch]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^FAIL testdata\/healthy\.yaml: got Healthy ".*", want Progressing/m);
    assert.match(result.stdout, /^\d+ passed, 1 failed$/m);
  });

  it("fails a script that needs a library Argo CD withholds from argocd-cm scripts", async () => {
    // Without useOpenLibs Argo CD opens no string library: the check must not pass here and break in Argo CD.
    const script = path.join(scratch, "health.lua");
    writeFileSync(script, `local s = string.format("%s", "x")\n${readFileSync(script, "utf8")}`);

    const result = await run(luaHealth, [scratch]);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /FAIL testdata\/healthy\.yaml: .*attempt to index a non-table object\(nil\) with key 'format'/,
    );
  });
});
