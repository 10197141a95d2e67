// A work queue with the semantics of client-go's util/workqueue (a rate-limited, delaying queue of keys), so that
// reconcilers written the client-go way behave the same here: a key waits in the queue at most once, is worked on
// by one worker at a time, and a change that arrives during work gets a fresh pass after it.
import { realClock, type Clock, type TimerHandle } from "./clock.js";

export interface RateLimiter {
  /** How long to wait, in ms, before the item may be worked on again; counts as a failure of the item. */
  when(item: string): number;
  /** Stops tracking the item, e.g. after it was processed successfully. */
  forget(item: string): void;
  numRequeues(item: string): number;
}

/** Per item: base * 2^failures, capped at max. */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly baseMs = 5,
    private readonly maxMs = 1000_000,
  ) {}

  when(item: string): number {
    const exp = this.failures.get(item) ?? 0;
    this.failures.set(item, exp + 1);
    // Past 2^1023 the power is Infinity, which the cap also handles.
    return Math.min(this.baseMs * 2 ** exp, this.maxMs);
  }

  forget(item: string): void {
    this.failures.delete(item);
  }

  numRequeues(item: string): number {
    return this.failures.get(item) ?? 0;
  }
}

/**
 * A token bucket over all items, like golang.org/x/time/rate's Reserve: every call takes a token, even one not yet
 * there, and returns how long until it will be. The bucket starts full.
 */
export class BucketRateLimiter implements RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps = 10,
    private readonly burst = 100,
    private readonly clock: Clock = realClock,
  ) {
    // x/time/rate would never grant a token with either of these; a queue that stalls forever is a config bug.
    if (!(qps > 0)) throw new RangeError(`qps must be positive, got ${qps}`);
    if (!(burst >= 1)) throw new RangeError(`burst must be at least 1, got ${burst}`);
    this.tokens = burst;
    this.last = clock.now();
  }

  when(_item: string): number {
    if (this.qps === Infinity) return 0;
    const now = this.clock.now();
    // A clock reading behind the last one refills nothing rather than draining the bucket.
    const elapsed = Math.max(0, now - this.last);
    const tokens = Math.min(this.burst, this.tokens + (elapsed * this.qps) / 1000) - 1;
    this.tokens = tokens;
    this.last = Math.max(now, this.last);
    return tokens < 0 ? (-tokens * 1000) / this.qps : 0;
  }

  forget(_item: string): void {}

  numRequeues(_item: string): number {
    return 0;
  }
}

/** The longest delay of all limiters; every limiter sees every call, so each keeps its own count. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(item: string): number {
    return this.limiters.reduce((max, l) => Math.max(max, l.when(item)), 0);
  }

  forget(item: string): void {
    for (const l of this.limiters) l.forget(item);
  }

  numRequeues(item: string): number {
    return this.limiters.reduce((max, l) => Math.max(max, l.numRequeues(item)), 0);
  }
}

/**
 * client-go's DefaultTypedControllerRateLimiter: per-item backoff from 5ms to 1000s, and overall no more than
 * 10 retries a second after a burst of 100.
 */
export function defaultControllerRateLimiter(clock: Clock = realClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter(5, 1000_000),
    new BucketRateLimiter(10, 100, clock),
  );
}

/** The hooks client-go's workqueue metrics provider gets; times in seconds. */
export interface WorkQueueMetrics {
  /** A key became pending (adds of an already pending key don't count). */
  add(): void;
  /** The number of pending keys, including those re-added while being processed; reported on every change. */
  depth(n: number): void;
  /** From the first add of a key to a worker getting it. */
  queueLatency(seconds: number): void;
  /** From a worker getting a key to its done(). */
  workDuration(seconds: number): void;
  /** An addAfter or addRateLimited. */
  retry(): void;
}

export interface WorkQueueOptions {
  name?: string;
  clock?: Clock;
  /** Defaults to defaultControllerRateLimiter on the queue's clock. */
  rateLimiter?: RateLimiter;
  metrics?: WorkQueueMetrics;
}

export type WorkQueueItem<T extends string> = { key: T; shutdown: false } | { shutdown: true };

const SHUTDOWN: { shutdown: true } = { shutdown: true };

export class WorkQueue<T extends string = string> {
  readonly name: string;
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter;
  private readonly metrics: WorkQueueMetrics | undefined;

