import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ClusterStatus } from "@isthmus/proto";
import { runIsthmus } from "../helpers/cli.js";
import { ADMIN_TOKEN, admin } from "../helpers/hub-fixture.js";
import { eventually } from "./cluster.js";
import {
  denyFrontendToPayments,
  frontendToPayments,
  paymentsNamespace,
  startTwoClusters,
  type TwoClusters,
} from "./two-clusters.js";

describe("the hub's record of what each agent holds (issue 17, finding 7)", function () {
  // Two clusters, agents, a hub and the isthmus CLI as a child process.
  this.timeout(90_000);
  let c: TwoClusters | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  const statusOf = async (id: string): Promise<ClusterStatus> =>
    (await c!.hub.admin.getCluster({ id }, admin)).status!;
  const importIn = (sim: TwoClusters["b"]) =>
    sim.find("networking.istio.io/v1", "ServiceEntry", "isthmus-import-payments-api", "payments");

  it("records an import applied on the agent's own retry, so that a DENY removes it", async () => {
    // b has no namespace payments yet: its import is NACKed, then its agent retries it.
    c = await startTwoClusters({ paymentsInB: false, retryIntervalMs: 50 });
    await c.hub.admin.applyPolicies({ policies: [frontendToPayments] }, admin);

    const refused = await eventually(async () => {
      const s = await statusOf("b");
      assert.ok(s.nacks.length > 0, "nacked");
      return s;
    }, "b's NACK at the hub");
    assert.equal(refused.inSync, false, "not in sync while the import is refused");
    assert.equal(refused.refused[0]!.intentName, "import/payments/payments-api");
    assert.match(refused.refused[0]!.message, /payments/);
    assert.equal((await statusOf("a")).inSync, true);

    // The table names the reason, not only a count.
    const config = join(c.dir, "cli.yaml");
    const caFile = join(c.dir, "hub-ca.pem");
    writeFileSync(caFile, c.hub.hub.caPem);
    writeFileSync(config, `hub: ${c.hub.address}\ntoken: ${ADMIN_TOKEN}\ncaFile: ${caFile}\n`);
    const table = await runIsthmus(["status", "--config", config]);
    assert.equal(table.code, 0, table.stderr);
    const row = table.stdout.split("\n").find((l) => /│\s*b\s*│/.test(l));
    assert.ok(row, table.stdout);
    assert.match(row, /│\s*no\s*│/, "in sync: no");
    assert.match(row, /import\/payments\/payments-api: .*payments/);

    // The namespace appears: the agent's retry timer applies the import on its own.
    c.b.create(paymentsNamespace);
    await eventually(() => assert.ok(importIn(c!.b)), "the import applied in b");
    await eventually(async () => {
      const s = await statusOf("b");
      assert.deepEqual(s.refused, []);
      assert.equal(s.inSync, true);
    }, "b in sync once the hub knows");

    // A DENY: the hub must remove the import it once recorded as refused.
    await c.hub.admin.applyPolicies({ policies: [denyFrontendToPayments] }, admin);
    await eventually(() => assert.equal(importIn(c!.b), undefined), "the import removed from b");
    await eventually(async () => assert.equal((await statusOf("b")).inSync, true), "b in sync");
  });
});
