// `ipv6-migrate demo` run non-interactively, as `make demo` runs it: it completes, its final table matches the
// cluster, and it leaves nothing running.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { runKubectl } from "../../src/testenv/controlplane.js";
import { type Service } from "../../src/migration/families.js";
import { eventually } from "../helpers.js";
import { CLI } from "../operator.js";

describe("ipv6-migrate demo", function () {
  it("completes, its before/after table matches the cluster, and it leaves nothing running", async () => {
    const child = spawn(process.execPath, [CLI, "demo", "--keep"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await eventually(() => (stdout.includes("Press Ctrl-C") ? true : undefined), "the demo to finish", 600_000);
      const kubeconfig = /^kubeconfig: (.+)$/m.exec(stdout)?.[1] ?? "";
      const kubectl = path.join(path.dirname(/^\s+(\S+\/kubectl) /m.exec(stdout)?.[1] ?? ""), "kubectl");
      assert.ok(existsSync(kubeconfig), "the kubeconfig it prints exists while it runs");

      const tableText = stdout.split("== Before and after\n")[1]?.split("\n\n")[0] ?? "";
      const rows = tableText
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s{3,}/));
      assert.equal(rows.length, 9, tableText);
      const live = await runKubectl(kubectl, kubeconfig, ["get", "svc", "-A", "-o", "json"]);
      const services = new Map(
        (JSON.parse(live.stdout) as { items: Service[] }).items.map((s) => [
          `${s.metadata.namespace}/${s.metadata.name}`,
          s,
        ]),
      );
      for (const [name, , , , families, clusterIPs] of rows) {
        const svc = services.get(name ?? "");
        assert.ok(svc, `${name} exists`);
        assert.equal(families, (svc.spec.ipFamilies ?? []).join(",") || "-", `${name} families`);
        assert.equal(clusterIPs, (svc.spec.clusterIPs ?? []).join(",") || "-", `${name} clusterIPs`);
      }
      // The promotion really happened: ClusterIP and NodePort Services ended IPv6-only.
      assert.deepEqual(services.get("shop/checkout")?.spec.ipFamilies, ["IPv6"]);
      assert.equal(services.get("shop/checkout")?.spec.ports?.[0]?.nodePort, 30080);

      const dir = path.dirname(kubeconfig);
      child.kill("SIGINT");
      assert.equal(await exited, 0);
      assert.equal(existsSync(dir), false, "the control plane's directory is removed");
      const ps = await new Promise<string>((resolve) => {
        const p = spawn("ps", ["-eo", "args"]);
        let out = "";
        p.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
        p.on("close", () => resolve(out));
      });
      assert.equal(ps.includes(dir), false, "no etcd or kube-apiserver of the demo is left");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
