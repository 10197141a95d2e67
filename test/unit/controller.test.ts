// Unit test of the Controller's side of controller-runtime's Reconciler contract: the AbortSignal it passes is
// the controller's context, aborted on shutdown, and an in-flight reconcile is waited for.
import assert from "node:assert/strict";
import { Controller } from "../../src/runtime/controller.js";

describe("runtime/controller: the reconcile's AbortSignal", () => {
  it("is aborted when the controller shuts down, and the in-flight reconcile is waited for", async () => {
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    const seen: { key: string; abortedAtStart: boolean; abortedAtEnd?: boolean }[] = [];
    const controller = new Controller({
      name: "signal",
      reconciler: {
        async reconcile(key, signal) {
          const entry: (typeof seen)[number] = { key, abortedAtStart: signal.aborted };
          seen.push(entry);
          started();
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          entry.abortedAtEnd = signal.aborted;
          return undefined;
        },
      },
    });
    await controller.start();
    controller.queue.add("a");
    await running;
    assert.equal(await controller.shutdown(5_000), true, "the reconcile returned once its signal was aborted");
    assert.deepEqual(seen, [{ key: "a", abortedAtStart: false, abortedAtEnd: true }]);
  });
});
