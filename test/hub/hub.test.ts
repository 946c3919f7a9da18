import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHub } from "@isthmus/hub";
import { createAgentCsr } from "@isthmus/pki";
import {
  AgentService,
  CatalogEventType,
  Code,
  clientCredentials,
  createClient,
  GrpcError,
} from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import {
  frontendIdentity,
  frontendToPayments,
  paymentsService as payments,
  paymentsIdentity,
} from "../helpers/fixtures.js";
import {
  admin,
  agentWithCert,
  enrollAgent,
  type HubFixture,
  hubConfig,
  startHub,
  type TestAgent,
  viewer,
} from "../helpers/hub-fixture.js";

const allowFrontend = frontendToPayments("a");

function rejectsWith(code: Code, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GrpcError, `expected GrpcError, got ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe("hub", function () {
  this.timeout(60_000);
  let f: HubFixture;
  const agents: TestAgent[] = [];
  beforeEach(async () => {
    f = await startHub();
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await f.close();
  });

  it("enrolls with a one-time token and refuses wrong, reused and unknown tokens", async () => {
    const created = await f.admin.createCluster({ cluster: { id: "a" } }, admin);
    assert.ok(created.bootstrapToken.length >= 32);
    assert.match(created.hubCaPem, /BEGIN CERTIFICATE/);
    const csr = await createAgentCsr("a");
    const anonymous = createClient(
      AgentService,
      f.address,
      clientCredentials({ caPem: f.hub.caPem }),
    );
    try {
      const refused = rejectsWith(
        Code.PERMISSION_DENIED,
        /^enrollment of cluster "a" refused: unknown, used or expired bootstrap token$/,
      );
      await assert.rejects(
        anonymous.enroll({ clusterId: "a", bootstrapToken: "x".repeat(43), csrPem: csr.csrPem }),
        refused,
      );
      await assert.rejects(
        anonymous.enroll({
          clusterId: "zz",
          bootstrapToken: created.bootstrapToken,
          csrPem: csr.csrPem,
        }),
        rejectsWith(Code.PERMISSION_DENIED, /cluster "zz" refused/),
      );
      const enrolled = await anonymous.enroll({
        clusterId: "a",
        bootstrapToken: created.bootstrapToken,
        csrPem: csr.csrPem,
      });
      assert.match(enrolled.certificateChainPem, /BEGIN CERTIFICATE/);
      await assert.rejects(
        anonymous.enroll({
          clusterId: "a",
          bootstrapToken: created.bootstrapToken,
          csrPem: csr.csrPem,
        }),
        refused,
      );
      const status = await f.admin.getCluster({ id: "a" }, viewer);
      assert.equal(status.status?.enrolled, true);
      assert.equal(status.status?.tokenExpiresAt, undefined);
    } finally {
      anonymous.close();
    }
  });

  it("refuses an expired bootstrap token", async () => {
    await f.restart({ bootstrapTokenTtlSeconds: 1 });
    const created = await f.admin.createCluster({ cluster: { id: "late" } }, admin);
    await new Promise((r) => setTimeout(r, 1100));
    const csr = await createAgentCsr("late");
    const anonymous = createClient(
      AgentService,
      f.address,
      clientCredentials({ caPem: f.hub.caPem }),
    );
    try {
      await assert.rejects(
        anonymous.enroll({
          clusterId: "late",
          bootstrapToken: created.bootstrapToken,
          csrPem: csr.csrPem,
        }),
        rejectsWith(Code.PERMISSION_DENIED, /expired/),
      );
    } finally {
      anonymous.close();
    }
  });

  it("refuses a stream without a certificate and a hello for another cluster", async () => {
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await f.admin.createCluster({ cluster: { id: "b" } }, admin);
    await a.connect({ clusterId: "b" });
    await assert.rejects(
      a.next(),
      rejectsWith(Code.PERMISSION_DENIED, /hello names cluster "b" but the certificate is for "a"/),
    );

    const anonymous = createClient(
      AgentService,
      f.address,
      clientCredentials({ caPem: f.hub.caPem }),
    );
    const stream = anonymous.connect();
    await stream.send({ message: { case: "hello", value: { clusterId: "a" } } });
    await assert.rejects(
      stream.responses[Symbol.asyncIterator]().next(),
      rejectsWith(Code.UNAUTHENTICATED, /client certificate required/),
    );
    anonymous.close();
  });

  it("merges catalogs and sends intents to exactly the affected clusters", async () => {
    const a = await enrollAgent(f, "a", { env: "prod" });
    const b = await enrollAgent(f, "b", { env: "prod" });
    const c = await enrollAgent(f, "c", { env: "dev" });
    agents.push(a, b, c);
    await a.join([], [frontendIdentity]);
    await b.join([payments], [paymentsIdentity]);
    // Before any policy, b's service is under the default DENY of other clusters: the
    // DefaultAccessIntent of b's first delta covers it, with no AccessIntent of its own.
    assert.deepEqual([...b.applied.keys()], ["default-access"]);
    await c.join([], [frontendIdentity]);

    const listed = await f.admin.listCatalog({ filter: { service: "payments-api" } }, viewer);
    assert.deepEqual(
      listed.services.map((s) => `${s.clusterId}/${s.service?.name}`),
      ["b/payments-api"],
    );

    await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const da = await a.nextDelta();
    assert.deepEqual(da.upserted.map((i) => `${i.name} ${i.kind.case}`).sort(), [
      "import/payments/payments-api importIntent",
      "import/payments/payments-api/b importBackendIntent",
    ]);
    const db = await b.nextDelta();
    assert.deepEqual(db.upserted.map((i) => i.name).sort(), [
      "access/payments/payments-api",
      "export/payments/payments-api",
    ]);
    const access = db.upserted.find((i) => i.kind.case === "accessIntent")?.kind.value as {
      allow: { principals: string[] }[];
    };
    assert.ok(
      access.allow.some((r) => r.principals.includes("a.local/ns/web/sa/frontend")),
      JSON.stringify(access),
    );
    await a.ackDelta(da);
    await b.ackDelta(db);

    // c was not affected: a status query shows nothing pending and the next message it gets
    // is the answer to a change of its own.
    const status = await f.admin.getStatus({}, viewer);
    assert.deepEqual(
      status.clusters.map((s) => [s.cluster?.id, s.connected, s.pendingNonce]),
      [
        ["a", true, ""],
        ["b", true, ""],
        ["c", true, ""],
      ],
    );
    await c.send({
      message: {
        case: "catalogUpdate",
        value: { revision: 2n, upsertedServices: [{ ...payments, name: "ledger" }] },
      },
    });
    await eventually(async () => {
      const listed2 = await f.admin.listCatalog({ filter: { clusterId: "c" } }, viewer);
      assert.deepEqual(
        listed2.services.map((s) => s.service?.name),
        ["ledger"],
      );
    });
  });

  it("keeps one copy of what clusters report alike and lists each cluster's own", async () => {
    const a = await enrollAgent(f, "a", { env: "prod" });
    const b = await enrollAgent(f, "b", { env: "prod" });
    agents.push(a, b);
    const labelled = { ...payments, labels: { app: "payments", team: "pay" } };
    await a.join([labelled], [paymentsIdentity]);
    await b.join([{ ...labelled, readyEndpoints: 3 }], [paymentsIdentity]);
    const entries = async () => {
      await eventually(async () => {
        const st = await f.admin.getStatus({}, viewer);
        assert.deepEqual(
          st.clusters.map((c) => c.serviceCount),
          [1, 1],
        );
      });
      const cat = (id: string) => f.hub.context.catalogs.get(id)!;
      return {
        a: cat("a").services.get("payments/payments-api")!,
        b: cat("b").services.get("payments/payments-api")!,
        ia: cat("a").identities.get("payments/payments")!,
        ib: cat("b").identities.get("payments/payments")!,
      };
    };
    const e = await entries();
    assert.notEqual(e.a, e.b);
    for (const field of ["ports", "labels", "selector", "serviceAccounts"] as const)
      assert.equal(e.a[field], e.b[field], field);
    assert.equal(e.ia.labelSets, e.ib.labelSets);

    // A cluster that reports other labels gets its own copy; the other's entry is unchanged.
    await b.send({
      message: {
        case: "catalogUpdate",
        value: {
          revision: 2n,
          upsertedServices: [{ ...labelled, labels: { app: "payments", team: "ledger" } }],
        },
      },
    });
    await eventually(async () => {
      const listed = await f.admin.listCatalog({ filter: { service: "payments-api" } }, viewer);
      assert.deepEqual(
        listed.services.map((s) => [
          s.clusterId,
          s.service?.labels,
          s.service?.selector,
          s.service?.readyEndpoints,
          s.service?.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`),
          s.service?.serviceAccounts,
        ]),
        [
          [
            "a",
            { app: "payments", team: "pay" },
            { app: "payments" },
            2,
            ["https:8443/TCP"],
            ["payments"],
          ],
          [
            "b",
            { app: "payments", team: "ledger" },
            { app: "payments" },
            2,
            ["https:8443/TCP"],
            ["payments"],
          ],
        ],
      );
    });
    const after = await entries();
    assert.equal(after.a, e.a);
    assert.equal(after.a.ports, after.b.ports);
  });

  it("shows compilation warnings in status and updates them after a change", async () => {
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    agents.push(a, b);
    const mesh = (trustDomain: string) => ({
      network: "net",
      trustDomain,
      eastWestGateways: [{ address: "192.0.2.1", port: 15443 }],
      locality: "",
    });
    for (const agent of [a, b]) {
      await agent.connect({ mesh: mesh("shared.local") });
      assert.equal((await agent.next()).message.case, "welcome");
      await agent.ackDelta(await agent.nextDelta());
    }
    const shared = async () => {
      const status = await f.admin.getStatus({}, viewer);
      return status.clusters.map((c) => [
        c.cluster?.id,
        c.warnings.filter((w) => w.code === "shared-trust-domain").length,
      ]);
    };
    await eventually(async () =>
      assert.deepEqual(await shared(), [
        ["a", 1],
        ["b", 1],
      ]),
    );
    // Asked again with no change in between: the same (cached) warnings.
    assert.deepEqual(await shared(), [
      ["a", 1],
      ["b", 1],
    ]);
    // A cluster's trust domain changes only through enrolling again (the hub refuses another
    // one from an enrolled agent): b gets a new token, enrolls and reports its own domain.
    const { bootstrapToken } = await f.admin.rotateClusterToken({ id: "b" }, admin);
    const csr = await createAgentCsr("b");
    const enrolled = await b.client.enroll({ clusterId: "b", bootstrapToken, csrPem: csr.csrPem });
    b.close();
    const b2 = agentWithCert(f, "b", enrolled.certificateChainPem, csr.keyPem);
    agents.push(b2);
    await b2.connect({ mesh: mesh("b.local") });
    assert.equal((await b2.next()).message.case, "welcome");
    await eventually(async () =>
      assert.deepEqual(await shared(), [
        ["a", 0],
        ["b", 0],
      ]),
    );
  });

  it("ends a session that sends an invalid or oversized catalog while other sessions go on", async () => {
    await f.restart({ maxCatalogEntries: 3 });
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    const c = await enrollAgent(f, "c");
    agents.push(a, b, c);
    await c.join([], [frontendIdentity]);

    await a.connect();
    await a.next();
    await a.sendSnapshot([{ ...payments, name: "Not_A_Name" }], []);
    await assert.rejects(
      async () => {
        for (;;) await a.next();
      },
      rejectsWith(
        Code.INVALID_ARGUMENT,
        /^invalid isthmus\.v1\.ConnectRequest: catalog_update\.upserted_services\[0\]\.name: /,
      ),
    );

    await b.connect();
    await b.next();
    const many = ["s1", "s2", "s3", "s4"].map((name) => ({ ...payments, name }));
    await b.sendSnapshot(many, []);
    await assert.rejects(
      async () => {
        for (;;) await b.next();
      },
      rejectsWith(Code.RESOURCE_EXHAUSTED, /catalog of cluster "b" exceeds 3 entries/),
    );

    // c's session is untouched and still answered.
    await c.send({
      message: {
        case: "catalogUpdate",
        value: { revision: 2n, upsertedServices: [{ ...payments, name: "ledger" }] },
      },
    });
    await eventually(async () => {
      const listed = await f.admin.listCatalog({ filter: { clusterId: "c" } }, viewer);
      assert.deepEqual(
        listed.services.map((s) => s.service?.name),
        ["ledger"],
      );
    });
    const status = await f.admin.getCluster({ id: "c" }, viewer);
    assert.equal(status.status?.connected, true);
  });

  it("keeps NACK details in status and resends nothing refused until it changes", async () => {
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    agents.push(a, b);
    await a.join([], [frontendIdentity]);
    await b.join([payments], [paymentsIdentity]);
    await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const da = await a.nextDelta();
    await a.send({
      message: {
        case: "nack",
        value: {
          nonce: da.nonce,
          errors: [
            {
              intentName: "import/payments/payments-api",
              object: "ServiceEntry payments/isthmus-import-payments-api",
              message: "owned by another manager",
            },
          ],
        },
      },
    });
    const status = await eventually(async () => {
      const s = await f.admin.getCluster({ id: "a" }, viewer);
      assert.equal(s.status?.nacks.length, 1);
      return s;
    });
    assert.deepEqual(status.status?.nacks[0]?.errors, [
      "import/payments/payments-api: ServiceEntry payments/isthmus-import-payments-api: owned by another manager",
    ]);
    assert.equal(status.status?.pendingNonce, "");
  });

  it("on reconnect sends only what differs from the versions the agent reports", async () => {
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    agents.push(a, b);
    await a.join([], [frontendIdentity]);
    await b.join([payments], [paymentsIdentity]);
    await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    await a.ackDelta(await a.nextDelta());
    assert.equal(a.applied.size, 3); // the import, its backend and the DefaultAccessIntent
    a.stream!.cancel();
    const again = agentWithCert(f, "a", a.certPem, a.keyPem);
    agents.push(again);
    again.applied = new Map(a.applied);
    await again.connect();
    assert.equal((await again.next()).message.case, "welcome");
    const first = await again.nextDelta();
    assert.equal(first.complete, true);
    assert.deepEqual(first.upserted, []);
    assert.deepEqual(first.removed, []);

    const stale = agentWithCert(f, "a", a.certPem, a.keyPem);
    agents.push(stale);
    stale.applied = new Map([["import/old/gone", "v1"]]);
    await stale.connect();
    await stale.next();
    const d = await stale.nextDelta();
    assert.deepEqual(d.removed, ["import/old/gone"]);
    assert.deepEqual(d.upserted.map((i) => i.name).sort(), [
      "default-access",
      "import/payments/payments-api",
      "import/payments/payments-api/b",
    ]);
  });

  it("checks roles, tokens and policy versions on the admin API", async () => {
    await assert.rejects(
      f.admin.getStatus({}),
      rejectsWith(Code.UNAUTHENTICATED, /missing bearer token/),
    );
    await assert.rejects(
      f.admin.getStatus({}, { metadata: { authorization: "Bearer nope-nope-nope-nope" } }),
      rejectsWith(Code.UNAUTHENTICATED, /unknown bearer token/),
    );
    await assert.rejects(
      f.admin.applyPolicies({ policies: [allowFrontend] }, viewer),
      rejectsWith(Code.PERMISSION_DENIED, /token "dash" has role viewer; this call needs admin/),
    );
    const applied = await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const version = applied.policies[0]?.resourceVersion ?? "";
    assert.match(version, /^\d+$/);
    await f.admin.applyPolicies(
      { policies: [{ ...allowFrontend, priority: 50, resourceVersion: version }] },
      admin,
    );
    await assert.rejects(
      f.admin.applyPolicies(
        { policies: [{ ...allowFrontend, priority: 10, resourceVersion: version }] },
        admin,
      ),
      rejectsWith(Code.ABORTED, /policy "frontend-to-payments": resource_version \d+ is stale/),
    );
    const got = await f.admin.getPolicy({ name: allowFrontend.name }, viewer);
    assert.equal(got.policy?.priority, 50);
    await assert.rejects(
      f.admin.getPolicy({ name: "nope" }, viewer),
      rejectsWith(Code.NOT_FOUND, /policy "nope" not found/),
    );
  });

  it("keeps acknowledged writes across a restart and reports a corrupt store", async () => {
    await f.admin.createCluster({ cluster: { id: "a", labels: { env: "prod" } } }, admin);
    await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    await f.restart();
    const clusters = await f.admin.listClusters({}, viewer);
    assert.deepEqual(
      clusters.clusters.map((c) => [c.cluster?.id, c.cluster?.labels.env]),
      [["a", "prod"]],
    );
    const policies = await f.admin.listPolicies({}, viewer);
    assert.deepEqual(
      policies.policies.map((p) => p.name),
      ["frontend-to-payments"],
    );

    const file = join(f.dataDir, "state.json");
    const good = readFileSync(file);
    writeFileSync(file, good.subarray(0, good.length - 5));
    await assert.rejects(
      createHub({ config: hubConfig(f.dataDir, { listen: "127.0.0.1:0" }) }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(
          err.message,
          new RegExp(`^${file.replace(/[/.]/g, "\\$&")}: corrupt store file: `),
        );
        return true;
      },
    );
    assert.deepEqual(
      readFileSync(file),
      good.subarray(0, good.length - 5),
      "the corrupt file is left as it was",
    );
    writeFileSync(file, good);
  });

  it("revokes a deleted cluster's certificate and ends its stream", async () => {
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await a.join([], [frontendIdentity]);
    await f.admin.deleteCluster({ id: "a" }, admin);
    await assert.rejects(
      async () => {
        for (;;) await a.next();
      },
      rejectsWith(Code.ABORTED, /session replaced or cluster deleted/),
    );
    const again = agentWithCert(f, "a", a.certPem, a.keyPem);
    agents.push(again);
    await again.connect();
    await assert.rejects(
      again.next(),
      rejectsWith(Code.PERMISSION_DENIED, /cluster "a" is not registered/),
    );
  });
});

