// Leader election on a real etcd: one leader at a time, terms that only grow, handover on
// resign, and a lease that expires under a paused etcd.
import assert from "node:assert/strict";
import { startLeadership } from "@isthmus/hub";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";

describe("hub leadership on etcd", function () {
  this.timeout(30_000);
  let etcd: EtcdCluster;
  const clients: Etcd3[] = [];
  const client = () => {
    const c = new Etcd3({ hosts: etcd.endpoints });
    clients.push(c);
    return c;
  };

  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.close();
  });

  const start = (id: string, prefix: string) =>
    startLeadership({
      client: client(),
      prefix,
      ttlSeconds: 2,
      self: { id, address: `127.0.0.1:${id}` },
      where: "etcd under test",
      retryMs: 100,
    });

  it("elects one leader, hands over on resign with a higher term, and every replica sees it", async () => {
    const a = start("1001", "/t1/");
    await eventually(() => assert.ok(a.leading()));
    const b = start("1002", "/t1/");
    await eventually(() => assert.equal(b.view().leader?.id, "1001"));
    assert.equal(b.leading(), false);
    assert.equal(b.view().leader?.address, "127.0.0.1:1001");
    const first = a.view().term;
    assert.ok(first > 0n);
    await a.close();
    await eventually(() => assert.ok(b.leading()));
    assert.ok(b.view().term > first, `term ${b.view().term} must exceed ${first}`);
    await eventually(() => assert.equal(b.view().leader?.id, "1002"));
    await b.close();
  });

  it("steps down by its own clock when etcd stops answering for longer than the lease", async () => {
    const a = start("2001", "/t2/");
    await eventually(() => assert.ok(a.leading()));
    const changes: boolean[] = [];
    a.onChange((v) => changes.push(v.leading));
    etcd.members[0]!.pause();
    try {
      await eventually(() => assert.equal(a.leading(), false), 5_000);
      assert.deepEqual(changes, [false]);
    } finally {
      etcd.members[0]!.resume();
    }
    // Back in etcd: it campaigns again and leads in a new term.
    await eventually(() => assert.ok(a.leading()), 10_000);
    await a.close();
  });
});
