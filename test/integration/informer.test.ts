// The informer against a real apiserver: events, restarts of the apiserver, and 410 Gone after compaction.
import assert from "node:assert/strict";
import { CONFIGMAPS_FOR_TESTS } from "../fixtures/resources.js";
import { Informer } from "../../src/runtime/informer.js";
import { KubeClient } from "../../src/runtime/client.js";
import { keyOf, type KubeObject } from "../../src/runtime/object.js";
import { createNamespace, eventually, useControlPlane } from "../helpers.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const NS = "informer";

const INFORMER_AGENT = "informer-under-test";

// The watch cache answers a resume from before an apiserver restart with 410: the restarted cache's history
// starts at the RV of its own initial LIST (watch_cache.go: oldest = listResourceVersion + 1), which etcd's
// background writes (leases) have already moved past. With --watch-cache=false a WATCH goes to etcd, where
// an RV stays valid until compaction: that is where "resume without relist" is observable.
for (const variant of [
  { title: "watch cache off (WATCH served by etcd)", args: ["--watch-cache=false"], relistsOnRestart: 0 },
  // With the cache on, compaction alone changes nothing (the cache still holds the window); a restart after it
  // makes the old RV invalid.
  { title: "default watch cache", args: [], relistsOnRestart: 1 },
])
  describe(`Informer on a real apiserver, ${variant.title}`, function () {
    const env = useControlPlane({ apiServerArgs: variant.args });
    let informer: Informer<ConfigMap>;
    const events: string[] = [];

    /** The store must equal the server's state. */
    async function assertStoreMatchesServer(): Promise<void> {
      const server = await env.client.listAll<ConfigMap>(CONFIGMAPS_FOR_TESTS, NS);
      await eventually(() => {
        const cached = informer.store
          .list()
          .map((o) => `${keyOf(o)}@${o.metadata.resourceVersion}`)
          .sort();
        const live = server.items.map((o) => `${keyOf(o)}@${o.metadata.resourceVersion}`).sort();
        return JSON.stringify(cached) === JSON.stringify(live) ? true : undefined;
      }, "the store to equal the server's state");
    }

    /** Full LISTs (first pages) of the informer, from the apiserver's audit log. */
    const serverLists = () =>
      env.cp
        .auditEvents("admin")
        .filter(
          (e) =>
            e.userAgent === INFORMER_AGENT &&
            e.verb === "list" &&
            e.objectRef?.resource === "configmaps" &&
            !e.requestURI.includes("continue="),
        ).length;

    before(async () => {
      await createNamespace(env.client, NS);
      for (let i = 0; i < 7; i++) {
        await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: `cm-${i}` }, data: { i: String(i) } });
      }
      const client = new KubeClient(env.cp.kubeConfig(), INFORMER_AGENT);
      informer = new Informer<ConfigMap>(client, CONFIGMAPS_FOR_TESTS, { namespace: NS, pageSize: 3 });
      informer.addEventHandler({
        onAdd: (o) => events.push(`add ${o.metadata.name}`),
        onUpdate: (_, o) => events.push(`update ${o.metadata.name}`),
        onDelete: (o) => events.push(`delete ${o.metadata.name}`),
      });
      informer.start();
      await informer.waitForSync();
    });

    after(async () => {
      await informer?.stop();
    });

    it("lists in pages, then sees creates, updates and deletes", async () => {
      assert.equal(informer.store.size, 7);
      assert.equal(informer.stats.listPages, 3, "7 objects in pages of 3");
      await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: "new" } });
      await env.client.patch(CONFIGMAPS_FOR_TESTS, NS, "cm-1", { data: { i: "changed" } }, "merge");
      await env.client.delete(CONFIGMAPS_FOR_TESTS, NS, "cm-2");
      await eventually(
        () =>
          events.includes("add new") && events.includes("update cm-1") && events.includes("delete cm-2")
            ? 1
            : undefined,
        "add, update and delete events",
      );
      assert.equal(informer.store.get(`${NS}/cm-1`)?.data?.i, "changed");
      assert.equal(informer.store.get(`${NS}/cm-2`), undefined);
      await assertStoreMatchesServer();
    });

    it(`after an apiserver restart resumes from its resourceVersion, relisting ${variant.relistsOnRestart} time(s)`, async () => {
      const listsBefore = serverLists();
      const statsBefore = { ...informer.stats };
      await env.cp.restartAPIServer();
      await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: "after-restart" } });
      await eventually(() => (informer.store.get(`${NS}/after-restart`) ? 1 : undefined), "the post-restart create");
      assert.equal(informer.stats.lists - statsBefore.lists, variant.relistsOnRestart);
      assert.equal(serverLists() - listsBefore, variant.relistsOnRestart, "LISTs the server saw");
      assert.ok(informer.stats.watches > statsBefore.watches, "it watched again");
      await assertStoreMatchesServer();
    });

    it("relists exactly once when its resourceVersion was compacted away, emitting only real differences", async () => {
      await informer.stop();
      const listsBefore = serverLists();
      const statsBefore = { ...informer.stats };
      // While it is stopped: one change, one delete, one create; then compact past its resourceVersion.
      await env.client.patch(CONFIGMAPS_FOR_TESTS, NS, "cm-3", { data: { i: "offline" } }, "merge");
      await env.client.delete(CONFIGMAPS_FOR_TESTS, NS, "cm-4");
      await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: "offline-new" } });
      await env.cp.compactEtcd();
      if (variant.relistsOnRestart > 0) await env.cp.restartAPIServer();
      events.length = 0;
      informer.start();
      await eventually(() => (informer.store.get(`${NS}/offline-new`) ? 1 : undefined), "the relist");
      await assertStoreMatchesServer();
      assert.equal(informer.stats.lists - statsBefore.lists, 1, "exactly one relist");
      assert.equal(serverLists() - listsBefore, 1, "the server saw exactly one LIST");
      assert.deepEqual(events.sort(), ["add offline-new", "delete cm-4", "update cm-3"]);
    });

    it("a throwing handler is logged and does not stop the informer", async () => {
      informer.addEventHandler({
        onAdd: () => {
          throw new Error("handler bug");
        },
      });
      await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: "after-throw" } });
      await env.client.create(CONFIGMAPS_FOR_TESTS, NS, { metadata: { name: "after-throw-2" } });
      await eventually(() => (informer.store.get(`${NS}/after-throw-2`) ? 1 : undefined), "events after a throw");
    });
  });
