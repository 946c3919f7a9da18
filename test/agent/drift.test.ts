import assert from "node:assert/strict";
import { admin } from "../helpers/hub-fixture.js";
import { eventually } from "./cluster.js";
import {
  frontendToPayments,
  kubectlEdit,
  startTwoClusters,
  type TwoClusters,
} from "./two-clusters.js";

type Spec = Record<string, unknown>;

describe("agent drift: hand edits of owned objects are restored and reported", function () {
  // Two clusters, agents, a hub, and kubectl as a child process.
  this.timeout(60_000);
  let c: TwoClusters | undefined;
  afterEach(async () => {
    await c?.close();
    c = undefined;
  });

  const allowPolicy = () =>
    c!.a.get(
      "security.istio.io/v1",
      "AuthorizationPolicy",
      "isthmus-allow-payments-api",
      "payments",
    );
  const exportEntry = () =>
    c!.a.get("networking.istio.io/v1", "ServiceEntry", "isthmus-export-payments-api", "payments");
  const driftCounts = async () => {
    const text = await c!.agents.a.metrics.registry.getSingleMetricAsString(
      "isthmus_agent_drift_repairs_total",
    );
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/kind="(\w+)"[^}]*\} (\d+)/g)) out[m[1]!] = Number(m[2]);
    return out;
  };

  it("restores principals widened to * and a moved export endpoint, counts and reports both", async () => {
    c = await startTwoClusters();
    await c.hub.admin.applyPolicies({ policies: [frontendToPayments] }, admin);
    await eventually(() => {
      assert.match(JSON.stringify(allowPolicy().spec), /b\.example\/ns\/web\/sa\/frontend/);
      assert.ok(exportEntry());
    }, "policy and export in a");
    const policy = allowPolicy();
    const entry = exportEntry();
    const address = (entry.spec as { endpoints: { address: string }[] }).endpoints[0]!.address;

    // The two edits of issue 17: annotations (and the content hash) left as they were.
    await kubectlEdit(c, "a", "authorizationpolicy/isthmus-allow-payments-api", "payments", [
      ['"b.example/ns/web/sa/frontend"', '"*"'],
    ]);
    await kubectlEdit(c, "a", "serviceentry/isthmus-export-payments-api", "payments", [
      [`"${address}"`, '"203.0.113.66"'],
    ]);

    await eventually(() => {
      assert.deepEqual(allowPolicy().spec, policy.spec, "principals restored");
      assert.deepEqual(exportEntry().spec, entry.spec, "endpoint restored");
    }, "both objects restored");
    assert.equal(
      allowPolicy().metadata.annotations?.["isthmus.dev/content-hash"],
      policy.metadata.annotations?.["isthmus.dev/content-hash"],
    );
    // Counted once the agent has the server's answer (the cluster changes before that).
    await eventually(async () =>
      assert.deepEqual(await driftCounts(), { AuthorizationPolicy: 1, ServiceEntry: 1 }),
    );

    const status = await eventually(async () => {
      const s = (await c!.hub.admin.getCluster({ id: "a" }, admin)).status!;
      assert.equal(s.driftRepairCount, 2n);
      return s;
    }, "the hub's status shows the repairs");
    assert.deepEqual(status.driftRepairs.map((d) => [d.object, d.change, d.intentName]).sort(), [
      [
        "AuthorizationPolicy payments/isthmus-allow-payments-api",
        "changed",
        "access/payments/payments-api",
      ],
      [
        "ServiceEntry payments/isthmus-export-payments-api",
        "changed",
        "export/payments/payments-api",
      ],
    ]);
    for (const d of status.driftRepairs) assert.ok(d.time !== undefined && d.time.seconds > 0n);
    const all = (await c.hub.admin.getStatus({}, admin)).clusters.find(
      (x) => x.cluster?.id === "a",
    );
    assert.equal(all?.driftRepairCount, 2n, "GetStatus too");
  });

  it("removes a field someone else added, which server-side apply alone would keep", async () => {
    c = await startTwoClusters();
    await c.hub.admin.applyPolicies({ policies: [frontendToPayments] }, admin);
    await eventually(() => assert.ok(allowPolicy()), "policy in a");
    const policy = allowPolicy();
    // kubectl edit owns the field it adds; an apply that omits it does not remove it.
    await kubectlEdit(c, "a", "authorizationpolicy/isthmus-allow-payments-api", "payments", [
      ['"action": "ALLOW",', '"action": "ALLOW", "provider": { "name": "anyone" },'],
    ]);
    await eventually(() => {
      assert.deepEqual(allowPolicy().spec, policy.spec);
      assert.equal((allowPolicy().spec as Spec).provider, undefined);
    }, "the added field removed");
    await eventually(async () => assert.deepEqual(await driftCounts(), { AuthorizationPolicy: 1 }));
    await c.agents.a.controller.reconciler.idle();
    assert.deepEqual(await driftCounts(), { AuthorizationPolicy: 1 }, "counted once");
  });
});
