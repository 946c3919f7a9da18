import assert from "node:assert/strict";
import { defaultHubConfig } from "@isthmus/hub";
import { createAgentCsr } from "@isthmus/pki";
import { AgentService, Code, clientCredentials, createClient, GrpcError } from "@isthmus/proto";
import { admin, type HubFixture, startHub, viewer } from "../helpers/hub-fixture.js";

describe("hub enrollment", function () {
  this.timeout(60_000);
  let f: HubFixture;
  beforeEach(async () => {
    // The losers' refusals are failed authentications from one address: room for all of them
    // below the guessing throttle, so that each is answered for what it is.
    f = await startHub({
      limits: { ...defaultHubConfig.limits, authFailuresPerMinute: 600, authFailureBurst: 100 },
    });
  });
  afterEach(async () => {
    await f.close();
  });

  it("gives one certificate for a token that many calls present at once", async () => {
    const created = await f.admin.createCluster({ cluster: { id: "a" } }, admin);
    const calls = 24;
    const csrs = await Promise.all(Array.from({ length: calls }, () => createAgentCsr("a")));
    const clients = csrs.map(() =>
      createClient(AgentService, f.address, clientCredentials({ caPem: f.hub.caPem })),
    );
    try {
      // Every call checks the token before any of them has recorded its certificate.
      const results = await Promise.allSettled(
        clients.map((c, i) =>
          c.enroll({
            clusterId: "a",
            bootstrapToken: created.bootstrapToken,
            csrPem: csrs[i]!.csrPem,
          }),
        ),
      );
      const won = results.filter((r) => r.status === "fulfilled");
      assert.equal(won.length, 1, "exactly one enrollment wins");
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        const err = r.reason as unknown;
        assert.ok(err instanceof GrpcError, String(err));
        assert.equal(Code[err.code], "PERMISSION_DENIED", err.message);
        assert.match(
          err.message,
          /^enrollment of cluster "a" refused: (token already used|unknown, used or expired bootstrap token)$/,
        );
      }
      const status = await f.admin.getCluster({ id: "a" }, viewer);
      assert.equal(status.status?.enrolled, true);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
