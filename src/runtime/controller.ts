// controller-runtime's Controller: a rate-limited workqueue fed by informers, drained by N workers that start
// only after every watched cache has synced. reconcile() follows controller-runtime's Reconciler contract.
import { realClock, type Clock } from "./clock.js";
import type { Informer } from "./informer.js";
import { errorMessage, silentLogger, type Logger } from "./log.js";
import type { Metrics } from "./metrics.js";
import { keyOf, type KubeObject } from "./object.js";
import { WorkQueue, type RateLimiter } from "./workqueue.js";

/** Done (forget the key), requeue after a delay, or throw for a rate-limited retry. */
export type ReconcileResult = { requeueAfterMs?: number } | undefined;

/**
 * controller-runtime's Reconciler: `signal` is its context, aborted when the controller shuts down, so a long
 * reconcile stops starting new work (it may finish what must not be left half-done).
 */
export interface Reconciler {
  reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult>;
}

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  workers?: number;
  logger?: Logger;
  metrics?: Metrics;
  clock?: Clock;
  rateLimiter?: RateLimiter;
}

/** The result label of controller_runtime_reconcile_total, as controller-runtime names them. */
const RECONCILE_RESULTS = ["success", "error", "requeue", "requeue_after"] as const;

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly workers: number;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly clock: Clock;
  private readonly informers: Informer<KubeObject>[] = [];
  private running: Promise<void>[] = [];
  private readonly stopping = new AbortController();
  private started = false;

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.reconciler = options.reconciler;
    this.workers = options.workers ?? 1;
    this.log = (options.logger ?? silentLogger).child({ controller: options.name });
    this.metrics = options.metrics;
    this.clock = options.clock ?? realClock;
    this.queue = new WorkQueue({
      name: options.name,
      clock: this.clock,
      rateLimiter: options.rateLimiter,
      metrics: options.metrics?.workqueue(options.name),
    });
  }

  /**
   * Enqueues keys for the informer's events: the object's own key by default (the primary kind), or the keys
   * that `map` returns (a secondary kind mapped to its owners, e.g. a Service to the plans that select it).
   * For updates both the old and the new object are mapped, so an owner that no longer selects is told too.
   */
  watch<T extends KubeObject>(informer: Informer<T>, map: (obj: T) => string[] = (obj) => [keyOf(obj)]): void {
    this.informers.push(informer as unknown as Informer<KubeObject>);
    const enqueue = (obj: T) => {
      for (const key of map(obj)) this.queue.add(key);
    };
    informer.addEventHandler({
      onAdd: enqueue,
      onUpdate: (oldObj, newObj) => {
        enqueue(oldObj);
        enqueue(newObj);
      },
      onDelete: enqueue,
    });
  }

  /** After an outage: what waits for a retry is reconciled now (see WorkQueue.retryWaitingNow). */
  retryNow(): void {
    const keys = this.queue.retryWaitingNow();
    if (keys > 0) this.log.info("the API server is back: retrying now", { keys });
  }

  /** Waits for the caches, then starts the workers. Resolves once they run. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // As controller-runtime: the counters exist at 0 from the start, so rate() and alerts on them work before the
    // first error rather than from it.
    this.metrics?.reconcileErrors.inc({ controller: this.name }, 0);
    for (const result of RECONCILE_RESULTS) this.metrics?.reconcileTotal.inc({ controller: this.name, result }, 0);
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    this.log.info("caches synced, starting workers", { workers: this.workers });
    for (let i = 0; i < this.workers; i++) this.running.push(this.worker());
  }

  /** Stops handing out keys and waits (at most `timeoutMs`) for in-flight reconciles to finish. */
  async shutdown(timeoutMs = 30_000): Promise<boolean> {
    this.stopping.abort();
    const drained = this.queue.shutDownWithDrain().then(() => true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const ok = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (ok) await Promise.all(this.running);
    else this.log.warn("in-flight reconciles did not finish in time", { timeoutMs });
    return ok;
  }

  private async worker(): Promise<void> {
    for (;;) {
      const item = await this.queue.get();
      if (item.shutdown) return;
      await this.process(item.key);
    }
  }

  private async process(key: string): Promise<void> {
    const started = this.clock.now();
    let result: (typeof RECONCILE_RESULTS)[number];
    try {
      const outcome = await this.reconciler.reconcile(key, this.stopping.signal);
      if (outcome?.requeueAfterMs !== undefined && outcome.requeueAfterMs >= 0) {
        this.queue.forget(key);
        this.queue.addAfter(key, outcome.requeueAfterMs);
        result = "requeue_after";
      } else {
        this.queue.forget(key);
        result = "success";
      }
    } catch (err) {
      // A failed reconcile is retried with backoff; it never ends the worker.
      this.metrics?.reconcileErrors.inc({ controller: this.name });
      this.queue.addRateLimited(key);
      result = "error";
      this.log.error("reconcile failed", { key, error: errorMessage(err), retries: this.queue.numRequeues(key) });
    } finally {
      this.queue.done(key);
    }
    this.metrics?.reconcileTotal.inc({ controller: this.name, result });
    this.metrics?.reconcileTime.observe({ controller: this.name }, (this.clock.now() - started) / 1000);
  }
}
