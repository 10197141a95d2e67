// A thin REST client over client-node's auth and TLS. It returns the server's JSON as plain objects:
// client-node's generated APIs turn every item into a model class, which for a 10k-object LIST costs time
// and about three times the memory that the cache actually needs.
// client-node's config and request modules, not its index: the index loads every generated API and model (see
// ./startup.ts, which keeps config.js from loading them too).
import type { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js";
import type { Dispatcher } from "undici";
import type { KubeObject } from "./object.js";
// undici's request(), not its fetch(): fetch builds a WHATWG Request, Headers and a web stream for every call, which
// in a CPU profile of a 1,000-Service rollout was a third of the operator's own time (bench/README.md).
import { Agent, request as undiciRequest } from "./client-node-deps.js";

export interface ResourceType {
  group: string;
  version: string;
  /** The lower-case plural of the REST path, e.g. "services". */
  resource: string;
  kind: string;
  namespaced: boolean;
}

export const core = (resource: string, kind: string, namespaced = true): ResourceType => ({
  group: "",
  version: "v1",
  resource,
  kind,
  namespaced,
});

export const SERVICES = core("services", "Service");
export const NAMESPACES = core("namespaces", "Namespace", false);
export const LEASES: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  resource: "leases",
  kind: "Lease",
  namespaced: true,
};
export const ENDPOINT_SLICES: ResourceType = {
  group: "discovery.k8s.io",
  version: "v1",
  resource: "endpointslices",
  kind: "EndpointSlice",
  namespaced: true,
};
export const SERVICE_CIDRS: ResourceType = {
  group: "networking.k8s.io",
  version: "v1",
  resource: "servicecidrs",
  kind: "ServiceCIDR",
  namespaced: false,
};

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export function resourcePath(type: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  if (type.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${type.resource}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/** metav1.Status as the server sends it with an error. */
export interface Status {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { reason?: string; message?: string; field?: string }[] };
}

export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly status: Status;
  readonly verb: string;
  readonly path: string;
  /** The Retry-After header of the answer, when it had one. */
  readonly retryAfter: string | undefined;

  constructor(verb: string, path: string, code: number, status: Status, retryAfter?: string) {
    super(`${verb} ${path}: ${code} ${status.reason ?? ""}: ${status.message ?? ""}`.trim());
    this.name = "ApiError";
    this.verb = verb;
    this.path = path;
    this.code = code;
    this.reason = status.reason ?? "";
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409;
export const isGone = (err: unknown): boolean => err instanceof ApiError && err.code === 410;
export const isAlreadyExists = (err: unknown): boolean =>
  err instanceof ApiError && err.code === 409 && err.reason === "AlreadyExists";
export const isForbidden = (err: unknown): boolean => err instanceof ApiError && err.code === 403;
export const isInvalid = (err: unknown): boolean => err instanceof ApiError && err.code === 422;
/**
 * Whether the server did not serve the request at all: unavailable (above), or a 429 that the client's own retries
 * did not get past. Such an error says nothing about the object written; the work is tried again.
 */
export const isNotServed = (err: unknown): boolean =>
  isUnavailable(err) || (err instanceof ApiError && err.code === 429);

/**
 * Whether an error says the server could not be reached or could not serve (a connection refused or reset, a
 * timeout, a 5xx), as opposed to an answer about the request itself.
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof ApiError) return err.code >= 500 || err.code === 0;
  // undici's request() throws the socket's error (or its own UND_ERR_*) itself; fetch() wraps it as the cause of a
  // TypeError "fetch failed".
  const code = (err as { code?: unknown } | undefined)?.code;
  const cause = (err as { cause?: { code?: string } } | undefined)?.cause;
  return (
    (err instanceof TypeError && err.message === "fetch failed") ||
    (err instanceof DOMException && err.name === "TimeoutError") ||
    /^(ECONN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR)/.test(typeof code === "string" ? code : "") ||
    /^(ECONN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR)/.test(cause?.code ?? "")
  );
}

export type PatchType = "merge" | "json" | "strategic" | "apply";
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

export type Query = Record<string, string | number | boolean | undefined>;

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  force?: boolean;
}

/** One event of a watch, as the server sends it: the object is a Status when the type is ERROR. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject & Status;
}

/**
 * A watch that sent nothing for this long is started again from its resourceVersion (client-node's Watch does
 * the same): a connection can die without a word, and a quiet watch costs one request to restart.
 */
const WATCH_INACTIVITY_MS = 30_000;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** The Accept header, e.g. to ask for PartialObjectMetadata; JSON objects by default, text/* answered as text. */
  accept?: string;
}

/** Metadata only, as client-go's metadata informers ask for it (objects trimmed by the server). */
export const ACCEPT_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
export const ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

export interface ListPage<T> {
  metadata: { resourceVersion: string; continue?: string };
  /** Absent from an empty PartialObjectMetadataList, whatever the type says: read it with `?? []`. */
  items: T[];
}

/** The Status in an error answer; a body that is not one (a proxy's error page) becomes its message. */
function statusOf(text: string, code: number): Status {
  try {
    return JSON.parse(text) as Status;
  } catch {
    return { message: text.slice(0, 500), code };
  }
}

/** Observes every request, e.g. for rest_client_requests_total; `retry` is set for an answer that is retried. */
export type RequestObserver = (verb: string, type: string, code: number, retry?: boolean) => void;

/**
 * client-go's retry of answers that say "not now" (rest.Request's checkWait and IsRetryableResponse): a 429 from
 * API Priority and Fairness or a 5xx with Retry-After was not processed, so any verb may be sent again after the
 * delay the server asks for; without Retry-After, a 429 backs off with jitter, and so does a 403 from a server that
 * is not ready yet (see ready()). Other answers go to the caller: only what a retry cannot change (422, a 403 from
 * a ready server, admission denials) is a failure of the work.
 */
export interface RetryPolicy {
  maxRetries: number;
  /** The first backoff without Retry-After; it doubles, with up to 50% jitter, to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxRetries: 10,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => (clearTimeout(timer), reject(signal.reason as Error)), { once: true });
    }),
};

/** The delay a retryable answer asks for, or undefined when it must not be retried. */
export function retryDelayMs(
  code: number,
  retryAfter: string | null,
  attempt: number,
  policy: RetryPolicy,
): number | undefined {
  const seconds = retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
  if (code !== 429 && !(code >= 500 && seconds !== undefined)) return undefined;
  if (seconds !== undefined) return Math.min(seconds * 1000, policy.maxDelayMs);
  return backoffMs(attempt, policy);
}

/** The doubling backoff, with up to 50% jitter, of an answer that names no delay. */
function backoffMs(attempt: number, policy: RetryPolicy): number {
  const backoff = Math.min(policy.baseDelayMs * 2 ** attempt, policy.maxDelayMs);
  return backoff / 2 + Math.random() * (backoff / 2);
}

/** Whether the API server serves `resource` in group/version (discovery; a group it does not serve at all: false). */
export async function servesResource(
  client: KubeClient,
  type: Pick<ResourceType, "group" | "version" | "resource">,
): Promise<boolean> {
  try {
    const list = await client.request<{ resources?: { name: string }[] }>("GET", `/apis/${type.group}/${type.version}`);
    return (list.resources ?? []).some((r) => r.name === type.resource);
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  private readonly server: string;
  private readonly observers: RequestObserver[] = [];
  readonly userAgent: string;

  constructor(
    kubeConfig: KubeConfig,
    userAgent = "ipv6-migration-operator",
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {
    this.kubeConfig = kubeConfig;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.server = cluster.server.replace(/\/$/, "");
    this.userAgent = userAgent;
  }

  /**
   * client-node builds a new undici Agent (so a new TLS connection) on every applySecurityAuthentication; the
   * first one is kept and reused, so requests share a connection pool. Auth headers are still applied per request,
   * so rotating tokens keep working.
   */
  private dispatcher: Dispatcher | undefined;

  /** client-node gives no dispatcher where no TLS option applies (plain http): then one of ours. */
  private dispatcherOf(ctx: RequestContext): Dispatcher {
    this.dispatcher ??= ctx.getDispatcher() ?? new Agent();
    return this.dispatcher;
  }

  onRequest(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  async request<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    options: RequestOptions = {},
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce<T>(method, path, options);
      } catch (err) {
        if (!(err instanceof ApiError) || attempt >= this.retry.maxRetries) throw err;
        const delay =
          retryDelayMs(err.code, err.retryAfter ?? null, attempt, this.retry) ??
          (isForbidden(err) && !(await this.ready(options.signal)) ? backoffMs(attempt, this.retry) : undefined);
        if (delay === undefined) throw err;
        this.observe(err.verb, path, err.code, true);
        await this.retry.sleep(delay, options.signal);
      }
    }
  }

  /**
   * Whether the server says it is ready (GET /readyz, which every user may read). A kube-apiserver that has just
   * started serves requests before its authorizer has loaded RBAC, and answers them 403: such a 403 is "not now",
   * not a refusal, and is retried like a 429. Asked only after a 403, so a real refusal costs one more request.
   */
  private async ready(signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.requestOnce<string>("GET", "/readyz", { accept: "text/plain", signal });
      return true;
    } catch {
      return false;
    }
  }

  /** The request's URL and headers, authenticated as the kubeconfig says (tokens are read again each time). */
  private async prepare(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    query: Query | undefined,
    accept: string,
  ): Promise<{ url: URL; headers: Record<string, string>; dispatcher: Dispatcher }> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const ctx = new RequestContext(url.toString(), method);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    const headers = ctx.getHeaders();
    headers["accept"] = accept;
    headers["user-agent"] = this.userAgent;
    return { url, headers, dispatcher: this.dispatcherOf(ctx) };
  }

  private async requestOnce<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    options: RequestOptions,
  ): Promise<T> {
    const { url, headers, dispatcher } = await this.prepare(
      method,
      path,
      options.query,
      options.accept ?? "application/json",
    );
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json";
      body = JSON.stringify(options.body);
    }
    const verb = describeVerb(method, url);
    // A timer cleared as soon as the response is read, not AbortSignal.timeout(): that one keeps its signal, and
    // through the signal's listeners the request and its body, alive until it fires.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException("request timed out", "TimeoutError")), 60_000);
    let code: number;
    let retryAfter: string | undefined;
    let text: string;
    try {
      const response = await undiciRequest(dispatcher, url, {
        method,
        headers,
        body,
        signal: options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal,
      });
      code = response.statusCode;
      const header = response.headers["retry-after"];
      retryAfter = Array.isArray(header) ? header[0] : header;
      text = await response.body.text();
    } catch (err) {
      this.observe(verb, path, 0);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.observe(verb, path, code);
    if (code >= 200 && code < 300) {
      if (options.accept?.startsWith("text/")) return text as T;
      return (text ? JSON.parse(text) : {}) as T;
    }
    throw new ApiError(verb, path, code, statusOf(text, code), retryAfter);
  }

  /**
   * A watch (`?watch=true`): each event the server sends is handed to onEvent as it arrives. Resolves when the
   * server ends the stream (its timeoutSeconds), when nothing came for inactivityMs, or on abort; rejects
   * with an ApiError for an answer other than 200, with the transport's error, or with what onEvent threw.
   */
  async watch(
    path: string,
    query: Query,
    options: { accept?: string; signal?: AbortSignal; inactivityMs?: number; onEvent(event: WatchEvent): void },
  ): Promise<void> {
    const { url, headers, dispatcher } = await this.prepare(
      "GET",
      path,
      { ...query, watch: true },
      options.accept ?? "application/json",
    );
    const inactivityMs = options.inactivityMs ?? WATCH_INACTIVITY_MS;
    const idle = new AbortController();
    let timer = setTimeout(() => idle.abort(), inactivityMs);
    const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
    try {
      const response = await undiciRequest(dispatcher, url, { method: "GET", headers, signal });
      if (response.statusCode !== 200) {
        const text = await response.body.text();
        throw new ApiError("WATCH", path, response.statusCode, statusOf(text, response.statusCode));
      }
      response.body.setEncoding("utf8");
      let partial = "";
      for await (const chunk of response.body as AsyncIterable<string>) {
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(), inactivityMs);
        partial += chunk;
        for (let end = partial.indexOf("\n"); end >= 0; end = partial.indexOf("\n")) {
          const line = partial.slice(0, end);
          partial = partial.slice(end + 1);
          if (line.trim()) options.onEvent(JSON.parse(line) as WatchEvent);
        }
      }
    } catch (err) {
      if (signal.aborted && (idle.signal.aborted || options.signal?.aborted)) return;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private observe(verb: string, path: string, code: number, retry?: boolean): void {
    if (this.observers.length === 0) return;
    const type = resourceOfPath(path);
    for (const observer of this.observers) observer(verb, type, code, retry);
  }

  get<T>(type: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>("GET", resourcePath(type, namespace, name));
  }

  list<T>(
    type: ResourceType,
    namespace: string | undefined,
    query: Query = {},
    options: { accept?: string } = {},
  ): Promise<ListPage<T>> {
    return this.request<ListPage<T>>("GET", resourcePath(type, namespace), { query, ...options });
  }

  /** A LIST across every page, for callers that need them all at once (the reflector pages by itself). */
  async listAll<T>(type: ResourceType, namespace?: string, query: Query = {}, limit = 500): Promise<ListPage<T>> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion: string;
    do {
      const page = await this.list<T>(type, namespace, { ...query, limit, continue: continueToken });
      items.push(...(page.items ?? []));
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);
    return { metadata: { resourceVersion }, items };
  }

  create<T>(type: ResourceType, namespace: string | undefined, body: unknown, options: WriteOptions = {}): Promise<T> {
    return this.request<T>("POST", resourcePath(type, namespace), { body, query: writeQuery(options) });
  }

  update<T>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    options: WriteOptions & { subresource?: string } = {},
  ): Promise<T> {
    return this.request<T>("PUT", resourcePath(type, namespace, name, options.subresource), {
      body,
      query: writeQuery(options),
    });
  }

  patch<T>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    patchType: PatchType,
    options: WriteOptions & { subresource?: string } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", resourcePath(type, namespace, name, options.subresource), {
      body: patch,
      contentType: PATCH_CONTENT_TYPES[patchType],
      query: writeQuery(options),
    });
  }

  delete<T>(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body?: { preconditions?: { uid?: string; resourceVersion?: string } },
  ): Promise<T> {
    return this.request<T>("DELETE", resourcePath(type, namespace, name), { body });
  }
}

function writeQuery(options: WriteOptions): Query {
  return {
    dryRun: options.dryRun ? "All" : undefined,
    fieldManager: options.fieldManager,
    force: options.force ? true : undefined,
  };
}

function describeVerb(method: string, url: URL): string {
  if (method !== "GET") return method;
  if (url.searchParams.get("watch") === "true") return "WATCH";
  return "GET";
}

/** "services" from /api/v1/namespaces/x/services/y, for request metrics. */
export function resourceOfPath(path: string): string {
  const parts = path.split("?")[0]?.split("/").filter(Boolean) ?? [];
  const start = parts[0] === "api" ? 2 : 3;
  const rest = parts.slice(start);
  if (rest[0] === "namespaces" && rest.length > 2) return rest[2] ?? "";
  return rest[0] ?? "";
}
