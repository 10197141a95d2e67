import assert from "node:assert/strict";
import type { KubeClient } from "../../src/runtime/client.js";
import { EventRecorder, type EventResult } from "../../src/runtime/events.js";
import { ServiceWriter } from "../../src/reconciler/service-writer.js";
import { WriteExpectations } from "../../src/runtime/expectations.js";
import { silentLogger } from "../../src/runtime/log.js";
import type { Service } from "../../src/migration/families.js";

/** A client whose creates wait until the test lets them answer. */
function heldClient() {
  const waiting: (() => void)[] = [];
  let started = 0;
  const client = {
    create: () => {
      started++;
      return new Promise<unknown>((resolve) => waiting.push(() => resolve({})));
    },
  } as unknown as KubeClient;
  return {
    client,
    started: () => started,
    answerAll: () => waiting.splice(0).forEach((answer) => answer()),
  };
}

const ref = (i: number) => ({ apiVersion: "v1", kind: "Service", name: `svc-${i}`, namespace: "ns", uid: `u${i}` });
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("EventRecorder: a budget of Event writes in flight", () => {
  it("sends at most maxInFlight Events at once, the rest in order as answers come, and counts them", async () => {
    const held = heldClient();
    const results: EventResult[] = [];
    const recorder = new EventRecorder(held.client, {
      component: "test",
      maxInFlight: 2,
      onResult: (r) => results.push(r),
    });
    for (let i = 0; i < 5; i++) recorder.event(ref(i), "Normal", "Migrated", `moved ${i}`);
    await settle();
    assert.equal(held.started(), 2);
    held.answerAll();
    await settle();
    assert.equal(held.started(), 4);
    const flushed = recorder.flush();
    for (let i = 0; i < 3; i++) {
      held.answerAll();
      await settle();
    }
    await flushed;
    assert.equal(held.started(), 5);
    assert.deepEqual(results, ["written", "written", "written", "written", "written"]);
  });

  it("sends a Warning at once, ahead of the queued Events", async () => {
    const held = heldClient();
    const recorder = new EventRecorder(held.client, { component: "test", maxInFlight: 1 });
    for (let i = 0; i < 3; i++) recorder.event(ref(i), "Normal", "Migrated", `moved ${i}`);
    await settle();
    assert.equal(held.started(), 1);
    recorder.event(ref(9), "Warning", "AddressNotKept", "refused 10.96.0.9");
    await settle();
    assert.equal(held.started(), 2, "the Warning did not wait behind the two queued Events");
    const flushed = recorder.flush();
    for (let i = 0; i < 4; i++) {
      held.answerAll();
      await settle();
    }
    await flushed;
    assert.equal(held.started(), 4);
  });

  it("drops, and counts, Events beyond maxQueued while the API server is slow", async () => {
    const held = heldClient();
    const results: EventResult[] = [];
    const recorder = new EventRecorder(held.client, {
      component: "test",
      maxInFlight: 1,
      maxQueued: 2,
      onResult: (r) => results.push(r),
    });
    for (let i = 0; i < 5; i++) recorder.event(ref(i), "Normal", "Migrated", `moved ${i}`);
    await settle();
    assert.equal(recorder.dropped, 2);
    const flushed = recorder.flush();
    for (let i = 0; i < 4; i++) {
      held.answerAll();
      await settle();
    }
    await flushed;
    assert.equal(held.started(), 3);
    assert.deepEqual(results.filter((r) => r === "written").length, 3);
    assert.deepEqual(results.filter((r) => r === "dropped").length, 2);
  });

  it("holds routine Events until the writes they report are done; a Warning does not wait", async () => {
    const held = heldClient();
    let idle: () => void = () => undefined;
    const recorder = new EventRecorder(held.client, {
      component: "test",
      waitForIdle: () => new Promise<void>((resolve) => (idle = resolve)),
    });
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    recorder.event(ref(2), "Warning", "AddressNotKept", "refused 10.96.0.9");
    await settle();
    assert.equal(held.started(), 1, "only the Warning went out while writes were in flight");
    idle();
    await settle();
    assert.equal(held.started(), 2);
    held.answerAll();
    await recorder.flush();
  });
  it("a repeat seen while its Event waits behind the writes goes in the create, with the first timestamp", async () => {
    const bodies: { count?: number; firstTimestamp?: string }[] = [];
    let patches = 0;
    const client = {
      create: (_r: unknown, _ns: string, body: { count?: number; firstTimestamp?: string }) => {
        bodies.push(body);
        return Promise.resolve({});
      },
      patch: () => {
        patches++;
        return Promise.resolve({});
      },
    } as unknown as KubeClient;
    let idle: () => void = () => undefined;
    const recorder = new EventRecorder(client, {
      component: "test",
      coalesceMs: 0,
      waitForIdle: () => new Promise<void>((resolve) => (idle = resolve)),
    });
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await new Promise((resolve) => setTimeout(resolve, 5));
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(patches, 0, "no count update of an Event not yet created");
    idle();
    await recorder.flush();
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0]?.count, 2);
    assert.ok((bodies[0]?.firstTimestamp ?? "") < new Date(Date.now() - 4).toISOString(), "the time it happened");
    assert.equal(patches, 0);
  });
});

