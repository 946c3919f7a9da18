import assert from "node:assert/strict";
import { createAgentCsr } from "@isthmus/pki";
import {
  Action,
  AgentService,
  Code,
  clientCredentials,
  createClient,
  GrpcError,
  Visibility,
} from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import { paymentsService as payments } from "../helpers/fixtures.js";
import {
  admin,
  agentWithCert,
  enrollAgent,
  type HubFixture,
  startHub,
  type TestAgent,
  viewer,
} from "../helpers/hub-fixture.js";

const frontend = {
  namespace: "web",
  name: "frontend",
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  selector: { app: "frontend" },
  visibility: Visibility.PRIVATE,
  readyEndpoints: 1,
  serviceAccounts: ["frontend"],
  inMesh: true,
};
const identity = (namespace: string, serviceAccount: string) => ({
  namespace,
  serviceAccount,
  labelSets: [{ labels: { app: serviceAccount }, podCount: 1 }],
  podCount: 1,
});
/** Every web workload of every cluster may call payments. */
const webToPayments = {
  name: "web-to-payments",
  priority: 100,
  action: Action.ALLOW,
  from: [{ clusters: ["*"], namespaces: ["web"] }],
  to: [{ namespaces: ["payments"], services: ["payments-api"] }],
};
const mesh = (trustDomain: string) => ({
  network: "net",
  trustDomain,
  eastWestGateways: [{ address: "192.0.2.1", port: 15443 }],
});

/** `agent.join`, with the mesh facts of trust domain `td` when given. */
const join = (agent: TestAgent, services: object[], identities: object[], td?: string) =>
  agent.join(services, identities, td === undefined ? {} : { mesh: mesh(td) });

