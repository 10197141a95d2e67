// Leader election on a coordination.k8s.io/v1 Lease, with the semantics of client-go's leaderelection package
// (LeaseLock + tryAcquireOrRenew) as controller-runtime uses it, so that this operator and a Go controller would
// agree on who holds a lease.
//
// Expiry is judged from the local clock at the moment this elector first saw the current record, never from the
// renewTime in the Lease: the holder's clock and ours need not agree, but both measure durations correctly.
import { LEASES, apiVersionOf, isConflict, isNotFound, resourcePath, type KubeClient } from "./client.js";
import { realClock, type Clock, type TimerHandle } from "./clock.js";
import { errorMessage, silentLogger, type Logger } from "./log.js";
import type { KubeObject } from "./object.js";

/** client-go's JitterFactor: a failed acquisition waits retryPeriod plus up to 1.2 times as long again. */
export const JITTER_FACTOR = 1.2;

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number | null;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

/** resourcelock.LeaderElectionRecord: the Lease's spec with its absent fields made explicit. */
export interface LeaderElectionRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Unique per process (controller-runtime uses hostname + "_" + a UUID). */
  identity: string;
  /** How long others wait, from when they saw the last renewal, before taking over. Default 15 s. */
  leaseDurationMs?: number;
  /** How long the leader keeps retrying a failed renewal before it gives up leading. Default 10 s. */
  renewDeadlineMs?: number;
  /** The interval between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  clock?: Clock;
  logger?: Logger;
  onStartedLeading: () => void;
  /** Called once when leading ends: lost, or ended by stop() or release(). */
  onStoppedLeading: () => void;
  /** Called when a different holder is observed, including this elector itself. */
  onNewLeader?: (identity: string) => void;
  /** For leader_election_master_status. */
  onLeaderChange?: (isLeader: boolean) => void;
}

