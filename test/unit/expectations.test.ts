import assert from "node:assert/strict";
import { FakeClock } from "../../src/runtime/clock.js";
import { WriteExpectations } from "../../src/runtime/expectations.js";

describe("WriteExpectations", () => {
  it("a key never written is satisfied by any cached version", () => {
    const e = new WriteExpectations(new FakeClock(0));
    assert.equal(e.satisfied("ns/a", "7"), true);
    assert.equal(e.satisfied("ns/a", undefined), true);
  });

  it("one write: the version it was based on is stale, the one it produced or anything else is not", () => {
    const e = new WriteExpectations(new FakeClock(0));
    e.wrote("ns/a", "10", "12");
    assert.equal(e.satisfied("ns/a", "10"), false);
    assert.equal(e.satisfied("ns/a", "10"), false, "asking does not clear it");
    assert.equal(e.satisfied("ns/a", "12"), true);
    assert.equal(e.size, 0, "cleared once seen");
    assert.equal(e.satisfied("ns/a", "10"), true, "and forgotten");
  });

  it("two writes in a row (a cutover): the cache holding the first one's result is still behind", () => {
    const e = new WriteExpectations(new FakeClock(0));
    e.wrote("ns/a", "10", "12");
    e.wrote("ns/a", undefined, "15"); // the restore has no precondition
    assert.equal(e.satisfied("ns/a", "10"), false);
    assert.equal(e.satisfied("ns/a", "12"), false);
    // Versions are opaque: a newer one from another writer, never seen by this process, is the cache moving on.
    assert.equal(e.satisfied("ns/a", "19"), true);
  });

  it("an object gone from the cache is not waited for", () => {
    const e = new WriteExpectations(new FakeClock(0));
    e.wrote("ns/a", "10", "12");
    assert.equal(e.satisfied("ns/a", undefined), true);
  });

  it("keys are independent, and an unseen write stops holding its key back after a minute", () => {
    const clock = new FakeClock(0);
    const e = new WriteExpectations(clock);
    e.wrote("ns/a", "10", "12");
    e.wrote("ns/b", "11", "13");
    assert.equal(e.satisfied("ns/b", "13"), true);
    assert.equal(e.satisfied("ns/a", "10"), false);
    clock.step(60_001);
    assert.equal(e.satisfied("ns/a", "10"), true);
    assert.equal(e.size, 0);
  });

  it("a write with no resulting version records nothing", () => {
    const e = new WriteExpectations(new FakeClock(0));
    e.wrote("ns/a", "10", undefined);
    assert.equal(e.satisfied("ns/a", "10"), true);
  });
});
