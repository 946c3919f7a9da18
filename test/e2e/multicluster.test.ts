import assert from "node:assert/strict";
import { type Sandbox, waitConverged } from "@isthmus/cli/sandbox";
import { sampleApp } from "@isthmus/kubesim";
import { Action, Decision } from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";

const allowFrontendToPayments = {
  name: "frontend-to-payments",
  priority: 100,
  action: Action.ALLOW,
  from: [{ clusters: ["prod-eu"], namespaces: ["web"] }],
  to: [{ namespaces: ["payments"], services: ["payments-api"] }],
};
const denyAll = {
  name: "lockdown",
  priority: 10,
  action: Action.DENY,
  from: [{ clusters: ["*"] }],
  to: [{ namespaces: ["payments"] }],
};

type Obj = {
  kind: string;
  metadata?: { name?: string; namespace?: string };
  spec?: Record<string, unknown>;
};

const FRONTEND_DEFAULT_DENY = "AuthorizationPolicy web/isthmus-deny-frontend";

function names(sandbox: Sandbox, cluster: string): string[] {
  return sandbox
    .owned(cluster)
    .map((o) => `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`);
}

function find(sandbox: Sandbox, cluster: string, kind: string, name: string): Obj | undefined {
  return sandbox.owned(cluster).find((o) => o.kind === kind && o.metadata?.name === name) as
    | Obj
    | undefined;
}

function gatewayAddresses(se: Obj | undefined): string[] {
  const endpoints = (se?.spec?.endpoints ?? []) as { address: string; network?: string }[];
  return endpoints
    .filter((e) => e.network !== undefined && e.network !== "")
    .map((e) => e.address)
    .sort();
}

function principals(ap: Obj | undefined): string[] {
  const rules = (ap?.spec?.rules ?? []) as { from?: { source?: { principals?: string[] } }[] }[];
  return rules.flatMap((r) => (r.from ?? []).flatMap((f) => f.source?.principals ?? [])).sort();
}

async function apply(sandbox: Sandbox, policies: object[], dryRun = false) {
  const { client, call } = sandbox.admin();
  try {
    return await client.applyPolicies({ policies, dryRun }, call);
  } finally {
    client.close();
  }
}

