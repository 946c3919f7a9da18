import assert from "node:assert/strict";
import { statusTable } from "@isthmus/cli";
import type { ClusterStatus } from "@isthmus/proto";
import { admin } from "../helpers/hub-fixture.js";
import { eventually } from "./cluster.js";
import {
  denyFrontendToPayments,
  frontendToPayments,
  paymentsNamespace,
  startTwoClusters,
  type TwoClusters,
} from "./two-clusters.js";

describe("the hub's record of what each agent holds (issue 17, finding 7)", function () {
  // Two clusters with agents and a hub, and an agent retry timer to wait for.
  this.timeout(60_000);
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

    // The table of `isthmus status` names the reason, not only a count.
    const table = statusTable(await c.hub.admin.getStatus({}, admin));
    const row = table.split("\n").find((l) => /^b\s/.test(l));
    assert.ok(row, table);
    assert.match(row, /^b\s+yes\s+no\s/, "connected: yes, in sync: no");
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
