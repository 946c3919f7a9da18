// A follower of a highly available hub refuses an authenticated caller's call before reading
// its request, as the gate does for unauthenticated ones: it asks the client to stop sending,
// so a 13.6 MiB upload to the wrong replica costs neither side its transfer.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHub, type Hub, openEtcdStore } from "@isthmus/hub";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";
import { ADMIN_TOKEN, hubConfig } from "../helpers/hub-fixture.js";
import { grpcFrame, rawCall, rawSession } from "../helpers/raw-grpc.js";

const APPLY = "/isthmus.v1.AdminService/ApplyPolicies";
const garbage = grpcFrame(Buffer.alloc(Math.round(13.6 * 1024 * 1024), 0x07));

describe("hub follower refusals", function () {
  this.timeout(60_000);
  let etcd: EtcdCluster | undefined;
  const hubs: Hub[] = [];
  const dirs: string[] = [];
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    for (const hub of hubs) await hub.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    await etcd?.close();
  });

  it("stops an admin's large upload to a follower, answering with the leader's address", async () => {
    for (const name of ["a", "b"]) {
      const dir = await mkdtemp(join(tmpdir(), `isthmus-follower-${name}-`));
      dirs.push(dir);
      const store = openEtcdStore({ endpoints: etcd!.endpoints, prefix: "/follower/" });
      hubs.push(await createHub({ config: hubConfig(dir), store }));
    }
    const follower = await eventually(() => {
      const leading = hubs.filter((h) => h.context.leadership.leading());
      assert.equal(leading.length, 1);
      const other = hubs.find((h) => !h.context.leadership.leading())!;
      assert.ok(
        other.context.leadership.view().leader !== undefined,
        "the follower knows the leader",
      );
      return other;
    });
    const session = await rawSession({ port: follower.port, caPem: follower.caPem });
    try {
      const answer = await rawCall(session, APPLY, { body: garbage, token: ADMIN_TOKEN }).result;
      assert.equal(answer.code, 14, answer.message);
      assert.match(answer.message, /does not lead; the leader is at/);
      const sent = (session.socket as unknown as { bytesWritten: number }).bytesWritten;
      assert.ok(sent < garbage.length / 2, `the client sent ${sent} bytes of ${garbage.length}`);
    } finally {
      session.close();
    }
  });
});
