// Leader election on a real etcd: one leader at a time, terms that only grow, handover on
// resign, a lease that expires under a paused etcd, and a crashed leader's lease revoked by a
// follower that finds its port closed.
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
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
    for (const p of ports) p.server.close();
    for (const c of clients) c.close();
    await etcd?.close();
  });

  // Each replica's advertised port, listening as a live hub's does (followers probe it).
  const ports: { server: Server; sockets: Set<Socket> }[] = [];
  const listening = async () => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }).listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = { server, sockets };
    ports.push(port);
    const crash = () => {
      server.close();
      for (const s of sockets) s.destroy();
    };
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, crash };
  };

  /** `advertise`: the address agents are given, when the port is only the peer address. */
  const start = async (
    id: string,
    prefix: string,
    options: { ttlSeconds?: number; advertise?: string; peer?: string } = {},
  ) => {
    const port = await listening();
    const etcdClient = client();
    const self =
      options.advertise === undefined
        ? { id, address: port.address }
        : { id, address: options.advertise, peer: options.peer ?? port.address };
    const leadership = startLeadership({
      client: etcdClient,
      prefix,
      ttlSeconds: options.ttlSeconds ?? 2,
      self,
      where: "etcd under test",
      retryMs: 100,
    });
    return Object.assign(leadership, { port, etcdClient });
  };

  it("elects one leader, hands over on resign with a higher term, and every replica sees it", async () => {
    const a = await start("1001", "/t1/");
    await eventually(() => assert.ok(a.leading()));
    const b = await start("1002", "/t1/");
    await eventually(() => assert.equal(b.view().leader?.id, "1001"));
    assert.equal(b.leading(), false);
    assert.equal(b.view().leader?.address, a.port.address);
    const first = a.view().term;
    assert.ok(first > 0n);
    await a.close();
    await eventually(() => assert.ok(b.leading()));
    assert.ok(b.view().term > first, `term ${b.view().term} must exceed ${first}`);
    await eventually(() => assert.equal(b.view().leader?.id, "1002"));
    await b.close();
  });

  it("steps down by its own clock when etcd stops answering for longer than the lease", async () => {
    const a = await start("2001", "/t2/");
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

  it("takes over from a crashed leader at once: a follower finds its port closed and revokes its lease", async () => {
    // Leases of 60 s: a takeover within the test's timeout is the revocation, not the TTL.
    // The leader advertises a name nobody resolves: the probe goes to its peer address.
    const a = await start("3001", "/t3/", { ttlSeconds: 60, advertise: "hub-a.invalid:443" });
    await eventually(() => assert.ok(a.leading()));
    const b = await start("3002", "/t3/", { ttlSeconds: 60 });
    await eventually(() => assert.equal(b.view().leader?.id, "3001"));
    assert.equal(b.view().leader?.address, "hub-a.invalid:443");
    // A crash: the port closes and the lease is no longer renewed, but never revoked by a.
    a.port.crash();
    a.etcdClient.close();
    await eventually(() => assert.ok(b.leading()), 10_000);
    await b.close();
  });

  it("leaves a leader whose port still accepts connections to its lease", async () => {
    const a = await start("4001", "/t4/", { ttlSeconds: 60 });
    await eventually(() => assert.ok(a.leading()));
    const b = await start("4002", "/t4/", { ttlSeconds: 60 });
    await eventually(() => assert.equal(b.view().leader?.id, "4001"));
    // Hung, not crashed: no renewals, but its port answers.
    a.etcdClient.close();
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(b.leading(), false);
    assert.equal(b.view().leader?.id, "4001");
    await b.close();
  });

  it("never revokes a leader whose peer address never accepted a connection", async () => {
    // A wrong peer address (nothing ever listened there) must not cost every leader its lease.
    const closed = await listening();
    closed.crash();
    const a = await start("5001", "/t5/", {
      ttlSeconds: 60,
      advertise: "hub-a.invalid:443",
      peer: closed.address,
    });
    await eventually(() => assert.ok(a.leading()));
    const b = await start("5002", "/t5/", { ttlSeconds: 60 });
    await eventually(() => assert.equal(b.view().leader?.id, "5001"));
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(a.leading(), "the leader kept its lease");
    assert.equal(b.view().leader?.id, "5001");
    await b.close();
    await a.close();
  });
});
