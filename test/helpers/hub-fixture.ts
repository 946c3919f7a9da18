// A hub on loopback TLS with an admin client, and agents that enroll and stream like the
// real agent does, for hub tests.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHub, defaultHubConfig, type Hub, type HubConfig } from "@isthmus/hub";
import { createAgentCsr } from "@isthmus/pki";
import {
  AdminService,
  AgentService,
  type CatalogUpdateSchema,
  type ClientBidiStream,
  type ConfigDelta,
  type ConnectRequestSchema,
  type ConnectResponse,
  type ConnectResponseSchema,
  clientCredentials,
  createClient,
  type HelloSchema,
  type ServiceClient,
} from "@isthmus/proto";

export const ADMIN_TOKEN = "admin-token-0123456789abcdef";
export const VIEWER_TOKEN = "viewer-token-0123456789abcdef";
export const admin = { metadata: { authorization: `Bearer ${ADMIN_TOKEN}` } };
export const viewer = { metadata: { authorization: `Bearer ${VIEWER_TOKEN}` } };

export interface HubFixture {
  hub: Hub;
  dataDir: string;
  address: string;
  admin: ServiceClient<(typeof AdminService)["method"]>;
  restart(overrides?: Partial<HubConfig>): Promise<void>;
  close(): Promise<void>;
}

export function hubConfig(dataDir: string, overrides: Partial<HubConfig> = {}): HubConfig {
  return {
    ...defaultHubConfig,
    listen: "127.0.0.1:0",
    metricsListen: "127.0.0.1:0",
    dataDir,
    adminTokens: [
      { name: "ops", role: "admin", token: ADMIN_TOKEN },
      { name: "dash", role: "viewer", token: VIEWER_TOKEN },
    ],
    debounce: { windowMs: 5, maxMs: 50 },
    warmupSeconds: 0,
    ...overrides,
  };
}

export async function startHub(overrides: Partial<HubConfig> = {}): Promise<HubFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), "isthmus-hub-"));
  const f = {} as HubFixture;
  const boot = async (o: Partial<HubConfig>) => {
    f.hub = await createHub({ config: hubConfig(dataDir, o) });
    f.address = `localhost:${f.hub.port}`;
    f.admin = createClient(AdminService, f.address, clientCredentials({ caPem: f.hub.caPem }));
  };
  await boot(overrides);
  f.dataDir = dataDir;
  f.restart = async (o = overrides) => {
    f.admin.close();
    await f.hub.close();
    await boot(o);
  };
  f.close = async () => {
    f.admin.close();
    await f.hub.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return f;
}

/** An agent as the hub sees it: enrolled, with a stream and the deltas it received. */
export interface TestAgent {
  clusterId: string;
  certPem: string;
  keyPem: string;
  client: ServiceClient<(typeof AgentService)["method"]>;
  stream: ClientBidiStream<typeof ConnectRequestSchema, typeof ConnectResponseSchema> | undefined;
  /** Next message from the hub. */
  next(): Promise<ConnectResponse>;
  /** Next ConfigDelta from the hub. */
  nextDelta(): Promise<ConfigDelta>;
  connect(hello?: Partial<MessageInitShape<typeof HelloSchema>>): Promise<void>;
  send(message: MessageInitShape<typeof ConnectRequestSchema>): Promise<void>;
  /** Applied intent versions, as the agent tracks them from ACKed deltas. */
  applied: Map<string, string>;
  ackDelta(delta: ConfigDelta): Promise<void>;
  /** Sends a full catalog snapshot (revision 1 unless given). */
  sendSnapshot(services: object[], identities: object[], revision?: bigint): Promise<void>;
  /** Connects, checks the Welcome, ACKs the first delta (which must be complete) and sends a
   * full snapshot of revision 1. */
  join(
    services: object[],
    identities: object[],
    hello?: Partial<MessageInitShape<typeof HelloSchema>>,
  ): Promise<void>;
  close(): void;
}

export async function enrollAgent(
  f: HubFixture,
  clusterId: string,
  labels: Record<string, string> = {},
): Promise<TestAgent> {
  const created = await f.admin.createCluster({ cluster: { id: clusterId, labels } }, admin);
  const csr = await createAgentCsr(clusterId);
  const anonymous = createClient(
    AgentService,
    f.address,
    clientCredentials({ caPem: created.hubCaPem }),
  );
  const enrolled = await anonymous.enroll({
    clusterId,
    bootstrapToken: created.bootstrapToken,
    csrPem: csr.csrPem,
  });
  anonymous.close();
  return agentWithCert(f, clusterId, enrolled.certificateChainPem, csr.keyPem);
}

export function agentWithCert(
  f: HubFixture,
  clusterId: string,
  certPem: string,
  keyPem: string,
): TestAgent {
  const client = createClient(
    AgentService,
    f.address,
    clientCredentials({ caPem: f.hub.caPem, certChainPem: certPem, keyPem }),
  );
  let responses: AsyncIterator<ConnectResponse> | undefined;
  const agent: TestAgent = {
    clusterId,
    certPem,
    keyPem,
    client,
    stream: undefined,
    applied: new Map(),
    async next() {
      const r = await responses!.next();
      if (r.done) throw new Error(`stream of ${clusterId} ended`);
      return r.value;
    },
    async nextDelta() {
      for (;;) {
        const m = await agent.next();
        if (m.message.case === "configDelta") return m.message.value;
      }
    },
    async connect(hello = {}) {
      agent.stream = client.connect();
      responses = agent.stream.responses[Symbol.asyncIterator]();
      await agent.stream.send({
        message: {
          case: "hello",
          value: {
            clusterId,
            agentVersion: "test",
            appliedVersions: Object.fromEntries(agent.applied),
            mesh: {
              network: `net-${clusterId}`,
              trustDomain: `${clusterId}.local`,
              eastWestGateways: [{ address: `10.0.0.${clusterId.length}`, port: 15443 }],
            },
            ...hello,
          } as MessageInitShape<typeof HelloSchema>,
        },
      });
    },
    send: (message) => agent.stream!.send(message),
    async ackDelta(delta) {
      for (const i of delta.upserted) agent.applied.set(i.name, i.version);
      for (const n of delta.removed) agent.applied.delete(n);
      await agent.send({
        message: { case: "ack", value: { nonce: delta.nonce, systemVersion: delta.systemVersion } },
      });
    },
    sendSnapshot: (services, identities, revision = 1n) =>
      agent.send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: true,
            revision,
            upsertedServices: services,
            upsertedIdentities: identities,
          } as MessageInitShape<typeof CatalogUpdateSchema>,
        },
      }),
    async join(services, identities, hello = {}) {
      await agent.connect(hello);
      assert.equal((await agent.next()).message.case, "welcome", clusterId);
      const first = await agent.nextDelta();
      assert.equal(first.complete, true, `${clusterId}: the first delta is complete`);
      await agent.ackDelta(first);
      await agent.sendSnapshot(services, identities);
    },
    close() {
      agent.stream?.cancel();
      client.close();
    },
  };
  return agent;
}
