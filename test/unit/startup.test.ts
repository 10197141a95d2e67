import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MAX_SEMI_SPACE_MIB, memoryFlags } from "../../src/runtime/startup.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const STARTUP = path.join(here, "../../src/runtime/startup.js");
const CLIENT = path.join(here, "../../src/runtime/client.js");
const OPERATOR = path.join(here, "../../src/reconciler/operator.js");
const MIB = 2 ** 20;

describe("start-up: V8 memory limits and client-node's slim loading", () => {
  const OURS = ["--heap-growing-percent=20", "--max-opt=1", "--gc-memory-reducer-start-delay-ms=1000"];

  it("sets the young generation's limit, the old generation's from a container's memory limit, and heap growth", () => {
    assert.deepEqual(memoryFlags([], undefined, 0), [`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`, ...OURS]);
    assert.deepEqual(memoryFlags([], "", 2 ** 62), [`--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`, ...OURS]);
    assert.deepEqual(memoryFlags([], undefined, 512 * MIB), [
      `--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`,
      "--max-old-space-size=384",
      ...OURS,
    ]);
  });

  it("leaves each flag the user gave to the user, and re-execs no more once they are all given", () => {
    assert.deepEqual(memoryFlags(["--max-old-space-size=100"], undefined, 512 * MIB), [
      `--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`,
      ...OURS,
    ]);
    assert.deepEqual(memoryFlags([], "--max-semi-space-size=16 --max-old-space-size=384", 512 * MIB), OURS);
    assert.deepEqual(memoryFlags(["--max-heap-size=200"], undefined, 512 * MIB), OURS);
    const first = memoryFlags([], undefined, 512 * MIB);
    assert.deepEqual(memoryFlags(first, undefined, 512 * MIB), []);
  });

  it("loads KubeConfig, which authenticates as before, without what the operator never uses: generated APIs and models, undici's fetch, OIDC and SOCKS until asked for", async () => {
    // In a child: the resolve hook is process-wide and must run before config.js is loaded.
    const script = `
      const { registerHooks } = await import("node:module");
      const loaded = [];
      registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
      const { loadSlimClientNode } = await import(${JSON.stringify(STARTUP)});
      loadSlimClientNode();
      const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
      const { RequestContext } = await import("@kubernetes/client-node/dist/gen/http/http.js");
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "c", server: "https://127.0.0.1:6443", skipTLSVerify: false }],
        users: [{ name: "u", token: "t" }],
        contexts: [{ name: "c", cluster: "c", user: "u" }],
        currentContext: "c",
      });
      const ctx = new RequestContext("https://127.0.0.1:6443/api", "GET");
      await kc.applySecurityAuthentication(ctx);
      const { KubeClient } = await import(${JSON.stringify(CLIENT)});
      new KubeClient(kc);
      const unused = (u) => /client-node\\/dist\\/gen\\/(index|apis|models|types)\\b|\\/(openid-client|socks|socks-proxy-agent)\\/|\\/undici\\/(index\\.js|lib\\/web\\/)/.test(u);
      const before = loaded.filter(unused);
      // A user of the OIDC auth-provider loads it then: a token that has not expired is sent as it is.
      const jwt = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
      const idToken = [jwt({ alg: "none" }), jwt({ exp: 4102444800 }), "sig"].join(".");
      const oidc = new KubeConfig();
      oidc.loadFromOptions({
        clusters: [{ name: "c", server: "https://127.0.0.1:6443" }],
        users: [{ name: "o", authProvider: { name: "oidc", config: { "id-token": idToken, "client-id": "x" } } }],
        contexts: [{ name: "c", cluster: "c", user: "o" }],
        currentContext: "c",
      });
      const octx = new RequestContext("https://127.0.0.1:6443/api", "GET");
      await oidc.applySecurityAuthentication(octx);
      const oidcLoaded = loaded.some((u) => u.includes("/openid-client/"));
      process.stdout.write(JSON.stringify({ auth: ctx.getHeaders().Authorization, unused: before, oidc: octx.getHeaders().Authorization === "Bearer " + idToken, oidcLoaded }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: path.join(here, "../../.."),
    });
    const out = JSON.parse(stdout) as { auth?: string; unused: string[]; oidc: boolean; oidcLoaded: boolean };
    assert.equal(out.auth, "Bearer t");
    assert.deepEqual(out.unused, []);
    assert.deepEqual({ oidc: out.oidc, oidcLoaded: out.oidcLoaded }, { oidc: true, oidcLoaded: true });
  });
  it("loads the operator's modules without Node's own copy of undici (13 MiB), which an ES import of node:http loads", async () => {
    const script = `
      const { loadSlimClientNode } = await import(${JSON.stringify(STARTUP)});
      loadSlimClientNode();
      await import("@kubernetes/client-node/dist/config.js");
      await import(${JSON.stringify(CLIENT)});
      await import(${JSON.stringify(OPERATOR)});
      process.stdout.write(JSON.stringify(process.moduleLoadList.filter((m) => m.includes("undici"))));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: path.join(here, "../../.."),
    });
    assert.deepEqual(JSON.parse(stdout), []);
  });
});
