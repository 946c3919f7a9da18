// Namespace sameness: an import lives in the service's namespace in the importing cluster.
// Without that namespace the agent NACKs the import, `isthmus status` shows the reason and
// `isthmus policy explain` names it; the agent applies the import once the namespace appears,
// with its retry timer off, so the namespace watch alone does it.
import assert from "node:assert/strict";
import type { Sandbox } from "@isthmus/cli/sandbox";
import { isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { frontendToPayments } from "../helpers/fixtures.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";

describe("cli: an import waits for its namespace in the importing cluster", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;

  before(async () => {
    quick = await startQuickSandbox("namespace", { agentRetryIntervalMs: 0 });
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("NACKs the import with the reason in status and explain, and applies it when the namespace appears", async () => {
    const eu = sandbox.clusters.find((c) => c.id === "prod-eu")!.sim;
    const ns = eu.get("v1", "Namespace", "payments");
    eu.delete("v1", "Namespace", "payments");
    const { client, call } = sandbox.admin();
    try {
      await client.applyPolicies({ policies: [frontendToPayments("prod-eu")] }, call);
      await eventually(async () => {
        const res = await client.getStatus({}, call);
        const c = res.clusters.find((x) => x.cluster?.id === "prod-eu");
        assert.ok(
          c?.refused.some((e) => e.intentName === "import/payments/payments-api"),
          JSON.stringify(c?.refused),
        );
      }, 20_000);

      const st = await isthmus(["status", "--config", sandbox.configPath]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(
        st.stdout,
        /prod-eu .*import\/payments\/payments-api: namespace "payments" does not exist in this cluster/,
      );

      const ex = await isthmus([
        "policy",
        "explain",
        "--config",
        sandbox.configPath,
        "--from",
        "prod-eu/web/frontend",
        "--to",
        "prod-us/payments/payments-api:8443",
      ]);
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /^decision: ALLOW$/m);
      assert.match(
        ex.stdout,
        /^warning import-refused: cluster prod-eu refused import\/payments\/payments-api .*not found.*; an import lives in the service's namespace "payments", which must exist in prod-eu/m,
      );
      assert.match(
        ex.stdout,
        /^note: the import lives in namespace "payments" of prod-eu \(the service's namespace\), which must exist there$/m,
      );

      eu.create({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "payments", labels: ns.metadata.labels ?? {} },
      });
      await eventually(async () => {
        const se = eu.get(
          "networking.istio.io/v1",
          "ServiceEntry",
          "isthmus-import-payments-api",
          "payments",
        );
        assert.ok(se !== undefined);
        const res = await client.getStatus({}, call);
        const c = res.clusters.find((x) => x.cluster?.id === "prod-eu");
        assert.deepEqual(c?.refused, []);
      }, 20_000);
    } finally {
      client.close();
    }
    const st = await isthmus(["status", "--config", sandbox.configPath]);
    assert.equal(st.code, 0, st.stderr);
    assert.doesNotMatch(st.stdout, /import\/payments\/payments-api/);
  });
});
