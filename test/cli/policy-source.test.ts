// ConnectionPolicy objects kept in a designated config cluster (prod-eu) and forwarded by its
// agent: the hub stores them as owned by that cluster, the CLI refuses to change them without
// --force, deleting the object deletes the policy, a bad object refuses the whole report, and
// another cluster's agent (dev, forwarding too) is refused. kubesim serves the CRD.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Sandbox } from "@isthmus/cli/sandbox";
import type { KubeObject } from "@isthmus/kubesim";
import { isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";

/** The ConnectionPolicy CRD as kubesim needs it to serve the kind (cluster-scoped, as the hub
 * chart's CRD); the schema is left open: the hub validates every object itself. */
const CRD: KubeObject = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "connectionpolicies.isthmus.dev" },
  spec: {
    group: "isthmus.dev",
    names: {
      kind: "ConnectionPolicy",
      listKind: "ConnectionPolicyList",
      plural: "connectionpolicies",
      singular: "connectionpolicy",
    },
    scope: "Cluster",
    versions: [
      {
        name: "v1alpha1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
        },
      },
    ],
  },
};

const policy = (name: string, action: string): KubeObject => ({
  apiVersion: "isthmus.dev/v1alpha1",
  kind: "ConnectionPolicy",
  metadata: { name },
  spec: {
    priority: 100,
    action,
    from: [{ clusters: ["prod-eu"], namespaces: ["web"] }],
    to: [{ namespaces: ["payments"], services: ["payments-api"] }],
  },
});

describe("cli: policies from a designated config cluster", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;
  const sim = (id: string) => sandbox.clusters.find((c) => c.id === id)!.sim;
  const cli = (...args: string[]) => isthmus([...args, "--config", sandbox.configPath]);

  /** The hub's policies once `check` accepts them. */
  async function policiesSettle(check: (byName: Map<string, string>) => void) {
    const { client, call } = sandbox.admin();
    try {
      await eventually(async () => {
        const res = await client.listPolicies({}, call);
        check(new Map(res.policies.map((p) => [p.name, p.source])));
      }, 20_000);
    } finally {
      client.close();
    }
  }
  async function warningOf(cluster: string): Promise<string> {
    const { client, call } = sandbox.admin();
    try {
      return await eventually(async () => {
        const res = await client.getStatus({}, call);
        const w = res.clusters
          .find((c) => c.cluster?.id === cluster)
          ?.warnings.find((x) => x.code === "policy-source-refused");
        assert.ok(w !== undefined, `no policy-source-refused warning for ${cluster}`);
        return w.message;
      }, 20_000);
    } finally {
      client.close();
    }
  }

  before(async () => {
    quick = await startQuickSandbox("policy-source", {
      extra: {
        hub: { policySource: { cluster: "prod-eu" } },
        policySourceAgents: ["prod-eu", "dev"],
        extraObjects: { "prod-eu": [CRD], dev: [CRD] },
      },
    });
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("stores the config cluster's ConnectionPolicy as owned by it; explain decides by it", async () => {
    sim("prod-eu").create(policy("frontend-to-payments", "ALLOW"));
    await policiesSettle((p) => assert.equal(p.get("frontend-to-payments"), "prod-eu"));
    const ex = await cli(
      "policy",
      "explain",
      "--from",
      "prod-eu/web/frontend",
      "--to",
      "prod-us/payments/payments-api:8443",
    );
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, /^decision: ALLOW$/m);
    assert.match(ex.stdout, /^decided by: policy frontend-to-payments$/m);
  });

  it("the CLI refuses to change or delete it without --force", async () => {
    const del = await cli("policy", "delete", "frontend-to-payments");
    assert.equal(del.code, 1, del.stdout + del.stderr);
    assert.match(
      del.stderr,
      /^isthmus: .*policy "frontend-to-payments" comes from the ConnectionPolicy objects of cluster "prod-eu" \(policy source\); delete it there, or use --force/m,
    );
    const file = join(dirname(sandbox.configPath), "deny.yaml");
    writeFileSync(
      file,
      `apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: frontend-to-payments }
spec:
  action: DENY
  from: [{ clusters: [prod-eu] }]
  to: [{ namespaces: [payments] }]
`,
    );
    const apply = await cli("policy", "apply", "-f", file);
    assert.equal(apply.code, 1, apply.stdout + apply.stderr);
    assert.match(apply.stderr, /change it there, or use --force/);
    const forced = await cli("policy", "apply", "-f", file, "--force");
    assert.equal(forced.code, 0, forced.stderr);
    await policiesSettle((p) => assert.equal(p.get("frontend-to-payments"), ""));
    // The config cluster's next report restores its own.
    const cp = sim("prod-eu").get(
      "isthmus.dev/v1alpha1",
      "ConnectionPolicy",
      "frontend-to-payments",
    );
    sim("prod-eu").update({ ...cp, metadata: { ...cp.metadata, labels: { team: "web" } } });
    await policiesSettle((p) => assert.equal(p.get("frontend-to-payments"), "prod-eu"));
  });

  it("refuses a report with a bad object as a whole, naming the field, and keeps the stored set", async () => {
    sim("prod-eu").create(policy("maybe", "MAYBE"));
    const message = await warningOf("prod-eu");
    assert.match(
      message,
      /documents_json\[1\].*spec\.action: must be ALLOW or DENY, got string "MAYBE"/,
    );
    await policiesSettle((p) => {
      assert.equal(p.get("frontend-to-payments"), "prod-eu");
      assert.equal(p.has("maybe"), false);
    });
    sim("prod-eu").delete("isthmus.dev/v1alpha1", "ConnectionPolicy", "maybe");
  });

  it("deleting the object deletes the policy", async () => {
    sim("prod-eu").delete("isthmus.dev/v1alpha1", "ConnectionPolicy", "frontend-to-payments");
    await policiesSettle((p) => assert.equal(p.has("frontend-to-payments"), false));
  });

  it("refuses ConnectionPolicy objects from any other cluster; status says why", async () => {
    sim("dev").create(policy("from-dev", "ALLOW"));
    const message = await warningOf("dev");
    assert.equal(
      message,
      'ConnectionPolicy objects refused: the hub takes them only from cluster "prod-eu" (policySource.cluster)',
    );
    const st = await cli("status");
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^\S*\s*dev .*policy-source-refused/m);
    await policiesSettle((p) => assert.equal(p.has("from-dev"), false));
  });
});
