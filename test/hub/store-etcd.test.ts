// What only the etcd store does: several clients on one state, member loss, quorum loss,
// watches that outlive a member's restart, compaction. Real etcd processes throughout.
import assert from "node:assert/strict";
import { isStoreError, openEtcdStore, type StoreBatch, type StoreError } from "@isthmus/hub";
import type { Logger } from "@isthmus/logging";
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

  it("answers a checked write that was already applied with its revision (a retry)", async () => {
    const store = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/retry/" });
    try {
      const r1 = await store.txn([{ op: "put", key: "k", value: 1, expectVersion: 0 }]);
      const write = [
        { op: "put" as const, key: "k", value: { n: 2 }, expectVersion: r1 },
        { op: "delete" as const, key: "gone" },
      ];
      const r2 = await store.txn(write);
      // The same write again, as etcd3 sends it when the first answer was lost.
      assert.equal(await store.txn(write), r2);
      // Other bytes at the stored version: a real conflict.
      const err = await storeError(
        store.txn([{ op: "put", key: "k", value: { n: 3 }, expectVersion: r1 }]),
      );
      assert.equal(err.code, "conflict");
    } finally {
      await store.close();
    }
  });

  it("refuses a transaction longer than etcd takes, naming the limit", async () => {
    const ops = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ op: "put" as const, key: `k${i}`, value: i }));
    const store = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/limit/" });
    // Told a higher limit than this etcd's (128): etcd's own refusal says the same.
    const unaware = openEtcdStore({
      endpoints: etcd!.endpoints,
      prefix: "/limit/",
      maxTxnOps: 1000,
    });
    try {
      const err = await storeError(store.txn(ops(129)));
      assert.equal(err.code, "too-large");
      assert.match(
        err.message,
        /write "k0", "k1", "k2", and 126 more: 129 writes in one transaction, etcd takes 128 \(its --max-txn-ops/,
      );
      const refused = await storeError(unaware.txn(ops(129)));
      assert.equal(refused.code, "too-large");
      assert.match(refused.message, /too many operations in txn request.*--max-txn-ops/);
      assert.deepEqual(await store.list(""), [], "nothing of them was written");
      assert.ok((await store.txn(ops(128))) > 0);
    } finally {
      await store.close();
      await unaware.close();
    }
  });

  it("fails within the request timeout, naming etcd, when nothing answers", async () => {
    // A member that is paused accepts connections and answers nothing.
    const member = etcd!.members[0]!;
    const store = openEtcdStore({
      endpoints: etcd!.endpoints,
      prefix: "/paused/",
      requestTimeoutMs: 2000,
    });
    const watch = store.watch("", 1, () => {}, assert.fail);
    await store.txn([{ op: "put", key: "before", value: 0 }]);
    member.pause();
    try {
      const err = await storeError(store.txn([{ op: "put", key: "k", value: 1 }]));
      assert.equal(err.code, "unavailable");
      assert.match(err.message, new RegExp(`etcd ${member.endpoint}`));
      assert.match(err.message, /did not answer within 2000 ms/);
      // A watch stops and the store closes although etcd never answers the cancel.
      await watch.cancel();
      await store.close();
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

      assert.match(err.message, /the write may still be applied/);

      await m0.start({ waitHealthy: false });
      await m1.start();
      // The write that timed out is in doubt, as etcd says: it may commit once the members
      // are back. Either way the store answers again, and a checked write goes through.
      const k = await eventually(() => store.get("k"), 30_000, 200);
      assert.ok(k?.value === 2 || k?.value === 3, JSON.stringify(k));
      const r3 = await store.txn([{ op: "put", key: "k", value: 4, expectVersion: k.version }]);
      assert.deepEqual(await store.get("k"), { key: "k", value: 4, version: r3 });
      assert.ok(m2.running);
      // The next test needs every member back.
      await eventually(async () => assert.ok(await m0.healthy()), 30_000, 200);
    } finally {
      await store.close();
    }
  });

  it("resumes a watch after its member restarts, missing no write made meanwhile", async () => {
    const [m0] = etcd!.members;
    const others = etcd!.members.slice(1).map((m) => m.endpoint);
    // The watcher talks to m0 only; the writer to the two others.
    const logged: string[] = [];
    const logger: Logger = {
      debug: () => {},
      info: (message) => logged.push(message),
      warn: (message) => logged.push(message),
      error: (message) => logged.push(message),
      child: () => logger,
    };
    const watching = openEtcdStore({ endpoints: [m0!.endpoint], prefix: "/resume/", logger });
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
      // A watch that broke is in the log, and so is its return.
      assert.deepEqual(logged, ["etcd watch disconnected, reconnecting", "etcd watch resumed"]);
      await w.cancel();
    } finally {
      await watching.close();
      await writer.close();
    }
  });
});