  // FIFO of keys ready to hand out; items before head were taken. An index rather than shift() because shift is
  // linear in the queue length, and a resync can put thousands of keys in at once.
  private queue: T[] = [];
  private head = 0;
  /** Keys that need processing: those in the queue, and those re-added while being processed. */
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly waiters: ((item: WorkQueueItem<T>) => void)[] = [];
  /** Pending addAfter per key; only the earliest is kept, as in client-go's waitingForQueue. */
  private readonly waiting = new Map<T, { readyAt: number; timer: TimerHandle }>();
  private readonly addTimes = new Map<T, number>();
  private readonly startTimes = new Map<T, number>();
  private drainWaiters: (() => void)[] = [];
  private shutdown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.name = options.name ?? "";
    this.clock = options.clock ?? realClock;
    this.rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.clock);
    this.metrics = options.metrics;
  }

  add(key: T): void {
    if (this.shutdown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (!this.addTimes.has(key)) this.addTimes.set(key, this.clock.now());
    this.metrics?.add();
    this.metrics?.depth(this.dirty.size);
    // A key being processed goes back into the queue at done(), so that no two workers hold it at once.
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.dispatch();
  }

  /** Resolves with the next key, or with shutdown once the queue shuts down. */
  get(): Promise<WorkQueueItem<T>> {
    if (this.shutdown) return Promise.resolve(SHUTDOWN);
    if (this.head < this.queue.length) return Promise.resolve({ key: this.take(), shutdown: false });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key as no longer processed; if it was added meanwhile, it is queued again now. */
  done(key: T): void {
    // Guards against a stray done() queueing a key that is already queued, which would then be handed out twice.
    if (!this.processing.delete(key)) return;
    const start = this.startTimes.get(key);
    this.startTimes.delete(key);
    if (start !== undefined) this.metrics?.workDuration((this.clock.now() - start) / 1000);
    if (this.shutdown) {
      if (this.processing.size === 0) this.releaseDrainWaiters();
      return;
    }
    if (this.dirty.has(key)) {
      this.queue.push(key);
      this.dispatch();
    }
  }

  /** Keys ready to be handed out (not those waiting for a delay, nor those waiting for their worker to finish). */
  len(): number {
    return this.queue.length - this.head;
  }

  /**
   * Ignores further adds and makes get() answer shutdown, including for keys still queued: unlike client-go, which
   * still hands those out, because a controller that stops should stop now; the next start lists everything again.
   */
  shutDown(): void {
    this.stop();
    // As in client-go, a plain shutdown ends a drain that is still waiting.
    this.releaseDrainWaiters();
  }

  /** Shuts down like shutDown(), and resolves once every key handed out so far is done. */
  shutDownWithDrain(): Promise<void> {
    this.stop();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  shuttingDown(): boolean {
    return this.shutdown;
  }

  /** Adds the key after ms (now if ms <= 0). If the key already waits for an earlier time, that time stands. */
  addAfter(key: T, ms: number): void {
    if (this.shutdown) return;
    this.metrics?.retry();
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + ms;
    const pending = this.waiting.get(key);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      this.clock.clearTimeout(pending.timer);
    }
    const timer = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { readyAt, timer });
  }

  /**
   * Every key waiting for a delay is added now, and its backoff reset: after an outage the work that failed during
   * it should not wait out a backoff that grew while nothing could succeed. Safe for keys waiting for a
   * requeueAfter too, when reconciles are level-based: an early one computes the rest of its wait again. Keys in
   * flight have their backoff reset too: a reconcile still waiting on a request sent during the outage fails after
   * the server is back, and its retry must not wait out the outage's backoff (seen: minutes after a restart).
   */
  retryWaitingNow(): number {
    if (this.shutdown) return 0;
    for (const key of this.processing) this.rateLimiter.forget(key);
    const keys = [...this.waiting.keys()];
    for (const key of keys) {
      const pending = this.waiting.get(key);
      if (pending) this.clock.clearTimeout(pending.timer);
      this.waiting.delete(key);
      this.rateLimiter.forget(key);
      this.add(key);
    }
    return keys.length;
  }

  addRateLimited(key: T): void {
    if (this.shutdown) return;
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Resets the key's backoff; call it when the key was processed successfully. */
  forget(key: T): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: T): number {
    return this.rateLimiter.numRequeues(key);
  }

  private take(): T {
    const key = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    const now = this.clock.now();
    const added = this.addTimes.get(key);
    this.addTimes.delete(key);
    this.startTimes.set(key, now);
    this.metrics?.depth(this.dirty.size);
    if (added !== undefined) this.metrics?.queueLatency((now - added) / 1000);
    return key;
  }

  private dispatch(): void {
    while (this.head < this.queue.length) {
      const resolve = this.waiters.shift();
      if (resolve === undefined) return;
      resolve({ key: this.take(), shutdown: false });
    }
  }

  private stop(): void {
    if (this.shutdown) return;
    this.shutdown = true;
    for (const { timer } of this.waiting.values()) this.clock.clearTimeout(timer);
    this.waiting.clear();
    const hadPending = this.dirty.size > 0;
    this.queue = [];
    this.head = 0;
    this.dirty.clear();
    this.addTimes.clear();
    if (hadPending) this.metrics?.depth(0);
    for (const resolve of this.waiters.splice(0)) resolve(SHUTDOWN);
  }

  private releaseDrainWaiters(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}
