// Write expectations: has the informer's cache caught up with this process's own writes?
//
// A reconciler reads from a cache that lags its writes by a watch event. Reconciled again in that window (another
// object's event, a requeue), it sees the objects it just changed as they were, and would report progress going
// backwards or redo the work. client-go's controllers guard against this with expectations (ReplicaSet's
// ControllerExpectations); this is the same guard for updates, keyed by object. It needs no ordering of
// resourceVersions, which are opaque: every resourceVersion the writer saw before its last write is superseded,
// and the cache moves only forward, so a cached version outside that set is the last write or something newer.
import { realClock, type Clock } from "./clock.js";

interface Expectation {
  superseded: Set<string>;
  latest: string;
  at: number;
}

/** How long an unobserved write holds a key back: a safety net, as client-go's 5-minute expectations timeout. */
const EXPECTATION_TTL_MS = 60_000;

export class WriteExpectations {
  private readonly pending = new Map<string, Expectation>();

  constructor(private readonly clock: Clock = realClock) {}

  /** A write of `key` succeeded: it was based on resourceVersion `from` (if known) and produced `to`. */
  wrote(key: string, from: string | undefined, to: string | undefined): void {
    if (!to) return;
    const entry = this.pending.get(key) ?? { superseded: new Set<string>(), latest: to, at: 0 };
    if (from) entry.superseded.add(from);
    if (entry.latest !== to) entry.superseded.add(entry.latest);
    entry.superseded.delete(to);
    entry.latest = to;
    entry.at = this.clock.now();
    this.pending.set(key, entry);
  }

  /** Whether the cached version of `key` (undefined: not in the cache) reflects this process's last write. */
  satisfied(key: string, cachedResourceVersion: string | undefined): boolean {
    const entry = this.pending.get(key);
    if (!entry) return true;
    const caughtUp = cachedResourceVersion === undefined || !entry.superseded.has(cachedResourceVersion);
    if (caughtUp || this.clock.now() - entry.at > EXPECTATION_TTL_MS) {
      this.pending.delete(key);
      return true;
    }
    return false;
  }

  /** Keys still waiting for their write to reach the cache, for tests and logs. */
  get size(): number {
    return this.pending.size;
  }
}