/** metav1.MicroTime as the server writes it: RFC 3339 in UTC with exactly six fractional digits. */
export function formatMicroTime(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.floor((ms - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(micros).padStart(3, "0")}Z`;
}

/** Milliseconds since the epoch, with the microseconds as a fraction. */
export function parseMicroTime(value: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m) throw new Error(`not a MicroTime: ${value}`);
  const fraction = (m[2] ?? "").padEnd(6, "0").slice(0, 6);
  return Date.parse(`${m[1]}${m[3]}`) + Number(fraction) / 1000;
}

export function recordOf(lease: Lease): LeaderElectionRecord {
  const spec = lease.spec ?? {};
  const record: LeaderElectionRecord = {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
  if (spec.acquireTime) record.acquireTime = spec.acquireTime;
  if (spec.renewTime) record.renewTime = spec.renewTime;
  return record;
}

function specOf(record: LeaderElectionRecord): LeaseSpec {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: record.acquireTime ?? null,
    renewTime: record.renewTime ?? null,
    leaseTransitions: record.leaseTransitions,
  };
}

/** Field order fixed, so that equal records compare equal as text, as client-go compares the raw JSON. */
function rawOf(record: LeaderElectionRecord): string {
  return JSON.stringify([
    record.holderIdentity,
    record.leaseDurationSeconds,
    record.acquireTime ?? "",
    record.renewTime ?? "",
    record.leaseTransitions,
  ]);
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly name: string;
  readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly callbacks: Pick<
    LeaderElectorOptions,
    "onStartedLeading" | "onStoppedLeading" | "onNewLeader" | "onLeaderChange"
  >;

  /** The Lease as last read or written, whose resourceVersion guards the next update. */
  private lease: Lease | undefined;
  private observedRecord: LeaderElectionRecord | undefined;
  private observedRaw = "";
  /** Local clock reading when observedRecord last changed. */
  private observedTime = 0;
  private reportedLeader: string | undefined;
  private leading = false;
  private halted = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(options: LeaderElectorOptions) {
    this.client = options.client;
    this.namespace = options.namespace;
    this.name = options.name;
    this.identity = options.identity;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.clock = options.clock ?? realClock;
    this.log = (options.logger ?? silentLogger).child({
      lease: `${this.namespace}/${this.name}`,
      identity: this.identity,
    });
    this.callbacks = options;
    // client-go's NewLeaderElector checks: a leader must give up before others may take over, and must get
    // more than one jittered retry within its deadline.
    if (!this.identity) throw new Error("leader election identity is empty");
    if (this.leaseDurationMs < 1000) {
      throw new Error("leaseDurationMs must be at least 1000: the Lease holds whole seconds");
    }
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error("leaseDurationMs must be greater than renewDeadlineMs");
    }
    if (this.renewDeadlineMs <= JITTER_FACTOR * this.retryPeriodMs) {
      throw new Error(`renewDeadlineMs must be greater than retryPeriodMs * ${JITTER_FACTOR}`);
    }
    if (this.retryPeriodMs <= 0) throw new Error("retryPeriodMs must be positive");
  }

  /** Whether this elector is leading: from onStartedLeading until onStoppedLeading. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The holder this elector last observed, "" when the lease is free, undefined before the first read. */
  getLeader(): string | undefined {
    return this.observedRecord?.holderIdentity;
  }

  /**
   * Acquires the lease, leads while renewals succeed, and resolves when leading ends: when a renewal has failed
   * for renewDeadline (leadership lost), or after stop() or release(). An elector runs once.
   */
  run(): Promise<void> {
    if (this.loop) throw new Error("LeaderElector.run() called twice");
    this.loop = this.runLoop();
    return this.loop;
  }

  /**
   * Stops acquiring and renewing without touching the Lease, as a crashed process would: others take over once
   * the lease expires. Waits for an attempt in flight.
   */
  async stop(): Promise<void> {
    this.halt();
    await this.loop;
  }

  /**
   * For a graceful shutdown (client-go's ReleaseOnCancel): stops the loops and, if this elector holds the lease,
   * frees it so that another can take over at its next retry instead of after leaseDuration.
   */
  async release(): Promise<void> {
    this.halt();
    await this.loop;
    if (!this.holdsRecord()) return;
    const observed = this.observedRecord;
    const stamp = formatMicroTime(this.wallNow());
    const record: LeaderElectionRecord = {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      acquireTime: stamp,
      renewTime: stamp,
      leaseTransitions: observed?.leaseTransitions ?? 0,
    };
    try {
      await this.withDeadline(this.clock.now() + this.renewDeadlineMs, (signal) => this.update(record, signal));
      this.setObserved(record);
      this.log.info("released leader lease");
    } catch (err) {
      // A 409 means another elector wrote the lease since, so there is nothing left to give up.
      this.log.warn("failed to release leader lease", { error: errorMessage(err) });
    }
  }

  private halt(): void {
    this.halted = true;
    this.wake?.();
  }

  private async runLoop(): Promise<void> {
    if (!(await this.acquire())) return;
    if (this.halted) return; // acquired just as stop() came: lead no more than release() needs
    this.leading = true;
    this.invoke("onLeaderChange", () => this.callbacks.onLeaderChange?.(true));
    this.invoke("onStartedLeading", () => this.callbacks.onStartedLeading());
    try {
      await this.renew();
    } finally {
      this.leading = false;
      this.invoke("onLeaderChange", () => this.callbacks.onLeaderChange?.(false));
      this.invoke("onStoppedLeading", () => this.callbacks.onStoppedLeading());
    }
  }

  /** Tries at once, then every retryPeriod with jitter; false when halted first. */
  private async acquire(): Promise<boolean> {
    this.log.info("attempting to acquire leader lease");
    for (;;) {
      if (this.halted) return false;
      const acquired = await this.withDeadline(this.clock.now() + this.renewDeadlineMs, (signal) =>
        this.tryAcquireOrRenew(signal),
      );
      this.maybeReportTransition();
      if (acquired) {
        this.log.info("successfully acquired leader lease");
        return true;
      }
      if (!(await this.sleep(this.retryPeriodMs * (1 + Math.random() * JITTER_FACTOR)))) return false;
    }
  }

  /**
   * wait.Until(PollUntilContextTimeout(retryPeriod, renewDeadline)): each round retries every retryPeriod until
   * one renewal succeeds or renewDeadline has passed since the round began; a round that fails ends leading.
   */
  private async renew(): Promise<void> {
    for (;;) {
      const deadline = this.clock.now() + this.renewDeadlineMs;
      let renewed = false;
      // Attempts on a fixed tick from the round's start, as Go's ticker: a slow attempt does not push the rest.
      for (let next = this.clock.now(); !renewed && next < deadline; next += this.retryPeriodMs) {
        const wait = next - this.clock.now();
        if (this.halted || (wait > 0 && !(await this.sleep(wait)))) return;
        if (this.clock.now() >= deadline) break;
        renewed = await this.withDeadline(deadline, (signal) => this.tryAcquireOrRenew(signal));
      }
      this.maybeReportTransition();
      if (!renewed) {
        this.log.warn("failed to renew leader lease within the renew deadline: leadership lost", {
          renewDeadlineMs: this.renewDeadlineMs,
        });
        return;
      }
      if (!(await this.sleep(this.retryPeriodMs))) return;
    }
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = this.clock.now();
    const stamp = formatMicroTime(this.wallNow());
    const desired: LeaderElectionRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.floor(this.leaseDurationMs / 1000),
      acquireTime: stamp,
      renewTime: stamp,
      leaseTransitions: 0,
    };

    // The leader's fast path: update on the resourceVersion it last wrote, without a GET first.
    const observed = this.observedRecord;
    if (observed && this.holdsRecord() && this.isLeaseValid(now) && this.lease) {
      desired.acquireTime = observed.acquireTime;
      desired.leaseTransitions = observed.leaseTransitions;
      try {
        await this.update(desired, signal);
        this.setObserved(desired);
        return true;
      } catch (err) {
        this.log.warn("failed to update leader lease optimistically, falling back to a read", {
          error: errorMessage(err),
        });
      }
    }

    let current: Lease;
    try {
      current = await this.client.request<Lease>("GET", resourcePath(LEASES, this.namespace, this.name), { signal });
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn("failed to read leader lease", { error: errorMessage(err) });
        return false;
      }
      try {
        this.lease = await this.client.request<Lease>("POST", resourcePath(LEASES, this.namespace), {
          body: {
            apiVersion: apiVersionOf(LEASES),
            kind: LEASES.kind,
            metadata: { name: this.name, namespace: this.namespace },
            spec: specOf(desired),
          },
          signal,
        });
      } catch (createErr) {
        // 409: another elector created it first, and holds it.
        this.log.log(isConflict(createErr) ? "debug" : "warn", "failed to create leader lease", {
          error: errorMessage(createErr),
        });
        return false;
      }
      this.setObserved(desired);
      return true;
    }

    this.lease = current;
    const record = recordOf(current);
    const raw = rawOf(record);
    if (raw !== this.observedRaw) {
      this.setObserved(record);
      this.observedRaw = raw;
    }
    if (record.holderIdentity !== "" && this.isLeaseValid(now) && !this.holdsRecord()) {
      this.log.debug("leader lease is held by another and has not expired", { holder: record.holderIdentity });
      return false;
    }

    if (this.holdsRecord()) {
      desired.acquireTime = record.acquireTime;
      desired.leaseTransitions = record.leaseTransitions;
    } else {
      desired.leaseTransitions = record.leaseTransitions + 1;
    }
    try {
      await this.update(desired, signal);
    } catch (err) {
      // 409: another elector updated it since our read, and won.
      this.log.log(isConflict(err) ? "debug" : "warn", "failed to update leader lease", { error: errorMessage(err) });
      return false;
    }
    this.setObserved(desired);
    return true;
  }

  private async update(record: LeaderElectionRecord, signal: AbortSignal): Promise<void> {
    const lease = this.lease;
    if (!lease) throw new Error("lease not read yet");
    this.lease = await this.client.request<Lease>("PUT", resourcePath(LEASES, this.namespace, this.name), {
      body: { ...lease, spec: specOf(record) },
      signal,
    });
  }

  /** client-go's IsLeader: whether the last record seen or written names this elector. */
  private holdsRecord(): boolean {
    return this.observedRecord?.holderIdentity === this.identity;
  }

  private isLeaseValid(now: number): boolean {
    return this.observedTime + (this.observedRecord?.leaseDurationSeconds ?? 0) * 1000 > now;
  }

  private setObserved(record: LeaderElectionRecord): void {
    this.observedRecord = record;
    this.observedTime = this.clock.now();
  }

  private maybeReportTransition(): void {
    const holder = this.observedRecord?.holderIdentity;
    if (holder === undefined || holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    // A released lease has no holder; that is not a leader to announce.
    if (holder === "") return;
    this.log.info("new leader observed", { leader: holder });
    this.invoke("onNewLeader", () => this.callbacks.onNewLeader?.(holder));
  }

  /**
   * The time written into the Lease. realClock is monotonic, which keeps expiry immune to clock steps, but the
   * Lease's timestamps are read as wall time by people and tools; a test clock is used as it is.
   */
  private wallNow(): number {
    return this.clock === realClock ? Date.now() : this.clock.now();
  }

  /** Runs fn with a signal that aborts at `deadline` on this elector's clock. */
  private async withDeadline<T>(deadline: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timer = this.clock.setTimeout(
      () => controller.abort(new Error("leader election deadline exceeded")),
      Math.max(0, deadline - this.clock.now()),
    );
    try {
      return await fn(controller.signal);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }

  /** Resolves true after `ms`, or false at once when halted. */
  private sleep(ms: number): Promise<boolean> {
    if (this.halted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: TimerHandle | undefined = undefined;
      this.wake = () => {
        if (timer !== undefined) this.clock.clearTimeout(timer);
        this.wake = undefined;
        resolve(false);
      };
      timer = this.clock.setTimeout(
        () => {
          this.wake = undefined;
          resolve(true);
        },
        Math.max(0, ms),
      );
    });
  }

  private invoke(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error(`${name} callback threw`, { error: errorMessage(err) });
    }
  }
}
