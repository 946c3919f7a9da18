// Two hubs on one etcd: what an admin writes at one reaches the other's registry and policy
// engine through the store's watch (clusters, enrollments, policies, deletions), so agents
// connected to either get the same intents. Real etcd, real hubs, agents over gRPC.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHub, openEtcdStore } from "@isthmus/hub";
import { AdminService, Code, clientCredentials, createClient, GrpcError } from "@isthmus/proto";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
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
  type TestAgent,
  viewer,
} from "../helpers/hub-fixture.js";

const allowFrontend = frontendToPayments("a");

/** A hub on `dataDir` whose store is etcd under `prefix`. Without election, so that both
 * serve: what is tested here is the state they share (ha-failover.test.ts tests the election). */
async function replica(etcd: EtcdCluster, prefix: string, dataDir: string): Promise<HubFixture> {
  const hub = await createHub({
    config: hubConfig(dataDir),
    // A short request timeout: the test of an etcd that does not answer waits for it.
    store: openEtcdStore({ endpoints: etcd.endpoints, prefix, requestTimeoutMs: 1500 }),
    election: false,
  });
  const address = `localhost:${hub.port}`;
  const client = createClient(AdminService, address, clientCredentials({ caPem: hub.caPem }));
  return {
    hub,
    dataDir,
    address,
    admin: client,
    restart: () => Promise.reject(new Error("not used")),
    async close() {
      client.close();
      await hub.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

describe("hub replicas on one etcd", function () {
  this.timeout(60_000);
  let etcd: EtcdCluster | undefined;
  let a: HubFixture | undefined;
  let b: HubFixture | undefined;
  const agents: TestAgent[] = [];
  let run = 0;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });
  beforeEach(async function () {
    if (etcd === undefined) this.skip();
    const prefix = `/replicas-${++run}/`;
    a = await replica(etcd, prefix, await mkdtemp(join(tmpdir(), "isthmus-hub-a-")));
    // Replica b has a data dir of its own: it takes the control-plane CA from the store, so an
    // agent enrolled by one replica is trusted by the other.
    b = await replica(etcd, prefix, await mkdtemp(join(tmpdir(), "isthmus-hub-b-")));
  });
  afterEach(async () => {
    for (const agent of agents.splice(0)) agent.close();
    await a?.close();
    await b?.close();
  });

  it("serves agents at one replica from what an admin wrote at the other", async () => {
    assert.equal(b!.hub.caPem, a!.hub.caPem, "one control-plane CA");
    const enrolledA = await enrollAgent(a!, "a", { env: "prod" });
    const enrolledB = await enrollAgent(a!, "b", { env: "prod" });
    // Enrolled at replica a (the serials are in the store): they connect to replica b.
    await eventually(async () => {
      const listed = await b!.admin.listClusters({}, viewer);
      assert.deepEqual(
        listed.clusters.map((c) => `${c.cluster?.id} ${c.enrolled} ${c.cluster?.labels.env}`),
        ["a true prod", "b true prod"],
      );
    });
    const agentA = agentWithCert(b!, "a", enrolledA.certPem, enrolledA.keyPem);
    const agentB = agentWithCert(b!, "b", enrolledB.certPem, enrolledB.keyPem);
    enrolledA.close();
    enrolledB.close();
    agents.push(agentA, agentB);
    await agentA.join([], [frontendIdentity]);
    await agentB.join([payments], [paymentsIdentity]);

    const applied = await a!.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const delta = await agentA.nextDelta();
    assert.deepEqual(delta.upserted.map((i) => `${i.name} ${i.kind.case}`).sort(), [
      "import/payments/payments-api importIntent",
      "import/payments/payments-api/b importBackendIntent",
    ]);
    const atB = await b!.admin.getPolicy({ name: allowFrontend.name }, viewer);
    assert.equal(atB.policy?.resourceVersion, applied.policies[0]?.resourceVersion);

    await a!.admin.deleteCluster({ id: "a" }, admin);
    await assert.rejects(
      async () => {
        for (;;) await agentA.next();
      },
      (err: unknown) =>
        err instanceof GrpcError &&
        err.code === Code.ABORTED &&
        /cluster deleted/.test(err.message),
    );
    await eventually(async () =>
      assert.deepEqual(
        (await b!.admin.listClusters({}, viewer)).clusters.map((c) => c.cluster?.id),
        ["b"],
      ),
    );
  });

  it("answers UNAVAILABLE naming etcd while etcd does not answer, and writes after", async () => {
    const member = etcd!.members[0]!;
    member.pause();
    try {
      await assert.rejects(
        a!.admin.applyPolicies({ policies: [allowFrontend] }, admin),
        (err: unknown) =>
          err instanceof GrpcError &&
          err.code === Code.UNAVAILABLE &&
          /^policies frontend-to-payments: not written: etcd http:\/\/127\.0\.0\.1:\d+ .*did not answer within 1500 ms/.test(
            err.message,
          ),
      );
    } finally {
      member.resume();
    }
    // The write in doubt may have been applied meanwhile; either way the next one goes.
    const applied = await eventually(
      () => a!.admin.applyPolicies({ policies: [{ ...allowFrontend, priority: 7 }] }, admin),
      10_000,
      200,
    );
    assert.equal(applied.policies[0]?.priority, 7);
    await eventually(async () =>
      assert.equal(
        (await b!.admin.getPolicy({ name: allowFrontend.name }, viewer)).policy?.priority,
        7,
      ),
    );
  });

  it("refuses a stale write at one replica after the other changed the policy", async () => {
    const first = await a!.admin.applyPolicies({ policies: [allowFrontend] }, admin);
    const version = first.policies[0]!.resourceVersion;
    await eventually(async () =>
      assert.equal(
        (await b!.admin.getPolicy({ name: allowFrontend.name }, viewer)).policy?.resourceVersion,
        version,
      ),
    );
    await b!.admin.applyPolicies(
      { policies: [{ ...allowFrontend, priority: 50, resourceVersion: version }] },
      admin,
    );
    await assert.rejects(
      a!.admin.applyPolicies(
        { policies: [{ ...allowFrontend, priority: 70, resourceVersion: version }] },
        admin,
      ),
      (err: unknown) => err instanceof GrpcError && err.code === Code.ABORTED,
    );
    await eventually(async () =>
      assert.equal(
        (await a!.admin.getPolicy({ name: allowFrontend.name }, viewer)).policy?.priority,
        50,
      ),
    );
  });
});
