import assert from "node:assert/strict";
import {
  type Controller,
  createController,
  createSecretIdentityStore,
  createSession,
  IDENTITY_SECRET,
  type Session,
} from "@isthmus/agent";
import { eventually, loadApps, noDelay, startCluster, type TestCluster } from "./cluster.js";
import { intent } from "./fixtures.js";
import { startHub, type TestHub } from "./hub.js";

const accessPayments = intent({
  name: "access/payments/payments-api",
  version: "v1",
  kind: {
    case: "accessIntent",
    value: {
      namespace: "payments",
      service: "payments-api",
      selector: { app: "payments-api" },
      allow: [{ principals: ["prod-us.example/ns/web/sa/frontend"] }],
    },
  },
});
const exportPayments = intent({
  name: "export/payments/payments-api",
  version: "v1",
  kind: {
    case: "exportIntent",
    value: {
      namespace: "payments",
      service: "payments-api",
      ports: [{ name: "http", port: 8080 }],
    },
  },
});

describe("agent hub session (in-test gRPC hub over mTLS)", () => {
  let c: TestCluster;
  let hub: TestHub;
  let ctl: Controller;
  let session: Session | undefined;
  const waits: number[] = [];

  async function startAgent(token?: string): Promise<Session> {
    ctl = createController({ client: c.client, clusterId: "prod-eu", delay: noDelay });
    await ctl.start();
    const s = createSession({
      clusterId: "prod-eu",
      hubAddress: hub.address,
      hubCaPem: hub.ca.certPem,
      ...(token === undefined ? {} : { bootstrapToken: token }),
      identityStore: createSecretIdentityStore(c.client, "isthmus-system"),
      controller: ctl,
      agentVersion: "0.1.0",
      debounceMs: 5,
      maxDebounceMs: 20,
      delay: (ms) => {
        waits.push(ms);
        return noDelay();
      },
      random: () => 0.5,
    });
    s.start();
    session = s;
    return s;
  }

  async function stopAgent(): Promise<void> {
    await session?.stop();
    session = undefined;
    await ctl.stop();
  }

  beforeEach(async () => {
    waits.length = 0;
    c = await startCluster();
    loadApps(c.sim);
    c.sim.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "isthmus-system" } });
    hub = await startHub();
  });
  afterEach(async () => {
    await stopAgent();
    await hub.close();
    await c.close();
  });

  it("enrolls, says Hello, sends the catalog, applies config and answers Ack or Nack", async () => {
    await startAgent(hub.token);
    const conn = await hub.nextConnection();
    assert.equal(conn.clusterId, "prod-eu", "the stream runs on the enrolled client certificate");
    assert.equal(hub.enrollments, 1);
    const secret = c.sim.get("v1", "Secret", IDENTITY_SECRET, "isthmus-system");
    assert.ok((secret.data as Record<string, string>)["tls.key"], "the key is kept in the Secret");

    const hello = await conn.next("hello");
    assert.equal(hello.clusterId, "prod-eu");
    assert.equal(hello.mesh?.network, "net-eu");
    assert.equal(hello.mesh?.trustDomain, "prod-eu.example");
    assert.deepEqual(hello.appliedVersions, {});
    assert.deepEqual(hello.warnings, []);

    const snapshot = await conn.next("catalogUpdate");
    assert.equal(snapshot.fullSnapshot, true);
    assert.equal(snapshot.revision, 1n);
    assert.ok(
      snapshot.upsertedServices.some((s) => s.name === "payments-api" && s.readyEndpoints === 2),
      "payments-api in the snapshot",
    );
    assert.ok(
      snapshot.upsertedIdentities.some((i) => i.serviceAccount === "frontend" && i.podCount === 3),
      "frontend identity",
    );
    assert.ok(snapshot.originTime !== undefined, "origin time");

    await conn.send({
      nonce: "n1",
      systemVersion: "sv1",
      upserted: [accessPayments, exportPayments],
      complete: true,
    });
    const ack = await conn.next("ack");
    assert.deepEqual([ack.nonce, ack.systemVersion], ["n1", "sv1"]);
    assert.ok(
      c.sim.find(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "isthmus-allow-payments-api",
        "payments",
      ),
      "applied",
    );

    // A foreign object in the way: NACK naming intent, object and reason.
    c.sim.create({
      apiVersion: "networking.istio.io/v1",
      kind: "ServiceEntry",
      metadata: { name: "isthmus-export-frontend", namespace: "web" },
      spec: {
        hosts: ["frontend.example"],
        location: "MESH_EXTERNAL",
        resolution: "DNS",
        ports: [{ number: 80, name: "http", protocol: "HTTP" }],
      },
    });
    const exportFrontend = intent({
      name: "export/web/frontend",
      version: "v1",
      kind: {
        case: "exportIntent",
        value: { namespace: "web", service: "frontend", ports: [{ name: "http-web", port: 80 }] },
      },
    });
    await eventually(() =>
      assert.ok(
        ctl.cache.liveObject("ServiceEntry", "web", "isthmus-export-frontend"),
        "foreign object cached",
      ),
    );
    await conn.send({ nonce: "n2", systemVersion: "sv2", upserted: [exportFrontend] });
    const nack = await conn.next("nack");
    assert.equal(nack.nonce, "n2");
    assert.equal(nack.errors.length, 1);
    assert.equal(nack.errors[0]!.intentName, "export/web/frontend");
    assert.equal(nack.errors[0]!.object, "ServiceEntry web/isthmus-export-frontend");
    assert.match(nack.errors[0]!.message, /not managed by Isthmus/);

    // Pod churn: a catalog delta with a higher revision.
    c.sim.delete("v1", "Pod", "frontend-2", "web");
    const delta = await conn.next("catalogUpdate", (u) => !u.fullSnapshot);
    assert.ok(delta.revision > 1n, "revision increases");

    // Mesh facts change (the network label goes away): a StatusReport with the warning.
    const ns = c.sim.get("v1", "Namespace", "istio-system");
    c.sim.update({ ...ns, metadata: { ...ns.metadata, labels: {} } });
    const report = await conn.next("statusReport");
    assert.equal(report.mesh?.network, "");
    assert.deepEqual(
      report.warnings.map((w) => w.code),
      ["missing-network-label"],
    );
    assert.ok(
      delta.upsertedIdentities.some((i) => i.serviceAccount === "frontend" && i.podCount === 2),
      "identity delta",
    );
  });

  it("reconnects with backoff and reports its applied versions; a restart needs no token", async () => {
    await startAgent(hub.token);
    let conn = await hub.nextConnection();
    await conn.next("hello");
    await conn.send({
      nonce: "n1",
      systemVersion: "sv1",
      upserted: [accessPayments, exportPayments],
      complete: true,
    });
    await conn.next("ack");

    conn.kill();
    conn = await hub.nextConnection();
    const hello = await conn.next("hello");
    assert.deepEqual(hello.appliedVersions, {
      "access/payments/payments-api": "v1",
      "export/payments/payments-api": "v1",
    });
    assert.ok(waits.length >= 1, "waited before reconnecting");
    assert.equal(
      (await conn.next("catalogUpdate")).revision,
      1n,
      "revisions restart with the session",
    );

    await stopAgent();
    await startAgent(); // no token: the identity comes from the Secret
    conn = await hub.nextConnection();
    const again = await conn.next("hello");
    assert.deepEqual(
      again.appliedVersions,
      { "access/payments/payments-api": "v1", "export/payments/payments-api": "v1" },
      "adopted from the cluster",
    );
    assert.equal(hub.enrollments, 1);
  });

  it("refuses a delta of a lower leader term than one it applied (a deposed hub replica)", async () => {
    await startAgent(hub.token);
    const conn = await hub.nextConnection();
    await conn.next("hello");
    await conn.send({
      nonce: "n1",
      systemVersion: "sv1",
      upserted: [accessPayments],
      complete: true,
      leaderTerm: 7n,
    });
    await conn.next("ack");
    await conn.send({
      nonce: "n2",
      systemVersion: "sv2",
      upserted: [exportPayments],
      leaderTerm: 6n,
    });
    // Not applied: the agent ends the session and connects again (to whoever leads now).
    await hub.nextConnection();
    assert.equal(
      c.sim.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-export-payments-api",
        "payments",
      ),
      undefined,
      "the deposed replica's delta is not applied",
    );
  });

  it("renews the certificate once two thirds of its lifetime have passed", async () => {
    await hub.close();
    hub = await startHub({ validitySeconds: 3 });
    await startAgent(hub.token);
    await (await hub.nextConnection()).next("hello");
    await eventually(() => assert.ok(hub.renewals >= 1, "renewed"), "renewal");
  });
});
