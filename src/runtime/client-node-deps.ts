// What @kubernetes/client-node's dist/config.js (KubeConfig) imports from other modules, for loadSlimClientNode
// (./startup.ts) to resolve those imports here: the operator loads only what it uses, and what a kubeconfig may
// need but this process may never (OIDC, SOCKS proxies) is loaded the first time it is asked for. Measured on
// Node 24 (RSS after loading config.js alone): 80 MiB with client-node's own imports, 65 MiB with these; a bare
// process is 47 (much of the rest is shared with winston and prom-client: see ./startup.ts for the operator's
// whole). If a new client-node release imports more names, the operator fails at start with a SyntaxError
// naming the missing export (test/unit/startup.test.ts loads config.js this way on every `make test`).
import { createRequire } from "node:module";
import type { OpenIDConnectAuth as RealOpenIDConnectAuth } from "@kubernetes/client-node/dist/oidc_auth.js";
import type * as Undici from "undici";

export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";

const require = createRequire(import.meta.url);

// undici's dispatchers and its request(), without its index: the index also loads fetch, WebSocket, EventSource,
// the HTTP caches and the mocks, 13 MiB of RSS that the operator never uses. undici has no "exports" map, so these
// paths are public in the package's own sense; `make test` loads them (test/unit/startup.test.ts).
export const Agent = require("undici/lib/dispatcher/agent.js") as typeof Undici.Agent;
export const ProxyAgent = require("undici/lib/dispatcher/proxy-agent.js") as typeof Undici.ProxyAgent;
const dispatcherRequest = require("undici/lib/api/api-request.js") as (
  this: Undici.Dispatcher,
  options: Undici.Dispatcher.RequestOptions,
) => Promise<Undici.Dispatcher.ResponseData>;

/** undici's request() on the given dispatcher (the same function the index exports, without its URL parsing). */
export function request(
  dispatcher: Undici.Dispatcher,
  url: URL,
  options: Omit<Undici.Dispatcher.RequestOptions, "origin" | "path">,
): Promise<Undici.Dispatcher.ResponseData> {
  return dispatcherRequest.call(dispatcher, { ...options, origin: url.origin, path: url.pathname + url.search });
}

/** client-node's Watch, health and log use fetch; the operator does not. Loads the whole of undici when called. */
export const fetch: typeof Undici.fetch = (...args) => (require("undici") as typeof Undici).fetch(...args);

/**
 * A kubeconfig user with `auth-provider: oidc`: openid-client (with jose and Node's web streams) is loaded the first
 * time such a user authenticates. The real authenticator does the work; this only says which users are its.
 */
export class OpenIDConnectAuth {
  private real: Promise<RealOpenIDConnectAuth> | undefined;

  isAuthProvider(user: { authProvider?: { name?: string } }): boolean {
    return user.authProvider?.name === "oidc";
  }

  async applyAuthentication(...args: Parameters<RealOpenIDConnectAuth["applyAuthentication"]>): Promise<void> {
    this.real ??= import("@kubernetes/client-node/dist/oidc_auth.js").then((m) => new m.OpenIDConnectAuth());
    await (await this.real).applyAuthentication(...args);
  }
}

// A cluster with a socks5:// proxy-url: socks and socks-proxy-agent (10 MiB of RSS) are loaded at its first
// connection. config.js calls `new SocksProxyAgent(...)` (a function that returns an object makes `new` return it)
// and `SocksClient.createConnection(...)`.
export function SocksProxyAgent(...args: unknown[]): unknown {
  const { SocksProxyAgent: Real } = require("socks-proxy-agent") as {
    SocksProxyAgent: new (...a: unknown[]) => unknown;
  };
  return new Real(...args);
}

export const SocksClient = {
  createConnection(...args: unknown[]): unknown {
    const { SocksClient: Real } = require("socks") as { SocksClient: { createConnection(...a: unknown[]): unknown } };
    return Real.createConnection(...args);
  },
};