describe("EventRecorder: a repeat while its Event is being created", () => {
  it("is written as a count once the create is done, not lost", async () => {
    const counts: number[] = [];
    let answer: () => void = () => undefined;
    const client = {
      create: () => new Promise<unknown>((resolve) => (answer = () => resolve({}))),
      patch: (_r: unknown, _ns: string, _name: string, body: { count: number }) => {
        counts.push(body.count);
        return Promise.resolve({});
      },
    } as unknown as KubeClient;
    const recorder = new EventRecorder(client, { component: "test", coalesceMs: 0 });
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await settle();
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(counts, [], "no count update of an Event not yet created");
    answer();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await recorder.flush();
    assert.deepEqual(counts, [2]);
  });

  it("a create that failed is forgotten: the next occurrence creates a fresh Event", async () => {
    let creates = 0;
    const client = {
      create: () => (++creates === 1 ? Promise.reject(new Error("connection reset")) : Promise.resolve({})),
      patch: () => Promise.reject(new Error("no Event to patch")),
    } as unknown as KubeClient;
    const results: EventResult[] = [];
    const recorder = new EventRecorder(client, { component: "test", coalesceMs: 0, onResult: (r) => results.push(r) });
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await recorder.flush();
    recorder.event(ref(1), "Normal", "Migrated", "moved 1");
    await recorder.flush();
    assert.equal(creates, 2);
    assert.deepEqual(results, ["failed", "written"]);
  });
});

describe("ServiceWriter.whenIdle: the end of a batch of writes", () => {
  it("resolves once no write is in flight, not in the gap between two writes", async () => {
    const answers: (() => void)[] = [];
    const client = {
      patch: (_r: unknown, _ns: string, name: string) =>
        new Promise((resolve) =>
          answers.push(() => resolve({ metadata: { name, namespace: "ns", resourceVersion: "2" }, spec: {} })),
        ),
    } as unknown as KubeClient;
    const writer = new ServiceWriter(client, silentLogger, new WriteExpectations());
    const svc = (name: string): Service => ({ metadata: { name, namespace: "ns", resourceVersion: "1" }, spec: {} });
    let isIdle = false;
    await writer.whenIdle();
    const first = writer.mark(svc("a"), { labels: { x: "1" } });
    void writer.whenIdle().then(() => (isIdle = true));
    await settle();
    assert.equal(isIdle, false, "a write is in flight");
    // The next write of the batch starts as the first one's answer is handled, as a worker pool does.
    answers.shift()?.();
    const second = first.then(() => writer.mark(svc("b"), { labels: { x: "1" } }));
    await settle();
    await settle();
    assert.equal(isIdle, false, "the batch goes on");
    answers.shift()?.();
    await second;
    await settle();
    assert.equal(isIdle, true);
  });
});
