// What only the etcd store does: several clients on one state, member loss, quorum loss,
// watches that outlive a member's restart, compaction. Real etcd processes throughout.
import assert from "node:assert/strict";
import { isStoreError, openEtcdStore, type StoreBatch, type StoreError } from "@isthmus/hub";
import { type EtcdCluster, skipWithoutEtcd, startEtcd, startEtcdCluster } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";

async function storeError(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isStoreError(err), `expected a StoreError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a StoreError, the call succeeded");
}

describe("etcd store on a one-member etcd", function () {
  this.timeout(60_000);
  let etcd: EtcdCluster | undefined;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  it("lets a second client see the first one's writes through its watch", async () => {
    const a = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/two/" });
    const b = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/two/" });
    try {
      const { revision } = await b.snapshot("");
      const seen: StoreBatch[] = [];
      const w = b.watch("", revision + 1, (batch) => seen.push(batch), assert.fail);
      const r = await a.txn([
        { op: "put", key: "policies/p1", value: { name: "p1" } },
        { op: "put", key: "policies/p2", value: { name: "p2" } },
      ]);
      await eventually(() => assert.equal(seen.length, 1));
      assert.deepEqual(seen[0], {
        revision: r,
        events: [
          { type: "put", key: "policies/p1", value: { name: "p1" }, version: r },
          { type: "put", key: "policies/p2", value: { name: "p2" }, version: r },
        ],
      });
      assert.deepEqual((await b.get("policies/p1"))?.version, r);
      await w.cancel();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("reports a watch from a compacted revision as compacted", async () => {
    const store = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/compact/" });
    try {
      const first = await store.txn([{ op: "put", key: "k", value: 1 }]);
      const last = await store.txn([{ op: "put", key: "k", value: 2 }]);
      await store.client.kv.compact({ revision: last, physical: true });
      const errors: StoreError[] = [];
      store.watch(
        "",
        first,
        () => assert.fail("no batch after compaction"),
        (err) => errors.push(err),
      );
      await eventually(() => assert.equal(errors.length, 1));
      assert.equal(errors[0]!.code, "compacted");
      assert.match(errors[0]!.message, /^etcd .*: watch from revision \d+: compacted/);
    } finally {
      await store.close();
    }
  });

  it("fails within the request timeout, naming etcd, when nothing answers", async () => {
    // A member that is paused accepts connections and answers nothing.
    const member = etcd!.members[0]!;
    const store = openEtcdStore({
      endpoints: etcd!.endpoints,
      prefix: "/paused/",
      requestTimeoutMs: 500,
    });
    member.pause();
    try {
      const err = await storeError(store.txn([{ op: "put", key: "k", value: 1 }]));
      assert.equal(err.code, "unavailable");
      assert.match(err.message, new RegExp(`etcd ${member.endpoint}`));
      assert.match(err.message, /did not answer within 500 ms/);
    } finally {
      member.resume();
      await store.close();
    }
  });
});

describe("etcd store on a three-member etcd", function () {
  this.timeout(120_000);
  let etcd: EtcdCluster | undefined;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcdCluster(3);
  });
  after(async () => {
    await etcd?.close();
  });

  it("reads and writes with one member stopped; quorum lost fails writes; recovers", async () => {
    const store = openEtcdStore({
      endpoints: etcd!.endpoints,
      prefix: "/quorum/",
      requestTimeoutMs: 1500,
    });
    const [m0, m1, m2] = etcd!.members as [
      EtcdCluster["members"][0],
      EtcdCluster["members"][0],
      EtcdCluster["members"][0],
    ];
    try {
      const r1 = await store.txn([{ op: "put", key: "k", value: 1, expectVersion: 0 }]);
      await m0.stop();
      // Once the two others have a leader (m0 may have been it), writes go on. The client
      // may try the stopped member first: it fails over to another one within the deadline.
      await eventually(async () => assert.ok((await m1.healthy()) && (await m2.healthy())));
      const r2 = await store.txn([{ op: "put", key: "k", value: 2, expectVersion: r1 }]);
      assert.deepEqual(await store.get("k"), { key: "k", value: 2, version: r2 });

      await m1.stop();
      const err = await storeError(store.txn([{ op: "put", key: "k", value: 3 }]));
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /^etcd http:\/\/127\.0\.0\.1:\d+,/);
      assert.match(err.message, /majority of the etcd members/);

      await m0.start({ waitHealthy: false });
      await m1.start();
      const r3 = await eventually(
        () => store.txn([{ op: "put", key: "k", value: 4, expectVersion: r2 }]),
        30_000,
        200,
      );
      assert.deepEqual(await store.get("k"), { key: "k", value: 4, version: r3 });
      assert.ok(m2.running);
    } finally {
      await store.close();
    }
  });

  it("resumes a watch after its member restarts, missing no write made meanwhile", async () => {
    const [m0] = etcd!.members;
    const others = etcd!.members.slice(1).map((m) => m.endpoint);
    // The watcher talks to m0 only; the writer to the two others.
    const watching = openEtcdStore({ endpoints: [m0!.endpoint], prefix: "/resume/" });
    const writer = openEtcdStore({ endpoints: others, prefix: "/resume/" });
    try {
      const { revision } = await watching.snapshot("");
      const seen: number[] = [];
      const w = watching.watch("", revision + 1, (b) => seen.push(b.revision), assert.fail);
      const written = [await writer.txn([{ op: "put", key: "a", value: 0 }])];
      await eventually(() => assert.deepEqual(seen, written));
      await m0!.stop();
      for (let i = 1; i <= 5; i++)
        written.push(await writer.txn([{ op: "put", key: "a", value: i }]));
      await m0!.start();
      written.push(await writer.txn([{ op: "put", key: "a", value: 6 }]));
      await eventually(() => assert.deepEqual(seen, written), 30_000, 100);
      await w.cancel();
    } finally {
      await watching.close();
      await writer.close();
    }
  });
});
