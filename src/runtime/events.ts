// An event recorder (core/v1 Events, which `kubectl describe` shows) that aggregates repeats like client-go's
// EventCorrelator: an identical event bumps count and lastTimestamp on the existing Event instead of creating
// another, those bumps are coalesced to one write per interval, and a per-object token bucket caps the rest,
// so a hot reconcile loop can't flood etcd.
import { randomBytes } from "node:crypto";
import { core, isNotFound, type KubeClient } from "./client.js";
import { realClock, type Clock } from "./clock.js";
import { errorMessage, silentLogger, type Logger } from "./log.js";

export const EVENTS = core("events", "Event");

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

export type EventType = "Normal" | "Warning";

interface Aggregate {
  name: string;
  namespace: string;
  count: number;
  written: number;
  lastWriteAt: number;
  flush?: ReturnType<Clock["setTimeout"]>;
}

interface QueuedCreate {
  /** The aggregate's key in EventRecorder.aggregates. */
  key: string;
  /** When the Event happened (its firstTimestamp), not when a slot let it out. */
  at: number;
  object: ObjectReference;
  type: EventType;
  reason: string;
  message: string;
  aggregate: Aggregate;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface EventRecorderOptions {
  component: string;
  /** Namespace for events about cluster-scoped objects. */
  defaultNamespace?: string;
  clock?: Clock;
  logger?: Logger;
  /** At most one write per repeated event in this interval. */
  coalesceMs?: number;
  /** client-go's spam filter: burst 25, one more token every 5 minutes, per involved object. */
  burst?: number;
  refillMs?: number;
  maxTracked?: number;
  /**
   * Event writes in flight at once; the others wait their turn. An Event is one request, as costly to the API
   * server as the write it reports: unbounded, a batch of 1,000 moves sent 1,000 Events alongside its writes and
   * slowed them (bench/README.md). Behind the writes, they cost the rollout little and arrive a moment later.
   */
  maxInFlight?: number;
  /** Events waiting beyond this many are dropped (and counted), so a long stall of the API server holds no more. */
  maxQueued?: number;
  /**
   * Awaited before each routine (Normal) Event write: the operator passes "until no Service write is in flight",
   * so that the Events of a batch go out once its writes are done instead of sharing the API server with them
   * (bench/README.md). Warnings never wait.
   */
  waitForIdle?: () => Promise<void>;
  /** Told of every Event: written (created or its count bumped), dropped by the spam filter or the queue, failed. */
  onResult?: (result: EventResult) => void;
}

export type EventResult = "written" | "dropped" | "failed";

export class EventRecorder {
  private readonly aggregates = new Map<string, Aggregate>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly options: Required<Omit<EventRecorderOptions, "clock" | "logger" | "onResult" | "waitForIdle">>;
  private readonly waitForIdle: () => Promise<void>;
  private readonly onResult: (result: EventResult) => void;
  private pending = new Set<Promise<void>>();
  private inFlight = 0;
  /** Count updates waiting for a slot. */
  private readonly queue: (() => void)[] = [];
  /**
   * Routine Events waiting to be sent, as data: a queued Event holds its fields and nothing else (as a pending
   * promise chain each held 2.6 KiB, 25 MiB for the 10,000 Events of a 10,000-Service rollout, bench/README.md).
   */
  private readonly creates: QueuedCreate[] = [];
  private pumping: Promise<void> | undefined;
  /** Events not written because of the spam filter, for tests and metrics. */
  dropped = 0;

  constructor(
    private readonly client: KubeClient,
    options: EventRecorderOptions,
  ) {
    this.clock = options.clock ?? realClock;
    this.log = options.logger ?? silentLogger;
    this.options = {
      component: options.component,
      defaultNamespace: options.defaultNamespace ?? "default",
      coalesceMs: options.coalesceMs ?? 10_000,
      burst: options.burst ?? 25,
      refillMs: options.refillMs ?? 300_000,
      maxTracked: options.maxTracked ?? 4096,
      maxInFlight: options.maxInFlight ?? 2,
      maxQueued: options.maxQueued ?? 10_000,
    };
    this.onResult = options.onResult ?? (() => undefined);
    this.waitForIdle = options.waitForIdle ?? (() => Promise.resolve());
  }

  /** Fire and forget: an event that can't be written is logged, never thrown into the reconcile. */
  event(object: ObjectReference, type: EventType, reason: string, message: string): void {
    const key = [object.uid ?? `${object.namespace ?? ""}/${object.name}`, type, reason, message].join("\u0000");
    const now = this.clock.now();
    const existing = this.aggregates.get(key);
    if (existing) {
      existing.count++;
      this.scheduleBump(key, existing);
      return;
    }
    if (!this.takeToken(object.uid ?? object.name, now) || this.creates.length >= this.options.maxQueued) {
      this.dropped++;
      this.onResult("dropped");
      return;
    }
    const namespace = object.namespace ?? this.options.defaultNamespace;
    const name = `${object.name}.${Date.now().toString(16)}${randomBytes(2).toString("hex")}`;
    const aggregate: Aggregate = { name, namespace, count: 1, written: 0, lastWriteAt: now };
    this.remember(key, aggregate);
    const create: QueuedCreate = { key, at: now, object, type, reason, message, aggregate };
    // A Warning is sent at once, not behind the routine Events: it is often the only record of what went wrong (an
    // address not given back), and a process killed while it waited in the queue would lose it.
    if (type === "Warning") this.track(this.send(create));
    else {
      this.creates.push(create);
      this.pump();
    }
  }

