// Reflector + indexed store + event handlers: client-go's SharedIndexInformer, for one resource type.
//
// The reflector is written on KubeClient's watch rather than on client-node's ListWatch, which stops for good on
// ECONNRESET, 5xx and 403 (client-node #2385), sends neither allowWatchBookmarks nor timeoutSeconds, and keeps
// client-node's model objects; nor on client-node's Watch, which needs undici's fetch (13 MiB of RSS, see
// ./client-node-deps.ts) and opens a new connection pool for each watch. Every end of a watch, a dead connection's
// included, is cheap here because the loop below resumes from the last resourceVersion.
import {
  ACCEPT_METADATA,
  ACCEPT_METADATA_LIST,
  ApiError,
  isGone,
  type KubeClient,
  type ListPage,
  type ResourceType,
  resourcePath,
  type WatchEvent,
} from "./client.js";
import { realClock, type Clock } from "./clock.js";
import { errorMessage, silentLogger, type Logger } from "./log.js";
import { keyOf, type KubeObject } from "./object.js";

export type IndexFunc<T> = (obj: T) => string[];

export interface EventHandler<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

/** A thread-safe-by-construction (single-threaded) indexed cache of the objects of one type. */
export class Store<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  addIndexer(name: string, fn: IndexFunc<T>): void {
    if (this.indexers.has(name)) throw new Error(`indexer ${name} already exists`);
    this.indexers.set(name, fn);
    const index = new Map<string, Set<string>>();
    this.indices.set(name, index);
    for (const [key, obj] of this.items) this.indexAdd(name, fn, key, obj);
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  get size(): number {
    return this.items.size;
  }

  /** Objects whose index `name` contains `value`. */
  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`no indexer ${name}`);
    const keys = index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.items.get(key);
      if (obj) out.push(obj);
    }
    return out;
  }

  set(obj: T): T | undefined {
    const key = keyOf(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    for (const [name, fn] of this.indexers) this.indexAdd(name, fn, key, obj);
    return old;
  }

  delete(key: string): T | undefined {
    const old = this.items.get(key);
    if (!old) return undefined;
    this.unindex(key, old);
    this.items.delete(key);
    return old;
  }

  private indexAdd(name: string, fn: IndexFunc<T>, key: string, obj: T): void {
    const index = this.indices.get(name)!;
    for (const value of fn(obj)) {
      let keys = index.get(value);
      if (!keys) index.set(value, (keys = new Set()));
      keys.add(key);
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name)!;
      for (const value of fn(obj)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }
}

export const namespaceIndex = <T extends KubeObject>(obj: T): string[] =>
  obj.metadata.namespace ? [obj.metadata.namespace] : [];

export interface InformerOptions<T extends KubeObject> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Trims what the server sent to what the controller reads; the cache holds only the result. */
  transform?: (raw: KubeObject) => T;
  pageSize?: number;
  indexers?: Record<string, IndexFunc<T>>;
  clock?: Clock;
  logger?: Logger;
  /** Called with "list" or "watch" for every request the reflector makes. */
  onRequest?: (verb: "list" | "watch") => void;
  /** Ask the server for PartialObjectMetadata: objects whose size doesn't matter, only their existence. */
  metadataOnly?: boolean;
}

/** Told when a list or watch fails (other than an expired resourceVersion), e.g. to watch for the server's return. */
export type FailureListener = (err: unknown) => void;

/** client-go's reflector backoff: 800 ms doubling to 30 s, full jitter, reset after 2 minutes of health. */
export class Backoff {
  private current = 0;
  private lastFailure = 0;

  constructor(
    private readonly clock: Clock,
    private readonly initialMs = 800,
    private readonly capMs = 30_000,
    private readonly resetAfterMs = 120_000,
    private readonly random: () => number = Math.random,
  ) {}

  reset(): void {
    this.current = 0;
  }

  next(): number {
    const now = this.clock.now();
    if (this.current === 0 || now - this.lastFailure > this.resetAfterMs) this.current = this.initialMs;
    else this.current = Math.min(this.current * 2, this.capMs);
    this.lastFailure = now;
    return this.current + this.random() * this.current;
  }
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly store = new Store<T>();
  readonly type: ResourceType;
  private readonly client: KubeClient;
  private readonly options: InformerOptions<T>;
  private readonly handlers: EventHandler<T>[] = [];
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private resourceVersion = "";
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private stopped = true;
  private loop: Promise<void> | undefined;
  private abortWatch: AbortController | undefined;
  private wakeSleep: (() => void) | undefined;
  /** Requests made, for tests and benchmarks. */
  readonly stats = { lists: 0, listPages: 0, watches: 0, relists: 0, errors: 0 };

  constructor(client: KubeClient, type: ResourceType, options: InformerOptions<T> = {}) {
    this.client = client;
    this.type = type;
    this.options = options;
    this.clock = options.clock ?? realClock;
    this.log = (options.logger ?? silentLogger).child({ informer: type.resource });
    this.backoff = new Backoff(this.clock);
    this.store.addIndexer("namespace", namespaceIndex);
    for (const [name, fn] of Object.entries(options.indexers ?? {})) this.store.addIndexer(name, fn);
  }

