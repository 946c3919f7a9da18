import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ClusterStatus } from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import { admin, enrollAgent, type HubFixture, startHub } from "../helpers/hub-fixture.js";

const ms = (t: Timestamp | undefined) =>
  t === undefined ? 0 : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);

describe("hub: a cluster's last seen time", function () {
  this.timeout(30_000);
  let f: HubFixture;
  before(async () => {
    f = await startHub();
  });
  after(async () => {
    await f.close();
  });

  async function statusOf(id: string): Promise<ClusterStatus> {
    const res = await f.admin.getCluster({ id }, admin);
    return res.status!;
  }

  it("is the time of the agent's last message, not of its connection", async () => {
    const agent = await enrollAgent(f, "east");
    try {
      assert.equal((await statusOf("east")).lastSeen, undefined, "never connected: no time");
      await agent.connect();
      const connectedAt = await eventually(async () => {
        const s = await statusOf("east");
        assert.ok(s.connected && s.lastSeen !== undefined);
        return ms(s.lastSeen);
      });
      // Let the clock move, then a message of the session: a status report.
      await sleep(20);
      await agent.send({
        message: {
          case: "statusReport",
          value: { warnings: [{ code: "no-east-west-gateway", message: "x" }] },
        },
      });
      await eventually(async () => {
        const s = await statusOf("east");
        assert.equal(s.warnings[0]?.code, "no-east-west-gateway");
        assert.ok(ms(s.lastSeen) > connectedAt, `${ms(s.lastSeen)} > ${connectedAt}`);
      });
    } finally {
      agent.close();
    }
  });
});
