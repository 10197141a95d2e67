// Time behind an interface, so that code which waits (delayed requeues, rate limiters) can be tested by stepping a
// fake clock instead of sleeping.

declare const timerHandleBrand: unique symbol;

/** An opaque timer, only good for passing back to the clock that made it. */
export interface TimerHandle {
  readonly [timerHandleBrand]: true;
}

export interface Clock {
  /** Milliseconds; only differences between two readings are meaningful. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

// Node fires a timer longer than this after 1ms (with a warning), so longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

interface RealTimer {
  timer: NodeJS.Timeout | undefined;
}

/**
 * The process clock. now() is monotonic (anchored at the process's time origin, so it reads close to epoch ms),
 * because a wall clock stepped by NTP would make rate limits and latencies jump.
 */
export const realClock: Clock = {
  now(): number {
    return performance.timeOrigin + performance.now();
  },
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const due = realClock.now() + ms;
    const handle: RealTimer = { timer: undefined };
    const arm = (): void => {
      const left = Math.max(0, due - realClock.now());
      handle.timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fn, left);
    };
    arm();
    return handle as unknown as TimerHandle;
  },
  clearTimeout(handle: TimerHandle): void {
    clearTimeout((handle as unknown as RealTimer).timer);
  },
};

interface FakeTimer {
  due: number;
  /** Breaks ties between timers due at the same time: the one scheduled first fires first. */
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. Due timers fire synchronously inside step()/setTime(), earliest first, with
 * now() reading each timer's due time while it runs, so tests are deterministic.
 */
export class FakeClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { due: this.time + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return timer as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as unknown as FakeTimer);
  }

  /** Timers scheduled and not yet fired or cleared. */
  pendingTimers(): number {
    return this.timers.size;
  }

  step(ms: number): void {
    this.setTime(this.time + ms);
  }

  setTime(time: number): void {
    if (time < this.time) throw new RangeError(`FakeClock cannot go back from ${this.time} to ${time}`);
    // Picks the next timer afresh each round because a callback may schedule or clear timers that are also due.
    for (let next = this.nextDue(time); next !== undefined; next = this.nextDue(time)) {
      this.timers.delete(next);
      this.time = next.due;
      next.fn();
    }
    this.time = time;
  }

  private nextDue(time: number): FakeTimer | undefined {
    let next: FakeTimer | undefined;
    for (const t of this.timers) {
      if (t.due > time) continue;
      if (next === undefined || t.due < next.due || (t.due === next.due && t.seq < next.seq)) next = t;
    }
    return next;
  }
}
