// One contract for every Store: the embedded file store and the etcd store (on a real etcd
// member) pass the same suite. etcd-only behaviour (several clients, member loss) follows.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  isStoreError,
  openEtcdStore,
  openFileStore,
  type Store,
  type StoreBatch,
  type StoreError,
} from "@isthmus/hub";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";

interface Opened {
  store: Store;
  cleanup(): Promise<void>;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isStoreError(err), `expected a StoreError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected StoreError "${code}", the call succeeded`);
}

/** Collects a watch's batches; `errors` gets what onError reported. */
function collect(store: Store, prefix: string, from: number) {
  const batches: StoreBatch[] = [];
  const errors: StoreError[] = [];
  const handle = store.watch(
    prefix,
    from,
    (b) => batches.push(b),
    (e) => errors.push(e),
  );
  return { batches, errors, handle };
}

function contract(name: string, open: () => Promise<Opened>) {
  describe(`store contract: ${name}`, function () {
    this.timeout(30_000);
    let opened: Opened;
    let store: Store;
    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await opened.cleanup();
    });

    it("puts, gets and lists, with the txn's revision as the entry's version", async () => {
      assert.equal(await store.get("a/1"), undefined);
      const r1 = await store.txn([{ op: "put", key: "a/1", value: { n: 1 } }]);
      const r2 = await store.txn([
        { op: "put", key: "a/2", value: ["x"] },
        { op: "put", key: "b/1", value: "s" },
      ]);
      assert.ok(r2 > r1, `revision ${r2} after ${r1}`);
      assert.deepEqual(await store.get("a/1"), { key: "a/1", value: { n: 1 }, version: r1 });
      assert.deepEqual(await store.list("a/"), [
        { key: "a/1", value: { n: 1 }, version: r1 },
        { key: "a/2", value: ["x"], version: r2 },
      ]);
      const snap = await store.snapshot("b/");
      assert.deepEqual(snap.entries, [{ key: "b/1", value: "s", version: r2 }]);
      assert.equal(snap.revision, r2);
    });

    it("checks expected versions: 0 means absent, stale is a conflict, missing is not-found", async () => {
      const r1 = await store.txn([{ op: "put", key: "k", value: 1, expectVersion: 0 }]);
      await rejectsWith(
        store.txn([{ op: "put", key: "k", value: 2, expectVersion: 0 }]),
        "conflict",
      );
      const r2 = await store.txn([{ op: "put", key: "k", value: 2, expectVersion: r1 }]);
      const stale = await rejectsWith(
        store.txn([{ op: "put", key: "k", value: 3, expectVersion: r1 }]),
        "conflict",
      );
      assert.match(stale.message, new RegExp(`version ${r1} is stale, stored version is ${r2}`));
      await rejectsWith(
        store.txn([{ op: "put", key: "nope", value: 1, expectVersion: r1 }]),
        "not-found",
      );
      await rejectsWith(store.txn([{ op: "delete", key: "k", expectVersion: r1 }]), "conflict");
      await store.txn([{ op: "delete", key: "k", expectVersion: r2 }]);
      assert.equal(await store.get("k"), undefined);
    });

    it("applies a multi-key transaction all or nothing", async () => {
      const r1 = await store.txn([
        { op: "put", key: "p/a", value: "a1" },
        { op: "put", key: "p/b", value: "b1" },
      ]);
      await rejectsWith(
        store.txn([
          { op: "put", key: "p/a", value: "a2", expectVersion: r1 },
          { op: "delete", key: "p/b", expectVersion: r1 },
          { op: "put", key: "p/c", value: "c2", expectVersion: r1 },
        ]),
        "not-found",
      );
      assert.deepEqual(
        (await store.list("p/")).map((e) => [e.key, e.value, e.version]),
        [
          ["p/a", "a1", r1],
          ["p/b", "b1", r1],
        ],
      );
      const r2 = await store.txn([
        { op: "put", key: "p/a", value: "a2", expectVersion: r1 },
        { op: "delete", key: "p/b", expectVersion: r1 },
      ]);
      assert.deepEqual(
        (await store.list("p/")).map((e) => [e.key, e.value, e.version]),
        [["p/a", "a2", r2]],
      );
    });

    it("writes a hundred keys in one transaction, at one revision", async () => {
      const puts = Array.from({ length: 100 }, (_, i) => ({
        op: "put" as const,
        key: `many/${String(i).padStart(3, "0")}`,
        value: i,
      }));
      const r = await store.txn(puts);
      const listed = await store.list("many/");
      assert.equal(listed.length, 100);
      assert.ok(listed.every((e, i) => e.value === i && e.version === r));
      const { revision } = await store.snapshot("many/");
      const w = collect(store, "many/", revision + 1);
      const r2 = await store.txn(puts.map((p) => ({ op: "delete" as const, key: p.key })));
      await eventually(() => assert.equal(w.batches.length, 1));
      assert.equal(w.batches[0]!.revision, r2);
      assert.equal(w.batches[0]!.events.length, 100);
      assert.deepEqual(await store.list("many/"), []);
      await w.handle.cancel();
    });

    it("watches every write under a prefix in order, one batch per transaction", async () => {
      await store.txn([{ op: "put", key: "w/old", value: 0 }]);
      const { revision } = await store.snapshot("w/");
      const w = collect(store, "w/", revision + 1);
      const revisions: number[] = [];
      for (let i = 0; i < 20; i++) {
        revisions.push(
          await store.txn([
            { op: "put", key: `w/${i % 3}`, value: { i } },
            { op: "put", key: "other/x", value: i },
          ]),
        );
      }
      revisions.push(
        await store.txn([
          { op: "delete", key: "w/0" },
          { op: "delete", key: "w/1" },
        ]),
      );
      await eventually(() => assert.equal(w.batches.length, revisions.length));
      assert.deepEqual(
        w.batches.map((b) => b.revision),
        revisions,
      );
      w.batches.slice(0, 20).forEach((b, i) => {
        assert.deepEqual(b.events, [
          { type: "put", key: `w/${i % 3}`, value: { i }, version: revisions[i] },
        ]);
      });
      assert.deepEqual(w.batches[20]!.events, [
        { type: "delete", key: "w/0", version: revisions[20] },
        { type: "delete", key: "w/1", version: revisions[20] },
      ]);
      assert.deepEqual(w.errors, []);
      await w.handle.cancel();
      await store.txn([{ op: "put", key: "w/after", value: 1 }]);
      const replay = collect(store, "w/", revisions[5]!);
      await eventually(() => assert.equal(replay.batches.at(-1)?.events[0]?.key, "w/after"));
      assert.deepEqual(
        replay.batches.slice(0, -1).map((b) => b.revision),
        revisions.slice(5),
        "a watch from a past revision replays from there",
      );
      assert.equal(w.batches.length, revisions.length, "a cancelled watch gets nothing more");
      await replay.handle.cancel();
    });

    it("finishes pending writes on close", async () => {
      const write = store.txn([{ op: "put", key: "c", value: 1 }]);
      await store.close();
      assert.ok((await write) > 0);
    });
  });
}

contract("file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "isthmus-store-"));
  const store = await openFileStore(dir, { create: true });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe("etcd store", function () {
  this.timeout(60_000);
  let etcd: EtcdCluster | undefined;
  let n = 0;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  // Each test gets its own prefix on the one member: a fresh store, as the file store's is.
  contract("etcd", async () => {
    const store = openEtcdStore({ endpoints: etcd!.endpoints, prefix: `/t${n++}/` });
    return { store, cleanup: () => store.close() };
  });
});