describe("hub reliability", function () {
  this.timeout(60_000);
  let f: HubFixture;
  const agents: TestAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await f.close();
  });

  it("after a restart sends no removals until every known cluster reconnected", async () => {
    f = await startHub();
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    agents.push(a, b);
    await f.restart({ warmupSeconds: 600 });
    assert.equal((await f.admin.getStatus({}, viewer)).warmingUp, true);

    const a2 = agentWithCert(f, "a", a.certPem, a.keyPem);
    agents.push(a2);
    a2.applied = new Map([["import/old/gone", "v1"]]);
    await a2.connect();
    assert.equal((await a2.next()).message.case, "welcome");
    // Additions go out (the DefaultAccessIntent a2 lacks); removals are withheld while b is
    // missing.
    const warming = await a2.nextDelta();
    assert.deepEqual(
      warming.upserted.map((i) => i.name),
      ["default-access"],
    );
    assert.deepEqual(warming.removed, []);
    await a2.ackDelta(warming);
    await a2.sendSnapshot([], [frontendIdentity]);
    assert.equal((await f.admin.getStatus({}, viewer)).warmingUp, true);

    const b2 = agentWithCert(f, "b", b.certPem, b.keyPem);
    agents.push(b2);
    await b2.connect();
    assert.equal((await b2.next()).message.case, "welcome");
    await b2.sendSnapshot([payments], [paymentsIdentity]);

    const afterWarmup = await a2.nextDelta();
    assert.equal(afterWarmup.complete, true);
    assert.deepEqual(afterWarmup.removed, ["import/old/gone"]);
    assert.equal((await f.admin.getStatus({}, viewer)).warmingUp, false);
  });

  it("keeps a disconnected cluster's services for the grace period, then removes them", async () => {
    f = await startHub({ graceSeconds: 1 });
    const a = await enrollAgent(f, "a");
    const b = await enrollAgent(f, "b");
    agents.push(a, b);
    await a.join([], [frontendIdentity]);
    await b.join([payments], [paymentsIdentity]);
    await f.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const imported = await a.nextDelta();
    assert.deepEqual(imported.upserted.map((i) => i.name).sort(), [
      "import/payments/payments-api",
      "import/payments/payments-api/b",
    ]);
    await a.ackDelta(imported);

    b.stream!.cancel();
    const stale = await eventually(async () => {
      const listed = await f.admin.listCatalog({ filter: { clusterId: "b" } }, viewer);
      assert.equal(listed.services[0]?.stale, true);
      return listed;
    });
    assert.equal(stale.services[0]?.service?.name, "payments-api");
    const status = await f.admin.getCluster({ id: "b" }, viewer);
    assert.equal(status.status?.connected, false);
    assert.ok(status.status?.staleUntil !== undefined);

    // After the grace period, a's import goes away.
    const removal = await a.nextDelta();
    assert.deepEqual([...removal.removed].sort(), [
      "import/payments/payments-api",
      "import/payments/payments-api/b",
    ]);
    const listed = await f.admin.listCatalog({ filter: { clusterId: "b" } }, viewer);
    assert.deepEqual(listed.services, []);
  });
});