  private readonly failureListeners: FailureListener[] = [];

  onFailure(listener: FailureListener): void {
    this.failureListeners.push(listener);
  }

  /** Cuts short the backoff after a failure: the server is known to be back. */
  retryNow(): void {
    this.backoff.reset();
    this.wakeSleep?.();
  }

  addEventHandler(handler: EventHandler<T>): void {
    this.handlers.push(handler);
    // A handler added late sees the current state, as client-go replays the store to new handlers.
    if (this.synced) for (const obj of this.store.list()) this.dispatch(() => handler.onAdd?.(obj));
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.abort();
    this.wakeSleep?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = this.clock.now();
      try {
        if (!this.resourceVersion) await this.listAndReplace();
        await this.watch();
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err)) {
          // The resourceVersion is too old for the server: start over with a fresh LIST, at once.
          this.log.info("resourceVersion expired, relisting", { resourceVersion: this.resourceVersion });
          this.resourceVersion = "";
          this.stats.relists++;
          continue;
        }
        this.stats.errors++;
        for (const listener of this.failureListeners) listener(err);
        const delay = this.backoff.next();
        this.log.warn("list/watch failed, backing off", {
          error: errorMessage(err),
          delayMs: Math.round(delay),
          healthyForMs: this.clock.now() - started,
        });
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.wakeSleep = undefined;
        resolve();
      }, ms);
      this.wakeSleep = () => {
        this.clock.clearTimeout(timer);
        this.wakeSleep = undefined;
        resolve();
      };
    });
  }

  private query(): Record<string, string | undefined> {
    return { labelSelector: this.options.labelSelector, fieldSelector: this.options.fieldSelector };
  }

  /** Paginated LIST, then replace the store and emit only the differences. */
  private async listAndReplace(): Promise<void> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    this.stats.lists++;
    this.options.onRequest?.("list");
    do {
      let page: ListPage<KubeObject>;
      try {
        page = await this.client.list<KubeObject>(
          this.type,
          this.options.namespace,
          { ...this.query(), limit: this.options.pageSize ?? 500, continue: continueToken },
          this.options.metadataOnly ? { accept: ACCEPT_METADATA_LIST } : {},
        );
      } catch (err) {
        // An expired continue token: the whole LIST starts over (client-go does the same).
        if (continueToken && isGone(err)) {
          items.length = 0;
          continueToken = undefined;
          continue;
        }
        throw err;
      }
      this.stats.listPages++;
      // A PartialObjectMetadataList with no objects has no items at all.
      for (const raw of page.items ?? []) items.push(this.trim(raw));
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);
    this.replace(items);
    this.resourceVersion = resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  private trim(raw: KubeObject): T {
    return this.options.transform ? this.options.transform(raw) : (raw as T);
  }

  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      const key = keyOf(obj);
      seen.add(key);
      const old = this.store.get(key);
      if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
      this.store.set(obj);
      if (old) this.emitUpdate(old, obj);
      else this.emitAdd(obj);
    }
    for (const key of this.store.keys()) {
      if (seen.has(key)) continue;
      const old = this.store.delete(key);
      if (old) this.emitDelete(old);
    }
  }

  private async watch(): Promise<void> {
    // Server-side timeout randomised in [5, 10) minutes, so that many informers don't reconnect in step.
    const timeoutSeconds = Math.floor(300 + Math.random() * 300);
    if (this.stopped) return;
    this.stats.watches++;
    this.options.onRequest?.("watch");
    const abort = new AbortController();
    this.abortWatch = abort;
    try {
      await this.client.watch(
        resourcePath(this.type, this.options.namespace),
        { ...this.query(), resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
        {
          accept: this.options.metadataOnly ? ACCEPT_METADATA : undefined,
          signal: abort.signal,
          onEvent: (event) => this.handleEvent(event),
        },
      );
    } finally {
      this.abortWatch = undefined;
    }
  }

  private handleEvent(event: WatchEvent): void {
    if (event.type === "ERROR") {
      const status = event.object;
      throw new ApiError("WATCH", resourcePath(this.type), status.code ?? 500, status);
    }
    const rv = event.object.metadata?.resourceVersion;
    if (event.type === "BOOKMARK") {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const obj = this.trim(event.object);
    const key = keyOf(obj);
    if (event.type === "DELETED") {
      const old = this.store.delete(key);
      this.emitDelete(old ?? obj);
    } else {
      const old = this.store.set(obj);
      if (old) this.emitUpdate(old, obj);
      else this.emitAdd(obj);
    }
    if (rv) this.resourceVersion = rv;
  }

  private emitAdd(obj: T): void {
    for (const h of this.handlers) this.dispatch(() => h.onAdd?.(obj));
  }

  private emitUpdate(old: T, obj: T): void {
    for (const h of this.handlers) this.dispatch(() => h.onUpdate?.(old, obj));
  }

  private emitDelete(obj: T): void {
    for (const h of this.handlers) this.dispatch(() => h.onDelete?.(obj));
  }

  /** A throwing handler is logged and must not break the watch or the other handlers. */
  private dispatch(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error("event handler failed", { error: errorMessage(err) });
    }
  }
}
