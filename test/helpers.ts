// Shared by the integration tests: a control plane per file, objects to create, and error expectations.
import assert from "node:assert/strict";
import { ApiError, ENDPOINT_SLICES, KubeClient, NAMESPACES, SERVICES } from "../src/runtime/client.js";
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from "../src/testenv/controlplane.js";

export interface ServiceObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
  };
  spec: {
    type?: string;
    selector?: Record<string, string>;
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[];
    ipFamilyPolicy?: string;
    externalName?: string;
    ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string; nodePort?: number }[];
    [key: string]: unknown;
  };
}

/** Starts a control plane before the suite and stops it after, also when a test fails. */
export function useControlPlane(options: ControlPlaneOptions = {}): { cp: ControlPlane; client: KubeClient } {
  const ctx = {} as { cp: ControlPlane; client: KubeClient };
  before(async function () {
    this.timeout(600_000); // a cold cache builds the binaries first
    ctx.cp = await startControlPlane(options);
    ctx.client = new KubeClient(ctx.cp.kubeConfig(), "ipv6-migration-operator-tests");
  });
  after(async () => {
    await ctx.cp?.stop();
  });
  return ctx;
}

export async function createNamespace(
  client: KubeClient,
  name: string,
  labels: Record<string, string> = {},
): Promise<void> {
  await client.create(NAMESPACES, undefined, { metadata: { name, labels } });
}

export function createService(client: KubeClient, namespace: string, service: ServiceObject): Promise<ServiceObject> {
  return client.create<ServiceObject>(SERVICES, namespace, { apiVersion: "v1", kind: "Service", ...service });
}

/** The IPv6 EndpointSlice a dual-stack pod network publishes for a Service: one ready endpoint, on `nodeName` if given. */
export async function createIPv6Slice(
  client: KubeClient,
  namespace: string,
  service: string,
  address: string,
  nodeName?: string,
): Promise<void> {
  await client.create(ENDPOINT_SLICES, namespace, {
    metadata: { name: `${service}-v6`, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv6",
    endpoints: [{ addresses: [address], conditions: { ready: true }, ...(nodeName ? { nodeName } : {}) }],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  });
}

export function clusterIPService(name: string, extra: Partial<ServiceObject["spec"]> = {}): ServiceObject {
  return {
    metadata: { name, labels: { app: name } },
    spec: { selector: { app: name }, ports: [{ name: "http", port: 80, targetPort: 8080 }], ...extra },
  };
}

/** Awaits a request that must fail, and returns the server's error for assertions. */
export async function expectApiError(promise: Promise<unknown>, code: number): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected the server to answer ${code}`);
}

/** The fields the server named in a 422's causes. */
export function causeFields(err: ApiError): string[] {
  return (err.status.details?.causes ?? []).map((c) => c.field ?? "");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What `kubectl auth can-i ARGS --as=USER` answers: "yes" or "no". */
export async function canI(cp: ControlPlane, user: string, ...args: string[]): Promise<string> {
  return (await cp.kubectl(["auth", "can-i", ...args, `--as=${user}`])).stdout.trim();
}

/** Waits until RBAC answers `want` for `user`: a changed role or binding takes effect asynchronously. */
export function waitForCanI(cp: ControlPlane, user: string, want: "yes" | "no", ...args: string[]): Promise<true> {
  return eventually(
    async () => ((await canI(cp, user, ...args)) === want ? true : undefined),
    `can-i ${args.join(" ")} as ${user} to say ${want}`,
  );
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. Not a timing assertion. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await sleep(100);
  }
}