describe("hub observability and catalog watch", function () {
  this.timeout(60_000);
  let f: HubFixture;
  const agents: TestAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await f.close();
  });

  it("streams catalog changes to watchers and serves metrics, health and readiness", async () => {
    f = await startHub();
    const b = await enrollAgent(f, "b");
    agents.push(b);
    const abort = new AbortController();
    const events: string[] = [];
    const watching = (async () => {
      try {
        for await (const ev of f.admin.watchCatalog(
          { filter: { clusterId: "b" } },
          { ...viewer, signal: abort.signal },
        )) {
          events.push(
            `${CatalogEventType[ev.type]} ${ev.service?.clusterId}/${ev.service?.service?.namespace}/${ev.service?.service?.name}`,
          );
        }
      } catch (err) {
        if (!(err instanceof GrpcError && err.code === Code.CANCELLED)) throw err;
      }
    })();
    await b.join([payments], [paymentsIdentity]);
    await b.send({
      message: {
        case: "catalogUpdate",
        value: { revision: 2n, removedServices: [{ namespace: "payments", name: "payments-api" }] },
      },
    });
    await eventually(() =>
      assert.deepEqual(events, [
        "UPSERTED b/payments/payments-api",
        "REMOVED b/payments/payments-api",
      ]),
    );
    abort.abort();
    await watching;

    const base = `http://127.0.0.1:${f.hub.metricsPort}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^isthmus_hub_connected_agents 1$/m);
    assert.match(metrics, /^isthmus_hub_config_deltas_sent_total\{cluster="b"\} \d+$/m);
    assert.match(metrics, /^# TYPE isthmus_hub_convergence_seconds histogram$/m);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });
});
