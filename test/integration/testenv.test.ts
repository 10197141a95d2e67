// The harness itself: real versions, an apiserver restart over the same etcd, RBAC users, and no leftovers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { NAMESPACES } from "../../src/runtime/client.js";
import { startControlPlane } from "../../src/testenv/controlplane.js";
import { expectApiError, useControlPlane } from "../helpers.js";

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("testenv control plane", function () {
  const env = useControlPlane();

  it("kubectl version prints the real client and server versions", async () => {
    const result = await env.cp.kubectl(["version", "-o", "json"]);
    assert.equal(result.code, 0, result.stderr);
    const version = JSON.parse(result.stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    const pinned = execFileSync("go", ["list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes"], {
      cwd: new URL("../../../testenv/kube", import.meta.url).pathname,
      env: { ...process.env, GOWORK: "off", GOFLAGS: "-mod=mod", GOTOOLCHAIN: "local" },
    })
      .toString()
      .trim();
    assert.equal(version.clientVersion.gitVersion, pinned);
    assert.equal(version.serverVersion.gitVersion, pinned);
    assert.notEqual(version.serverVersion.gitVersion, "v0.0.0");
  });

  it("an unprivileged token user is authenticated but forbidden until a role is bound", async () => {
    const alice = env.cp.users[0];
    const whoami = await env.cp.kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], {
      user: alice,
    });
    assert.equal(whoami.stdout, "alice");
    const { KubeClient } = await import("../../src/runtime/client.js");
    const asAlice = new KubeClient(env.cp.kubeConfig(alice));
    const err = await expectApiError(asAlice.list(NAMESPACES, undefined), 403);
    assert.equal(err.reason, "Forbidden");
    await env.client.create(
      {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "clusterrolebindings",
        kind: "",
        namespaced: false,
      },
      undefined,
      {
        metadata: { name: "alice-admin" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "User", name: "alice", apiGroup: "rbac.authorization.k8s.io" }],
      },
    );
    const list = await asAlice.list(NAMESPACES, undefined);
    assert.ok(list.items.length > 0);
  });

  it("listens below the kernel's ephemeral port range, where no outbound connection can take its port", () => {
    // A port an outbound connection took while the server was binding made kube-apiserver exit with EADDRINUSE in CI.
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    for (const port of [env.cp.apiPort, env.cp.etcdPort]) assert.ok(port < (low ?? 32768), `${port} is ephemeral`);
  });

  it("restarts kube-apiserver alone over the same etcd, keeping the data", async () => {
    await env.client.create(NAMESPACES, undefined, { metadata: { name: "survives-restart" } });
    await env.cp.restartAPIServer();
    const ns = await env.client.get<{ metadata: { name: string } }>(NAMESPACES, undefined, "survives-restart");
    assert.equal(ns.metadata.name, "survives-restart");
  });

  it("stop() leaves no etcd or kube-apiserver process and removes the directory", async () => {
    const cp = await startControlPlane({ families: "ipv4" });
    const pids = execFileSync("ps", ["-eo", "pid,args"])
      .toString()
      .split("\n")
      .filter((line) => line.includes(cp.dir))
      .map((line) => Number(line.trim().split(/\s+/)[0]));
    assert.equal(pids.length, 2, "etcd and kube-apiserver run from the control plane's directory");
    await cp.stop();
    for (const pid of pids) assert.equal(pidAlive(pid), false, `process ${pid} is still running`);
    assert.equal(existsSync(cp.dir), false);
  });
});