describe("e2e: three clusters, one hub, real agents", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;
  before(async () => {
    quick = await startQuickSandbox("e2e");
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("1. lets frontend in prod-eu call private payments-api in prod-us, and nobody else", async () => {
    const { client, call } = sandbox.admin();
    try {
      const catalog = await client.listCatalog({}, call);
      assert.deepEqual(
        catalog.services
          .filter((s) => s.service?.namespace !== "istio-system")
          .map((s) => `${s.clusterId}/${s.service?.namespace}/${s.service?.name}`),
        ["dev/web/frontend", "prod-eu/web/frontend", "prod-us/payments/payments-api"],
      );
    } finally {
      client.close();
    }
    await apply(sandbox, [allowFrontendToPayments]);
    await waitConverged(sandbox);

    assert.deepEqual(names(sandbox, "prod-eu"), [
      // The default DENY of other clusters on prod-eu's own frontend (no rule names it).
      FRONTEND_DEFAULT_DENY,
      "DestinationRule payments/isthmus-import-payments-api",
      "ServiceEntry payments/isthmus-import-payments-api",
      "ServiceEntry payments/isthmus-import-payments-api-prod-us-ef4362b6",
    ]);
    const imported = find(sandbox, "prod-eu", "ServiceEntry", "isthmus-import-payments-api");
    assert.deepEqual(imported?.spec?.hosts, ["payments-api.payments.svc.clusterset.local"]);
    assert.deepEqual(gatewayAddresses(imported), ["192.0.2.2"]);

    assert.deepEqual(names(sandbox, "prod-us"), [
      "AuthorizationPolicy payments/isthmus-allow-payments-api",
      "ServiceEntry payments/isthmus-export-payments-api",
    ]);
    const ap = find(sandbox, "prod-us", "AuthorizationPolicy", "isthmus-allow-payments-api");
    assert.ok(
      principals(ap).includes("prod-eu.local/ns/web/sa/frontend"),
      JSON.stringify(ap?.spec),
    );
    assert.ok(!principals(ap).includes("dev.local/ns/web/sa/frontend"));
    assert.deepEqual(names(sandbox, "dev"), [FRONTEND_DEFAULT_DENY]);
  });

  it("1b. follows payments-api scaling in prod-us with one small backend intent", async () => {
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!.sim;
    const perCluster = "isthmus-import-payments-api-prod-us-ef4362b6";
    const version = (name: string) =>
      (
        find(sandbox, "prod-eu", "ServiceEntry", name) as
          | { metadata?: { annotations?: Record<string, string> } }
          | undefined
      )?.metadata?.annotations?.["isthmus.dev/intent-version"];
    const weights = (name: string) =>
      (
        (find(sandbox, "prod-eu", "ServiceEntry", name)?.spec?.endpoints ?? []) as {
          weight?: number;
        }[]
      ).map((e) => e.weight);
    const header = version("isthmus-import-payments-api");
    const backend = version(perCluster);
    assert.deepEqual(weights(perCluster), [2]);
    const app = (replicas: number) =>
      sampleApp({
        name: "payments-api",
        namespace: "payments",
        replicas,
        port: 8443,
        portName: "https",
        serviceAccount: "payments",
        podIpPrefix: "10.2.0",
      });
    us.load(app(3));
    await eventually(async () => {
      await waitConverged(sandbox, 5_000);
      assert.deepEqual(weights(perCluster), [3]);
      assert.deepEqual(weights("isthmus-import-payments-api"), [3]);
    }, 30_000);
    assert.equal(version("isthmus-import-payments-api"), header, "the import header is unchanged");
    assert.notEqual(version(perCluster), backend, "only the backend intent changed");
    for (const o of us.list("v1", "Pod", { namespace: "payments" }))
      if (o.metadata!.name === "payments-api-2")
        us.delete("v1", "Pod", o.metadata!.name!, "payments");
    us.load(app(2));
    await eventually(async () => {
      await waitConverged(sandbox, 5_000);
      assert.deepEqual(weights(perCluster), [2]);
    }, 30_000);
  });

  it("3. a DENY rule of higher priority removes the access, as the dry run predicted", async () => {
    const preview = await apply(sandbox, [denyAll], true);
    const changes = preview.impact.map(
      (c) =>
        `${c.source?.clusterId}/${c.source?.namespace}/${c.source?.serviceAccount} -> ${c.destination?.clusterId}/${c.destination?.namespace}/${c.destination?.service}: ${Decision[c.before]} -> ${Decision[c.after]}`,
    );
    assert.ok(
      changes.includes("prod-eu/web/frontend -> prod-us/payments/payments-api: ALLOW -> DENY"),
      changes.join("\n"),
    );
    assert.ok(
      changes.every((c) => c.endsWith("-> DENY")),
      changes.join("\n"),
    );
    assert.equal(names(sandbox, "prod-eu").length, 4, "a dry run changes nothing");

    await apply(sandbox, [denyAll]);
    await waitConverged(sandbox);
    assert.deepEqual(names(sandbox, "prod-eu"), [FRONTEND_DEFAULT_DENY]);
    assert.ok(
      !principals(
        find(sandbox, "prod-us", "AuthorizationPolicy", "isthmus-allow-payments-api"),
      ).includes("prod-eu.local/ns/web/sa/frontend"),
    );

    const { client, call } = sandbox.admin();
    try {
      await client.deletePolicy({ name: denyAll.name }, call);
    } finally {
      client.close();
    }
    await waitConverged(sandbox);
    assert.equal(names(sandbox, "prod-eu").length, 4);
  });

  it("2. follows payments-api from prod-us to dev with no policy change", async () => {
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!.sim;
    const dev = sandbox.clusters.find((c) => c.id === "dev")!.sim;
    for (const o of us.list("v1", "Pod", { namespace: "payments" }))
      us.delete("v1", "Pod", o.metadata!.name!, "payments");
    for (const o of us.list("discovery.k8s.io/v1", "EndpointSlice", { namespace: "payments" })) {
      us.delete("discovery.k8s.io/v1", "EndpointSlice", o.metadata!.name!, "payments");
    }
    us.delete("v1", "Service", "payments-api", "payments");
    dev.load(
      sampleApp({
        name: "payments-api",
        namespace: "payments",
        port: 8443,
        portName: "https",
        serviceAccount: "payments",
        podIpPrefix: "10.3.9",
      }),
    );

    await eventually(async () => {
      await waitConverged(sandbox, 5_000);
      assert.deepEqual(
        gatewayAddresses(find(sandbox, "prod-eu", "ServiceEntry", "isthmus-import-payments-api")),
        ["192.0.2.3"],
      );
      assert.ok(
        principals(
          find(sandbox, "dev", "AuthorizationPolicy", "isthmus-allow-payments-api"),
        ).includes("prod-eu.local/ns/web/sa/frontend"),
      );
      assert.deepEqual(names(sandbox, "prod-us"), []);
      assert.ok(names(sandbox, "dev").includes(FRONTEND_DEFAULT_DENY));
    }, 30_000);
  });

  it("4a. keeps every object while the hub is down, and converges after it returns", async () => {
    const before = sandbox.clusters.map((c) => names(sandbox, c.id));
    await sandbox.stopHub();
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(
      sandbox.clusters.map((c) => names(sandbox, c.id)),
      before,
      "fail static: nothing removed",
    );
    await sandbox.startHub();
    await waitConverged(sandbox, 60_000);
    assert.deepEqual(
      sandbox.clusters.map((c) => names(sandbox, c.id)),
      before,
    );
  });

  it("4b. keeps a stopped agent's services in other clusters for the grace period", async () => {
    const dev = sandbox.clusters.find((c) => c.id === "dev")!;
    await dev.stopAgent();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(names(sandbox, "prod-eu").length, 4, "imports kept within the grace period");
    const { client, call } = sandbox.admin();
    try {
      const listed = await client.listCatalog(
        { filter: { clusterId: "dev", service: "payments-api" } },
        call,
      );
      assert.equal(listed.services[0]?.stale, true);
    } finally {
      client.close();
    }
    // After the grace period (3 s) the service is gone from prod-eu.
    await eventually(
      () => assert.deepEqual(names(sandbox, "prod-eu"), [FRONTEND_DEFAULT_DENY]),
      20_000,
    );
    await dev.startAgent();
    await eventually(async () => {
      await waitConverged(sandbox, 5_000);
      assert.equal(names(sandbox, "prod-eu").length, 4);
    }, 30_000);
  });

  it("4c. converges through dropped watches and 500s from the API server", async () => {
    const eu = sandbox.clusters.find((c) => c.id === "prod-eu")!.sim;
    eu.faults.failNext(5, { code: 500 });
    eu.faults.closeWatches();
    eu.load(
      sampleApp({
        name: "checkout",
        namespace: "web",
        serviceAccount: "checkout",
        podIpPrefix: "10.1.7",
      }),
    );
    await eventually(async () => {
      const { client, call } = sandbox.admin();
      try {
        const listed = await client.listCatalog(
          { filter: { clusterId: "prod-eu", service: "checkout" } },
          call,
        );
        assert.equal(listed.services.length, 1);
      } finally {
        client.close();
      }
    }, 30_000);
    await waitConverged(sandbox);
  });
});
