// The CLI against hub replicas behind one address (a Service): a follower refuses with an
// empty `isthmus-leader` trailer when the leader advertises no address, and the CLI asks again
// on a new connection until a call lands on the leader; a hint is followed; a refusal without
// the trailer is an error at once.
import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import {
  AdminService,
  addService,
  Code,
  createServer,
  GrpcError,
  insecureServerCredentials,
  LEADER_HINT,
  listen,
  shutdown,
} from "@isthmus/proto";
import { isolatedIsthmus } from "../helpers/cli.js";

function refusal(leader: string | undefined): GrpcError {
  const metadata = new Metadata();
  if (leader !== undefined) metadata.set(LEADER_HINT, leader);
  return new GrpcError(Code.UNAVAILABLE, "this hub replica does not lead", { metadata });
}

/** A fake AdminService whose ListClusters answers with `answer(call number)`. */
async function fakeHub(answer: (n: number) => GrpcError | undefined) {
  const server = createServer();
  let calls = 0;
  const unimplemented = async () => {
    throw new GrpcError(Code.UNIMPLEMENTED, "not in this fake");
  };
  const handlers = Object.fromEntries(
    AdminService.methods.map((m) => [m.localName, unimplemented]),
  );
  const listClusters = async () => {
    const refused = answer(++calls);
    if (refused !== undefined) throw refused;
    return { clusters: [] };
  };
  addService(server, AdminService, { ...handlers, listClusters } as unknown as Parameters<
    typeof addService<(typeof AdminService)["method"]>
  >[2]);
  const port = await listen(server, "127.0.0.1:0", insecureServerCredentials());
  return { address: `127.0.0.1:${port}`, calls: () => calls, close: () => shutdown(server, 0) };
}

const list = (address: string) =>
  isolatedIsthmus([
    "cluster",
    "list",
    "-o",
    "json",
    "--hub",
    address,
    "--insecure",
    "--token",
    "t",
  ]);

describe("cli: finding the leader of a highly available hub", function () {
  this.timeout(30_000);

  it("asks again while followers name no leader, until the leader answers", async () => {
    const hub = await fakeHub((n) => (n <= 3 ? refusal("") : undefined));
    try {
      const run = await list(hub.address);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), {});
      assert.equal(hub.calls(), 4);
    } finally {
      await hub.close();
    }
  });

  it("follows a follower's hint to the leader", async () => {
    const leader = await fakeHub(() => undefined);
    const follower = await fakeHub(() => refusal(leader.address));
    try {
      const run = await list(follower.address);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual([follower.calls(), leader.calls()], [1, 1]);
    } finally {
      await leader.close();
      await follower.close();
    }
  });

  it("fails at once on UNAVAILABLE without the trailer, naming the hub", async () => {
    const hub = await fakeHub(() => refusal(undefined));
    try {
      const run = await list(hub.address);
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, new RegExp(`cannot reach the hub at ${hub.address}`));
      assert.equal(hub.calls(), 1);
    } finally {
      await hub.close();
    }
  });
});