/** Waits for the hub to end the agent's stream; checks the status code and message. */
async function endedWith(agent: TestAgent, code: Code, pattern: RegExp): Promise<void> {
  await assert.rejects(
    async () => {
      for (;;) await agent.next();
    },
    (err: unknown) => {
      assert.ok(err instanceof GrpcError, String(err));
      assert.equal(Code[err.code], Code[code], err.message);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

async function rejectedCount(f: HubFixture, cluster: string, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${f.hub.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) =>
      l.startsWith(
        `isthmus_hub_agent_reports_rejected_total{cluster="${cluster}",reason="${reason}"}`,
      ),
    );
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** Every principal in the intents the hub holds for a cluster. */
function principals(f: HubFixture, clusterId: string): string[] {
  const out: string[] = [];
  for (const [, intent] of f.hub.context.engine.intents(clusterId)) {
    if (intent.kind.case !== "accessIntent") continue;
    for (const rule of [...intent.kind.value.allow, ...intent.kind.value.deny])
      out.push(...rule.principals);
  }
  return out.sort();
}

describe("hub: what agents report", function () {
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

  it("refuses the wildcard principals of issue 17 and keeps the cluster's last good catalog", async () => {
    const attacker = await enrollAgent(f, "a");
    const victim = await enrollAgent(f, "b");
    agents.push(attacker, victim);
    await f.admin.applyPolicies({ policies: [webToPayments] }, admin);
    await join(victim, [payments], [identity("payments", "payments")]);
    await join(attacker, [frontend], [identity("web", "frontend")]);
    await eventually(async () =>
      assert.deepEqual(principals(f, "b"), ["a.local/ns/web/sa/frontend"]),
    );

    // Trust domain "*": every workload of every cluster.
    await attacker.connect({ mesh: mesh("*") });
    await endedWith(
      attacker,
      Code.INVALID_ARGUMENT,
      /^invalid isthmus\.v1\.ConnectRequest: hello\.mesh\.trust_domain: .*\[string\.pattern\]: got "\*"$/,
    );
    // Service account "*" in a trust domain of its own.
    await attacker.connect();
    await attacker.next();
    await attacker.sendSnapshot([{ ...frontend, serviceAccounts: ["*"] }], [identity("web", "*")]);
    await endedWith(
      attacker,
      Code.INVALID_ARGUMENT,
      /upserted_services\[0\]\.service_accounts\[0\]: .*: got "\*"; .*upserted_identities\[0\]\.service_account: .*: got "\*"$/,
    );
    // Visibility 99, a control character in a label key, a path with a NUL as service account.
    await attacker.connect();
    await attacker.next();
    await attacker.sendSnapshot(
      [
        {
          ...frontend,
          visibility: 99 as Visibility,
          labels: { "app\u0007x": "v" },
          serviceAccounts: ["../../x\0"],
        },
      ],
      [],
    );
    await endedWith(
      attacker,
      Code.INVALID_ARGUMENT,
      /labels\["app\\u0007x"\]: .*: got "app\\u0007x"/,
    );
    // (the whole message, checked piece by piece)
    await attacker.connect();
    await attacker.next();
    await attacker.sendSnapshot(
      [{ ...frontend, visibility: 99 as Visibility }],
      [identity("web", "../../x\0")],
    );
    await endedWith(
      attacker,
      Code.INVALID_ARGUMENT,
      /visibility: value must be one of the defined enum values \[enum\.defined_only\]: got 99; .*service_account: .*: got "\.\.\/\.\.\/x\\u0000"$/,
    );
    // Another cluster's trust domain.
    await attacker.connect({ mesh: mesh("b.local") });
    await endedWith(
      attacker,
      Code.PERMISSION_DENIED,
      /^hello\.mesh\.trust_domain: "b\.local" is not the trust domain of cluster "a" \("a\.local", reported first after enrolling\)$/,
    );

    // Nothing of it reached the engine; the cluster's last good catalog is kept.
    assert.deepEqual(principals(f, "b"), ["a.local/ns/web/sa/frontend"]);
    const listed = await f.admin.listCatalog({ filter: { clusterId: "a" } }, viewer);
    assert.deepEqual(
      listed.services.map((s) => [s.service?.name, s.service?.serviceAccounts]),
      [["frontend", ["frontend"]]],
    );
    assert.equal(await rejectedCount(f, "a", "contract"), 4);
    assert.equal(await rejectedCount(f, "a", "trust-domain"), 1);
    assert.equal(await rejectedCount(f, "b", "contract"), 0);
  });

  it("holds an agent to the trust domain configured for its cluster", async () => {
    await f.admin.createCluster({ cluster: { id: "c", trustDomain: "c.example" } }, admin);
    const { bootstrapToken } = await f.admin.rotateClusterToken({ id: "c" }, admin);
    const csr = await createAgentCsr("c");
    const anonymous = createClient(
      AgentService,
      f.address,
      clientCredentials({ caPem: f.hub.caPem }),
    );
    const enrolled = await anonymous.enroll({ clusterId: "c", bootstrapToken, csrPem: csr.csrPem });
    anonymous.close();
    const c = agentWithCert(f, "c", enrolled.certificateChainPem, csr.keyPem);
    agents.push(c);
    await c.connect({ mesh: mesh("c.local") });
    await endedWith(
      c,
      Code.PERMISSION_DENIED,
      /^hello\.mesh\.trust_domain: "c\.local" is not the trust domain of cluster "c" \("c\.example", configured at the hub\)$/,
    );
    await join(c, [], [identity("web", "frontend")], "c.example");
    await c.send({ message: { case: "statusReport", value: { mesh: mesh("other.example") } } });
    await endedWith(
      c,
      Code.PERMISSION_DENIED,
      /^status_report\.mesh\.trust_domain: "other\.example"/,
    );
    assert.equal(await rejectedCount(f, "c", "trust-domain"), 2);
    const status = await f.admin.getCluster({ id: "c" }, viewer);
    assert.equal(status.status?.mesh?.trustDomain, "c.example");
  });

  it("refuses a catalog update that contradicts itself", async () => {
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await join(
      a,
      [
        payments,
        { ...payments, ports: [...payments.ports, { name: "https", port: 9443, protocol: "TCP" }] },
      ],
      [{ ...identity("web", "frontend"), podCount: 0 }],
    );
    await endedWith(
      a,
      Code.INVALID_ARGUMENT,
      /^catalog update 1 refused: catalog_update\.upserted_services\[1\]: service payments\/payments-api is also upserted_services\[0\]; catalog_update\.upserted_services\[1\]\.ports\[1\]: name "https" is also ports\[0\]; catalog_update\.upserted_identities\[0\]\.pod_count: 0, but its label sets count 1 pods$/,
    );
    assert.equal(await rejectedCount(f, "a", "catalog"), 1);
    const listed = await f.admin.listCatalog({ filter: { clusterId: "a" } }, viewer);
    assert.deepEqual(listed.services, []);
  });

  it("keeps the conflicts an agent reports for status and explain, and refuses a report that contradicts itself", async () => {
    await f.admin.applyPolicies({ policies: [webToPayments] }, admin);
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await join(a, [payments], [identity("payments", "payments")], "a.local");
    const widens = {
      kind: "widens-access",
      object: "AuthorizationPolicy payments/open",
      service: "payments/payments-api",
      ports: [8443],
      principals: ["*/ns/*/sa/*"],
      reason: "ALLOW policy matches */ns/*/sa/* on port 8443",
    };
    await a.send({ message: { case: "conflictReport", value: { conflicts: [widens] } } });
    const status = await eventually(async () => {
      const s = await f.admin.getCluster({ id: "a" }, viewer);
      assert.equal(s.status?.conflicts.length, 1);
      return s.status!;
    });
    assert.equal(status.conflicts[0]!.object, "AuthorizationPolicy payments/open");

    await a.send({
      message: {
        case: "conflictReport",
        value: {
          conflicts: [
            widens,
            { ...widens, ports: [8443, 8443] },
            { ...widens, object: "AuthorizationPolicy payments/x", kind: "permissive-mtls" },
          ],
        },
      },
    });
    await endedWith(
      a,
      Code.INVALID_ARGUMENT,
      /^conflict report refused: conflict_report\.conflicts\[1\]: widens-access AuthorizationPolicy payments\/open payments\/payments-api is also conflicts\[0\]; conflict_report\.conflicts\[1\]\.ports: a port appears twice; conflict_report\.conflicts\[2\]\.object: a permissive-mtls conflict cannot name AuthorizationPolicy; conflict_report\.conflicts\[2\]\.principals: a permissive-mtls conflict lists no principals$/,
    );
    assert.equal(await rejectedCount(f, "a", "conflicts"), 1);
  });

  it("refuses conflicts that break the contract: a wildcard object name, an unknown kind", async () => {
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await join(a, [payments], [identity("payments", "payments")], "a.local");
    await a.send({
      message: {
        case: "conflictReport",
        value: {
          conflicts: [
            {
              kind: "takes-over",
              object: "AuthorizationPolicy payments/*",
              service: "payments/payments-api",
            },
          ],
        },
      },
    });
    await endedWith(
      a,
      Code.INVALID_ARGUMENT,
      /conflict_report\.conflicts\[0\]\.kind: .*takes-over/,
    );
  });

  it("passes an agent's objects to GetClusterObjects after checking each one, and refuses a bad one naming it", async () => {
    const a = await enrollAgent(f, "a");
    agents.push(a);
    await join(a, [payments], [identity("payments", "payments")], "a.local");
    const answer = async (objectsJson: string[]) => {
      let msg = await a.next();
      // Deltas that the snapshot brought come first.
      while (msg.message.case === "configDelta") {
        await a.ackDelta(msg.message.value);
        msg = await a.next();
      }
      assert.equal(msg.message.case, "objectsRequest");
      const requestId = msg.message.case === "objectsRequest" ? msg.message.value.requestId : "";
      await a.send({ message: { case: "objectsReport", value: { requestId, objectsJson } } });
    };
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "payments" } };
    const [got] = await Promise.all([
      f.admin.getClusterObjects({ clusterId: "a" }, admin),
      answer([JSON.stringify(pod)]),
    ]);
    assert.deepEqual(
      got.objectsJson.map((j) => JSON.parse(j)),
      [pod],
    );

    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "x" } };
    const [refused] = await Promise.all([
      f.admin.getClusterObjects({ clusterId: "a" }, admin).then(
        () => undefined,
        (err: unknown) => err as GrpcError,
      ),
      answer([JSON.stringify(pod), JSON.stringify(secret)]),
    ]);
    assert.equal(refused?.code, Code.DATA_LOSS);
    assert.match(
      refused!.message,
      /cluster "a" reported objects the hub refuses: objects_report\.objects_json\[1\]\.kind: "Secret" is not a kind the mesh model reads/,
    );
    assert.equal(await rejectedCount(f, "a", "objects"), 1);
    await assert.rejects(
      f.admin.getClusterObjects({ clusterId: "a" }, viewer),
      (err: GrpcError) => err.code === Code.PERMISSION_DENIED,
    );
  });
});
