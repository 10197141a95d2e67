import assert from "node:assert/strict";
import { FakeClock } from "../../src/runtime/clock.js";
import {
  BucketRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  WorkQueue,
  defaultControllerRateLimiter,
  type RateLimiter,
  type WorkQueueItem,
  type WorkQueueMetrics,
} from "../../src/runtime/workqueue.js";

/** Lets every settled promise run its callbacks, so a promise still pending afterwards is really blocked. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface Tracked<V> {
  settled: boolean;
  value: V | undefined;
}

function track<V>(promise: Promise<V>): Tracked<V> {
  const t: Tracked<V> = { settled: false, value: undefined };
  void promise.then((v) => {
    t.settled = true;
    t.value = v;
  });
  return t;
}

async function getKey<T extends string>(q: WorkQueue<T>): Promise<T> {
  const item = await q.get();
  if (item.shutdown) assert.fail("expected a key, the queue shut down");
  return item.key;
}

function keyOf<T extends string>(item: WorkQueueItem<T> | undefined): T | "shutdown" | undefined {
  if (item === undefined) return undefined;
  return item.shutdown ? "shutdown" : item.key;
}

class RecordingMetrics implements WorkQueueMetrics {
  adds = 0;
  retries = 0;
  depths: number[] = [];
  latencies: number[] = [];
  durations: number[] = [];
  add(): void {
    this.adds++;
  }
  depth(n: number): void {
    this.depths.push(n);
  }
  queueLatency(seconds: number): void {
    this.latencies.push(seconds);
  }
  workDuration(seconds: number): void {
    this.durations.push(seconds);
  }
  retry(): void {
    this.retries++;
  }
}

describe("FakeClock", () => {
  it("fires due timers in time order, ties in scheduling order, with now() at each timer's due time", () => {
    const clock = new FakeClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`late@${clock.now()}`), 31);
    clock.step(30);
    assert.deepEqual(fired, ["a@1010", "b@1010", "c@1030"]);
    assert.equal(clock.now(), 1030);
    assert.equal(clock.pendingTimers(), 1);
    clock.step(1);
    assert.deepEqual(fired, ["a@1010", "b@1010", "c@1030", "late@1031"]);
    assert.equal(clock.pendingTimers(), 0);
  });

  it("fires timers that fired callbacks schedule when they are due within the same step", () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 5);
      clock.setTimeout(() => fired.push(clock.now()), 50);
    }, 10);
    clock.setTimeout(() => fired.push(clock.now()), 12);
    clock.step(20);
    assert.deepEqual(fired, [10, 12, 15]);
    clock.setTime(60);
    assert.deepEqual(fired, [10, 12, 15, 60]);
  });

  it("does not fire cleared timers and refuses to go back in time", () => {
    const clock = new FakeClock();
    let fired = false;
    const handle = clock.setTimeout(() => (fired = true), 10);
    clock.clearTimeout(handle);
    clock.step(100);
    assert.equal(fired, false);
    assert.throws(() => clock.setTime(50), RangeError);
  });
});

describe("WorkQueue", () => {
  let clock: FakeClock;
  beforeEach(() => {
    clock = new FakeClock();
  });

  describe("queue", () => {
    it("queues a key once however often it is added", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      q.add("a");
      q.add("b");
      q.add("a");
      assert.equal(q.len(), 2);
      assert.equal(await getKey(q), "a");
      assert.equal(await getKey(q), "b");
      assert.equal(q.len(), 0);
      const next = track(q.get());
      await flush();
      assert.equal(next.settled, false);
    });

    it("hands keys out in the order they were first added", async () => {
      const q = new WorkQueue({ clock });
      for (const k of ["c", "a", "b", "a", "d"]) q.add(k);
      const got: string[] = [];
      for (let i = 0; i < 4; i++) got.push(await getKey(q));
      assert.deepEqual(got, ["c", "a", "b", "d"]);
    });

    it("keeps order and length over many keys taken while others are added", async () => {
      const q = new WorkQueue({ clock });
      for (let i = 0; i < 3000; i++) q.add(`k${i}`);
      for (let i = 0; i < 2500; i++) assert.equal(await getKey(q), `k${i}`);
      for (let i = 3000; i < 3100; i++) q.add(`k${i}`);
      q.add("k2999");
      assert.equal(q.len(), 600);
      for (let i = 2500; i < 3100; i++) assert.equal(await getKey(q), `k${i}`);
      assert.equal(q.len(), 0);
    });

    it("serves waiting getters first come, first served", async () => {
      const q = new WorkQueue({ clock });
      const gets = [track(q.get()), track(q.get()), track(q.get())];
      q.add("x");
      q.add("y");
      await flush();
      assert.deepEqual(
        gets.map((g) => keyOf(g.value)),
        ["x", "y", undefined],
      );
      q.add("z");
      await flush();
      assert.equal(keyOf(gets[2].value), "z");
    });

    it("never hands one key to two workers at once", async () => {
      const q = new WorkQueue({ clock });
      const first = track(q.get());
      const second = track(q.get());
      q.add("a");
      await flush();
      assert.equal(keyOf(first.value), "a");
      assert.equal(second.settled, false);

      q.add("a"); // changed while the first worker has it
      await flush();
      assert.equal(second.settled, false, "the second worker must not get a key the first one holds");
      assert.equal(q.len(), 0);

      q.done("a");
      await flush();
      assert.equal(keyOf(second.value), "a");
    });

    it("processes a key re-added during processing again after done, and only then", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      assert.equal(await getKey(q), "a");
      q.add("a");
      q.add("a");
      q.add("b");
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "b", "a is still being processed");
      assert.equal(q.len(), 0);
      q.done("a");
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "a");
      q.done("a");
      q.done("b");
      assert.equal(q.len(), 0);
    });

    it("does not requeue a key on done when nobody added it meanwhile", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      assert.equal(await getKey(q), "a");
      q.done("a");
      assert.equal(q.len(), 0);
      q.add("a");
      assert.equal(q.len(), 1);
    });

    it("ignores done for a key that is not being processed", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      q.done("a");
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "a");
      const next = track(q.get());
      await flush();
      assert.equal(next.settled, false, "a must not have been queued twice");
    });
  });

  describe("addAfter", () => {
    it("makes the key available only once the delay has passed", async () => {
      const q = new WorkQueue({ clock });
      const waiter = track(q.get());
      q.addAfter("a", 100);
      assert.equal(q.len(), 0);
      clock.step(99);
      await flush();
      assert.equal(q.len(), 0);
      assert.equal(waiter.settled, false);
      clock.step(1);
      await flush();
      assert.equal(keyOf(waiter.value), "a");
    });

    it("adds right away for a delay of zero or less", () => {
      const q = new WorkQueue({ clock });
      q.addAfter("a", 0);
      q.addAfter("b", -5);
      assert.equal(q.len(), 2);
      assert.equal(clock.pendingTimers(), 0);
    });

    it("keeps the earlier of two delays for one key when the earlier comes second", async () => {
      const q = new WorkQueue({ clock });
      q.addAfter("a", 500);
      q.addAfter("a", 100);
      assert.equal(clock.pendingTimers(), 1);
      clock.step(100);
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "a");
      q.done("a");
      clock.step(400);
      assert.equal(q.len(), 0, "the later delay was dropped");
    });

    it("keeps the earlier of two delays for one key when the earlier comes first", async () => {
      const q = new WorkQueue({ clock });
      q.addAfter("a", 100);
      clock.step(50);
      q.addAfter("a", 100); // due at 150, later than the pending 100
      clock.step(50);
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "a");
      q.done("a");
      clock.step(1000);
      assert.equal(q.len(), 0);
    });

    it("delays keys independently and dedupes against a key already queued", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      q.addAfter("a", 10);
      q.addAfter("b", 20);
      q.addAfter("c", 5);
      clock.step(30);
      assert.equal(q.len(), 3);
      assert.deepEqual([await getKey(q), await getKey(q), await getKey(q)], ["a", "c", "b"]);
    });
  });

  describe("rate limiters", () => {
    it("backs off exponentially per item from 5ms, capped at 1000s, and forget resets it", () => {
      const rl = new ItemExponentialFailureRateLimiter();
      const delays = Array.from({ length: 21 }, () => rl.when("a"));
      const expected = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 40960, 81920, 163840];
      expected.push(327680, 655360, 1_000_000, 1_000_000, 1_000_000);
      assert.deepEqual(delays, expected);
      assert.equal(rl.numRequeues("a"), 21);

      assert.equal(rl.when("b"), 5, "items back off independently");
      assert.equal(rl.numRequeues("b"), 1);

      for (let i = 0; i < 2000; i++) rl.when("a");
      assert.equal(rl.when("a"), 1_000_000, "a huge failure count still yields the cap");

      rl.forget("a");
      assert.equal(rl.numRequeues("a"), 0);
      assert.equal(rl.when("a"), 5);
      assert.equal(rl.when("a"), 10);
      assert.equal(rl.numRequeues("b"), 1);
    });

    it("uses the given base and cap", () => {
      const rl = new ItemExponentialFailureRateLimiter(100, 350);
      assert.deepEqual([rl.when("a"), rl.when("a"), rl.when("a"), rl.when("a")], [100, 200, 350, 350]);
    });

    it("lets a burst of 100 through and then spaces out at 10 per second", () => {
      const rl = new BucketRateLimiter(10, 100, clock);
      for (let i = 0; i < 100; i++) assert.equal(rl.when(`k${i}`), 0, `token ${i}`);
      assert.deepEqual([rl.when("x"), rl.when("y"), rl.when("z")], [100, 200, 300]);
      assert.equal(rl.numRequeues("x"), 0);

      clock.step(300); // pays back the three reserved tokens, no more
      assert.equal(rl.when("x"), 100);
      clock.step(100);
      assert.equal(rl.when("x"), 100, "the 100ms refilled the token the previous call reserved");
      clock.step(350);
      assert.equal(rl.when("x"), 0);
      assert.equal(rl.when("x"), 0);
      assert.equal(rl.when("x"), 50);
    });

    it("refills at qps up to the burst and no further", () => {
      const rl = new BucketRateLimiter(10, 100, clock);
      for (let i = 0; i < 100; i++) rl.when("k");
      clock.step(1000);
      for (let i = 0; i < 10; i++) assert.equal(rl.when("k"), 0);
      assert.equal(rl.when("k"), 100);

      clock.step(1_000_000);
      for (let i = 0; i < 100; i++) assert.equal(rl.when("k"), 0);
      assert.equal(rl.when("k"), 100);
    });

    it("rejects a bucket that could never grant a token", () => {
      assert.throws(() => new BucketRateLimiter(0, 100, clock), RangeError);
      assert.throws(() => new BucketRateLimiter(10, 0, clock), RangeError);
    });

    it("takes the longest delay of several limiters, and forgets in all of them", () => {
      const fast = new ItemExponentialFailureRateLimiter(1, 1000);
      const slow = new ItemExponentialFailureRateLimiter(30, 100);
      const rl = new MaxOfRateLimiter(fast, slow);
      assert.deepEqual(
        Array.from({ length: 8 }, () => rl.when("a")),
        [30, 60, 100, 100, 100, 100, 100, 128],
      );
      assert.equal(rl.numRequeues("a"), 8);
      rl.forget("a");
      assert.equal(fast.numRequeues("a"), 0);
      assert.equal(slow.numRequeues("a"), 0);
      assert.equal(new MaxOfRateLimiter().when("a"), 0);
    });

    it("combines per-item backoff with the overall bucket by default", () => {
      const rl = defaultControllerRateLimiter(clock);
      assert.deepEqual([rl.when("a"), rl.when("a"), rl.when("a")], [5, 10, 20]);
      assert.equal(rl.numRequeues("a"), 3);
      rl.forget("a");
      assert.equal(rl.numRequeues("a"), 0);
      // 3 tokens are gone; 97 more distinct items each get only their own first backoff.
      for (let i = 0; i < 97; i++) assert.equal(rl.when(`k${i}`), 5);
      assert.equal(rl.when("next"), 100, "the empty bucket outweighs the 5ms backoff");
      assert.equal(rl.when("a"), 200);
    });
  });

  describe("addRateLimited", () => {
    it("adds after the limiter's delay and counts requeues until forget", async () => {
      const rateLimiter: RateLimiter = new ItemExponentialFailureRateLimiter(10, 1000);
      const q = new WorkQueue({ clock, rateLimiter });
      q.addRateLimited("a");
      assert.equal(q.numRequeues("a"), 1);
      clock.step(9);
      assert.equal(q.len(), 0);
      clock.step(1);
      assert.equal(q.len(), 1);
      assert.equal(await getKey(q), "a");
      q.addRateLimited("a");
      q.done("a");
      clock.step(19);
      assert.equal(q.len(), 0);
      clock.step(1);
      assert.equal(q.len(), 1);
      assert.equal(q.numRequeues("a"), 2);
      q.forget("a");
      assert.equal(q.numRequeues("a"), 0);
    });

    it("uses the default controller limiter on the queue's clock when given none", () => {
      const q = new WorkQueue({ clock });
      q.addRateLimited("a");
      clock.step(4);
      assert.equal(q.len(), 0);
      clock.step(1);
      assert.equal(q.len(), 1);
    });
  });

  describe("retryWaitingNow", () => {
    it("adds every key waiting for a delay now, with its backoff reset", async () => {
      const q = new WorkQueue<string>({ clock });
      for (let i = 0; i < 12; i++) q.addRateLimited("a"); // the backoff grew to 5 ms * 2^11 (10 s)
      q.addAfter("b", 60_000);
      assert.equal(q.len(), 0);
      assert.equal(q.retryWaitingNow(), 2);
      assert.equal(q.len(), 2);
      assert.equal(q.numRequeues("a"), 0);
      assert.equal(await getKey(q), "a");
      assert.equal(await getKey(q), "b");
      clock.step(60_000); // the cancelled timers do not add them again
      assert.equal(q.len(), 0);
    });

    it("resets the backoff of a key in flight, so that its failure afterwards is retried after the base delay", async () => {
      const q = new WorkQueue<string>({ clock });
      q.add("a");
      for (let i = 0; i < 12; i++) {
        assert.equal(await getKey(q), "a");
        q.addRateLimited("a"); // failed: the server is down
        q.done("a");
        clock.step(1000_000);
      }
      assert.equal(await getKey(q), "a"); // in flight when the server comes back
      assert.equal(q.numRequeues("a"), 12);
      assert.equal(q.retryWaitingNow(), 0);
      assert.equal(q.numRequeues("a"), 0);
      q.addRateLimited("a"); // and fails after all
      q.done("a");
      clock.step(4);
      assert.equal(q.len(), 0);
      clock.step(1);
      assert.equal(q.len(), 1);
    });
  });

  describe("shutdown", () => {
    it("releases waiting getters, ignores adds and answers later gets with shutdown", async () => {
      const q = new WorkQueue({ clock });
      const waiters = [track(q.get()), track(q.get())];
      assert.equal(q.shuttingDown(), false);
      q.shutDown();
      assert.equal(q.shuttingDown(), true);
      await flush();
      assert.deepEqual(
        waiters.map((w) => keyOf(w.value)),
        ["shutdown", "shutdown"],
      );
      q.add("a");
      q.addAfter("b", 0);
      q.addRateLimited("c");
      assert.equal(q.len(), 0);
      assert.equal(q.numRequeues("c"), 0, "a rate-limited add after shutdown does not count as a failure");
      assert.equal(keyOf(await q.get()), "shutdown");
    });

    it("cancels pending delayed adds", () => {
      const q = new WorkQueue({ clock });
      q.addAfter("a", 100);
      q.shutDown();
      assert.equal(clock.pendingTimers(), 0);
      clock.step(100);
      assert.equal(q.len(), 0);
    });

    it("drains: resolves only once in-flight keys are done, and hands out no more keys", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      q.add("b");
      q.add("c");
      assert.equal(await getKey(q), "a");
      assert.equal(await getKey(q), "b");
      q.add("a"); // re-added while in flight; must not come back after the drain started

      const drained = track(q.shutDownWithDrain());
      await flush();
      assert.equal(drained.settled, false);
      assert.equal(keyOf(await q.get()), "shutdown", "c is not handed out");
      q.add("d");
      assert.equal(q.len(), 0);

      q.done("a");
      await flush();
      assert.equal(drained.settled, false, "b is still in flight");
      assert.equal(q.len(), 0, "done does not requeue during a drain");

      q.done("b");
      await flush();
      assert.equal(drained.settled, true);
    });

    it("drains at once when nothing is in flight", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      const drained = track(q.shutDownWithDrain());
      await flush();
      assert.equal(drained.settled, true);
      assert.equal(keyOf(await q.get()), "shutdown");
    });

    it("ends a waiting drain on a plain shutDown", async () => {
      const q = new WorkQueue({ clock });
      q.add("a");
      await getKey(q);
      const drained = track(q.shutDownWithDrain());
      await flush();
      assert.equal(drained.settled, false);
      q.shutDown();
      await flush();
      assert.equal(drained.settled, true);
    });
  });

  describe("metrics", () => {
    it("counts real adds, reports depth, queue latency and work duration", async () => {
      const metrics = new RecordingMetrics();
      const q = new WorkQueue({ clock, metrics });
      q.add("a");
      q.add("a");
      clock.step(100);
      q.add("b");
      assert.equal(metrics.adds, 2, "a duplicate add is not counted");
      assert.deepEqual(metrics.depths, [1, 2]);

      clock.step(150);
      assert.equal(await getKey(q), "a");
      assert.deepEqual(metrics.latencies, [0.25]);
      assert.deepEqual(metrics.depths, [1, 2, 1]);

      q.add("a"); // re-added while processing: pending, so it counts and adds to depth
      assert.equal(metrics.adds, 3);
      assert.deepEqual(metrics.depths, [1, 2, 1, 2]);

      clock.step(2000);
      q.done("a");
      assert.deepEqual(metrics.durations, [2]);

      assert.equal(await getKey(q), "b");
      assert.equal(await getKey(q), "a");
      assert.deepEqual(metrics.latencies, [0.25, 2.15, 2]);
      assert.deepEqual(metrics.depths, [1, 2, 1, 2, 1, 0]);
      q.done("b");
      assert.deepEqual(metrics.durations, [2, 0]);
      assert.equal(metrics.retries, 0);
    });

    it("counts a retry for every addRateLimited and addAfter", () => {
      const metrics = new RecordingMetrics();
      const q = new WorkQueue({ clock, metrics, rateLimiter: new ItemExponentialFailureRateLimiter() });
      q.addRateLimited("a");
      q.addRateLimited("a");
      q.addAfter("b", 10);
      assert.equal(metrics.retries, 3);
      assert.equal(metrics.adds, 0, "nothing is pending before the delays pass");
      clock.step(10);
      assert.equal(metrics.adds, 2);
      q.shutDown();
      q.addRateLimited("a");
      assert.equal(metrics.retries, 3);
    });
  });
});