  /** Writes the aggregate's count coalesceMs after its last write (at once if that is past), unless one is due. */
  private scheduleBump(key: string, aggregate: Aggregate): void {
    if (aggregate.flush !== undefined) return;
    const wait = Math.max(0, aggregate.lastWriteAt + this.options.coalesceMs - this.clock.now());
    aggregate.flush = this.clock.setTimeout(() => {
      aggregate.flush = undefined;
      this.track(this.bump(key, aggregate));
    }, wait);
  }

  private async send(create: QueuedCreate): Promise<void> {
    const { key, at, object, type, reason, message, aggregate } = create;
    const timestamp = new Date(at).toISOString();
    // Repeats seen while it waited in the queue go in the create itself (bump() leaves an unwritten Event alone).
    const count = aggregate.count;
    try {
      await this.client.create(EVENTS, aggregate.namespace, {
        metadata: { name: aggregate.name, namespace: aggregate.namespace },
        involvedObject: object,
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.options.component },
        reportingComponent: this.options.component,
        reportingInstance: this.options.component,
        firstTimestamp: timestamp,
        lastTimestamp: timestamp,
        count,
      });
    } catch (err) {
      // Not written: the next occurrence creates a fresh Event instead of counting on this one.
      if (this.aggregates.get(key) === aggregate) this.aggregates.delete(key);
      throw err;
    }
    aggregate.written = count;
    // A repeat seen while the create was in flight: its bump found no Event yet and left it to this.
    if (aggregate.count > count) this.scheduleBump(key, aggregate);
  }

  /**
   * Sends queued routine Events while a slot is free, each once waitForIdle() says so. One loop at a time; a
   * freed slot (release) starts it again.
   */
  private pump(): void {
    if (this.pumping) return;
    const run = async () => {
      while (this.creates.length > 0 && this.inFlight < this.options.maxInFlight) {
        // The slot is taken before the wait, so that an Event waiting for it is not counted as queued.
        const next = this.creates.shift();
        if (!next) break;
        this.inFlight++;
        await this.waitForIdle();
        this.track(this.send(next).finally(() => this.release()));
      }
    };
    this.pumping = run().finally(() => {
      this.pumping = undefined;
      // An Event queued after the loop's last check, while it was still marked as running.
      if (this.creates.length > 0 && this.inFlight < this.options.maxInFlight) this.pump();
    });
  }

  /** A slot is free: to a waiting count update first (they are few), else to the queued Events. */
  private release(): void {
    this.inFlight--;
    const waiter = this.queue.shift();
    if (waiter) waiter();
    else this.pump();
  }

  private async bump(key: string, aggregate: Aggregate): Promise<void> {
    // Not created yet (queued behind the writes): its create carries the count; a patch now would find no Event.
    if (aggregate.written === 0 || aggregate.written === aggregate.count) return;
    aggregate.lastWriteAt = this.clock.now();
    const count = aggregate.count;
    try {
      await this.limited(() =>
        this.client.patch(
          EVENTS,
          aggregate.namespace,
          aggregate.name,
          { count, lastTimestamp: new Date(aggregate.lastWriteAt).toISOString() },
          "merge",
        ),
      );
      aggregate.written = count;
    } catch (err) {
      // The Event expired (TTL) or was deleted: forget it so the next occurrence creates a fresh one.
      if (isNotFound(err)) this.aggregates.delete(key);
      else throw err;
    }
  }

  private takeToken(objectKey: string, now: number): boolean {
    let bucket = this.buckets.get(objectKey);
    if (!bucket) {
      bucket = { tokens: this.options.burst, updatedAt: now };
      this.buckets.set(objectKey, bucket);
    }
    const refill = Math.floor((now - bucket.updatedAt) / this.options.refillMs);
    if (refill > 0) {
      bucket.tokens = Math.min(this.options.burst, bucket.tokens + refill);
      bucket.updatedAt += refill * this.options.refillMs;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  private remember(key: string, aggregate: Aggregate): void {
    if (this.aggregates.size >= this.options.maxTracked) {
      const oldest = this.aggregates.keys().next().value;
      if (oldest !== undefined) this.aggregates.delete(oldest);
    }
    this.aggregates.set(key, aggregate);
  }

  /** Runs `write` (a count update) when fewer than maxInFlight Event writes are in flight, in the order asked. */
  private async limited<T>(write: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.options.maxInFlight) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.inFlight++;
    try {
      await this.waitForIdle();
      return await write();
    } finally {
      this.release();
    }
  }

  private track(write: Promise<void>): void {
    const tracked = write.then(
      () => this.onResult("written"),
      (err: unknown) => {
        this.onResult("failed");
        this.log.warn("could not record event", { error: errorMessage(err) });
      },
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** Writes coalesced counts now and waits for every write in flight (on shutdown, and in tests). */
  async flush(): Promise<void> {
    // Again after the writes: a create that finishes may leave a repeat's count to write.
    for (let due = true; due;) {
      due = false;
      for (const [key, aggregate] of this.aggregates) {
        if (aggregate.flush === undefined) continue;
        this.clock.clearTimeout(aggregate.flush);
        aggregate.flush = undefined;
        this.track(this.bump(key, aggregate));
        due = true;
      }
      while (this.pending.size > 0 || this.pumping) {
        await Promise.all([...this.pending, this.pumping]);
        due = true;
      }
    }
  }
}
