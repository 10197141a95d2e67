// Leader election against a real apiserver. Every timing claim is checked on the Lease's own timestamps as the
// server stored them (each version seen through a watch), not on how long the test happened to wait.
import assert from "node:assert/strict";
import { Informer } from "../../src/runtime/informer.js";
import { KubeClient, LEASES } from "../../src/runtime/client.js";
import {
  JITTER_FACTOR,
  LeaderElector,
  parseMicroTime,
  type Lease,
  type LeaderElectorOptions,
} from "../../src/runtime/leaderelection.js";
import { WRITE_VERBS } from "../../src/testenv/controlplane.js";
import { createNamespace, eventually, useControlPlane } from "../helpers.js";

const NS = "leader-election";

type Timing = Required<Pick<LeaderElectorOptions, "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs">>;
const FAST: Timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

/** One stored state of a Lease, as the watch delivered it. */
interface Version {
  resourceVersion: string;
  holder: string;
  durationSeconds: number;
  acquire: number;
  renew: number;
  transitions: number;
}

interface Candidate {
  elector: LeaderElector;
  identity: string;
  /** Callbacks in order: "started", "stopped", "leader <id>", "status 0|1". */
  events: string[];
  done: Promise<void>;
}

describe("Leader election on a Lease", function () {
  const env = useControlPlane();
  const history = new Map<string, Version[]>();
  let informer: Informer<Lease>;
  const candidates: Candidate[] = [];

  function record(lease: Lease): void {
    const spec = lease.spec ?? {};
    const versions = history.get(lease.metadata.name) ?? [];
    history.set(lease.metadata.name, versions);
    const resourceVersion = lease.metadata.resourceVersion ?? "";
    if (versions.some((v) => v.resourceVersion === resourceVersion)) return;
    versions.push({
      resourceVersion,
      holder: spec.holderIdentity ?? "",
      durationSeconds: spec.leaseDurationSeconds ?? 0,
      acquire: spec.acquireTime ? parseMicroTime(spec.acquireTime) : NaN,
      renew: spec.renewTime ? parseMicroTime(spec.renewTime) : NaN,
      transitions: spec.leaseTransitions ?? 0,
    });
  }

  const versionsOf = (name: string): Version[] => history.get(name) ?? [];

  /** The first stored version held by `holder` after index `from`, once the watch has delivered it. */
  function firstHeldBy(name: string, holder: string, from = 0): Promise<{ version: Version; index: number }> {
    return eventually(() => {
      const index = versionsOf(name).findIndex((v, i) => i >= from && v.holder === holder);
      const version = versionsOf(name)[index];
      return version ? { version, index } : undefined;
    }, `a version of lease ${name} held by "${holder}"`);
  }

  function start(name: string, identity: string, timing: Timing = FAST): Candidate {
    const events: string[] = [];
    const elector = new LeaderElector({
      // One user agent per candidate, so that the audit log tells their requests apart.
      client: new KubeClient(env.cp.kubeConfig(), `elector-${identity}`),
      namespace: NS,
      name,
      identity,
      ...timing,
      onStartedLeading: () => events.push("started"),
      onStoppedLeading: () => events.push("stopped"),
      onNewLeader: (id) => events.push(`leader ${id}`),
      onLeaderChange: (leading) => events.push(`status ${leading ? 1 : 0}`),
    });
    const candidate = { elector, identity, events, done: elector.run() };
    candidates.push(candidate);
    return candidate;
  }

  const leading = (c: Candidate): Promise<true> =>
    eventually(() => (c.elector.isLeader() ? true : undefined), `${c.identity} to lead`);

  const observed = (c: Candidate, leader: string): Promise<true> =>
    eventually(() => (c.events.includes(`leader ${leader}`) ? true : undefined), `${c.identity} to see ${leader}`);

  async function serverLease(name: string): Promise<Lease> {
    return env.client.get<Lease>(LEASES, NS, name);
  }

  /** Writes to the lease by one candidate, from the apiserver's audit log. */
  const writesBy = (identity: string, name: string): number =>
    env.cp
      .auditEvents("admin")
      .filter(
        (e) =>
          e.userAgent?.startsWith(`elector-${identity}`) === true &&
          WRITE_VERBS.has(e.verb) &&
          e.objectRef?.resource === "leases" &&
          e.objectRef.name === name,
      ).length;

  before(async () => {
    await createNamespace(env.client, NS);
    informer = new Informer<Lease>(env.client, LEASES, { namespace: NS });
    informer.addEventHandler({ onAdd: record, onUpdate: (_, lease) => record(lease) });
    informer.start();
    await informer.waitForSync();
  });

  afterEach(async () => {
    await Promise.all(candidates.splice(0).map((c) => c.elector.stop()));
  });

  after(async () => {
    await informer?.stop();
  });

  it("one candidate acquires and renews; another does not take the lease meanwhile", async () => {
    const a = start("hold", "a");
    await leading(a);
    assert.deepEqual(a.events, ["leader a", "status 1", "started"]);
    const b = start("hold", "b");
    await observed(b, "a");
    const from = Date.now();

    // b must not lead while a renews. Past a lease duration and one longest retry after b first saw a, a b that
    // judged expiry from its first sight instead of from each renewal it saw would have taken the lease.
    const until = from + FAST.leaseDurationMs + FAST.retryPeriodMs * (1 + JITTER_FACTOR);
    const outcome = await eventually(() => {
      if (b.elector.isLeader() || !a.elector.isLeader()) return "leadership changed";
      const last = versionsOf("hold").at(-1);
      return last && last.renew >= until ? "held" : undefined;
    }, "a to renew past a lease duration");
    assert.equal(outcome, "held");
    assert.equal(b.elector.isLeader(), false);
    assert.deepEqual(b.events, ["leader a"]);

    const lease = await serverLease("hold");
    assert.equal(lease.spec?.holderIdentity, "a");
    assert.equal(lease.spec?.leaseDurationSeconds, FAST.leaseDurationMs / 1000);
    assert.equal(lease.spec?.leaseTransitions, 0);
    assert.match(lease.spec?.renewTime ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    const versions = versionsOf("hold");
    assert.ok(
      versions.every((v) => v.holder === "a" && v.transitions === 0 && v.acquire === versions[0]?.acquire),
      JSON.stringify(versions),
    );
    assert.equal(versions[0]?.acquire, versions[0]?.renew);
    // As client-go, the leader renews once right after acquiring (wait.Until and the poll both start at once),
    // then every retryPeriod (plus the request), far inside its lease duration; the 5 ms allow for timers and
    // Date.now() being different clocks.
    assert.ok(versions.length >= 6, `${versions.length} versions`);
    for (let i = 2; i < versions.length; i++) {
      const gap = (versions[i]?.renew ?? NaN) - (versions[i - 1]?.renew ?? NaN);
      assert.ok(gap >= FAST.retryPeriodMs - 5 && gap < FAST.leaseDurationMs / 2, `renewal gap ${gap} ms`);
    }
    assert.equal(writesBy("b", "hold"), 0, "b only reads a lease held by another");
  });

  it("takes over after the leader stops renewing, no sooner than a lease duration after its last renewal", async () => {
    const a = start("crash", "a");
    await leading(a);
    const b = start("crash", "b");
    await observed(b, "a");

    await a.elector.stop(); // a crash: the lease is left as it was
    assert.equal(a.elector.isLeader(), false);
    assert.deepEqual(a.events.slice(-2), ["status 0", "stopped"]);
    const abandoned = await serverLease("crash");
    assert.equal(abandoned.spec?.holderIdentity, "a");
    const lastRenew = parseMicroTime(abandoned.spec?.renewTime ?? "");

    await leading(b);
    const { version: taken, index } = await firstHeldBy("crash", "b");
    const prior = versionsOf("crash")[index - 1];
    assert.equal(prior?.holder, "a", "b's first write follows a's last");
    assert.equal(prior?.renew, lastRenew, "a wrote nothing after stop()");
    assert.equal(taken.transitions, (prior?.transitions ?? NaN) + 1);
    assert.equal(taken.acquire, taken.renew);

    const waited = taken.acquire - lastRenew;
    // b sees a's last renewal at its next retry, and finds the lease expired at the first retry a lease
    // duration after that: each retry waits up to retryPeriod * (1 + JITTER_FACTOR).
    const latest = FAST.leaseDurationMs + 2 * FAST.retryPeriodMs * (1 + JITTER_FACTOR) + 500;
    assert.ok(waited >= FAST.leaseDurationMs, `b took the lease ${waited} ms after a's last renewal`);
    assert.ok(waited <= latest, `b took the lease ${waited} ms after a's last renewal, more than ${latest}`);
    assert.deepEqual(b.events, ["leader a", "leader b", "status 1", "started"]);

    const lease = await serverLease("crash");
    assert.equal(lease.spec?.holderIdentity, "b");
    assert.equal(lease.spec?.leaseTransitions, 1);
  });

  it("release() frees the lease so that a waiting candidate takes it at its next retry", async () => {
    // A long lease, so that a takeover at the next retry cannot be mistaken for one after expiry.
    const SLOW: Timing = { leaseDurationMs: 6000, renewDeadlineMs: 4000, retryPeriodMs: 500 };
    const a = start("release", "a", SLOW);
    await leading(a);
    const b = start("release", "b", SLOW);
    await observed(b, "a");

    await a.elector.release();
    assert.equal(a.elector.isLeader(), false);
    assert.deepEqual(a.events.slice(-2), ["status 0", "stopped"]);
    await a.done;

    await leading(b);
    const { index: releasedAt } = await firstHeldBy("release", "");
    const released = versionsOf("release")[releasedAt];
    const lastHeld = versionsOf("release")[releasedAt - 1];
    assert.equal(lastHeld?.holder, "a");
    assert.equal(released?.durationSeconds, 1);
    assert.equal(released?.transitions, lastHeld?.transitions);
    assert.ok((released?.renew ?? NaN) >= (lastHeld?.renew ?? NaN), "released after a's last renewal");

    const { version: taken, index } = await firstHeldBy("release", "b");
    assert.equal(index, releasedAt + 1, "b's write follows the release");
    assert.equal(taken.transitions, (released?.transitions ?? NaN) + 1);
    const waited = taken.acquire - (released?.renew ?? NaN);
    assert.ok(waited >= 0 && waited < SLOW.leaseDurationMs / 2, `b took the released lease after ${waited} ms`);
    assert.equal((await serverLease("release")).spec?.holderIdentity, "b");

    // Released twice, or by one that no longer holds it: no write.
    const writes = writesBy("a", "release");
    await a.elector.release();
    assert.equal(writesBy("a", "release"), writes);
  });

  it("counts changes of holder in leaseTransitions, not renewals or a restart of the same identity", async () => {
    const a = start("transitions", "a");
    await leading(a);
    const b = start("transitions", "b");
    await observed(b, "a");
    await a.elector.release();
    await leading(b);
    const c = start("transitions", "c");
    await observed(c, "b");
    await b.elector.release();
    await leading(c);
    const { version: cFirst } = await firstHeldBy("transitions", "c");

    // The same identity restarted (e.g. a container restart keeping the pod name) continues the tenure at once.
    await c.elector.stop();
    const cLast = versionsOf("transitions").at(-1);
    const c2 = start("transitions", "c");
    await leading(c2);
    const restarted = await eventually(
      () => versionsOf("transitions").find((v) => v.holder === "c" && v.renew > (cLast?.renew ?? Infinity)),
      "a renewal by the restarted c",
    );
    assert.equal(restarted.acquire, cFirst.acquire);
    assert.ok(restarted.renew - (cLast?.renew ?? NaN) < FAST.leaseDurationMs, "no wait for expiry");

    const byHolder = versionsOf("transitions")
      .map((v) => `${v.holder || "(released)"}:${v.transitions}`)
      .filter((s, i, all) => s !== all[i - 1]);
    assert.deepEqual(byHolder, ["a:0", "(released):0", "b:1", "(released):1", "c:2"]);
    assert.equal((await serverLease("transitions")).spec?.leaseTransitions, 2);
  });
});
