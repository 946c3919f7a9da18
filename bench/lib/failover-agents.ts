// Simulated agents for the failover benchmark: each enrolls once, then keeps a Connect stream
// to the hub as the real agent does (packages/agent/src/session.ts): the agent's own
// reconnection rules (createHubEndpoints), Hello with the versions it holds, a small catalog
// snapshot, every delta ACKed.
import { createHubEndpoints } from "@isthmus/agent";
import { createAgentCsr } from "@isthmus/pki";
import {
  AgentService,
  Code,
  clientCredentials,
  createClient,
  forEachMessage,
  GrpcError,
  type ServiceClient,
} from "@isthmus/proto";
import type { HubReplicas } from "../../test/helpers/hub-replicas.js";

/** What an agent saw, with performance.now() times: a Welcome, and a complete delta applied
 * (from then on it holds the whole desired config). */
export interface AgentEvents {
  welcome(clusterId: string, at: number): void;
  complete(clusterId: string, at: number): void;
}

interface Identity {
  clusterId: string;
  certPem: string;
  keyPem: string;
}

/** Creates cluster `clusterId` at the leader and enrolls it there. */
async function enroll(hubs: HubReplicas, caPem: string, clusterId: string): Promise<Identity> {
  const created = await hubs.atLeader(caPem, (c) =>
    c.createCluster({ cluster: { id: clusterId, labels: { env: "bench" } } }, hubs.call),
  );
  const csr = await createAgentCsr(clusterId);
  const enrolled = await hubs.atLeader(caPem, async () => {
    for (const { address } of hubs.replicas) {
      const c = createClient(AgentService, address, clientCredentials({ caPem }));
      try {
        return await c.enroll({
          clusterId,
          bootstrapToken: created.bootstrapToken,
          csrPem: csr.csrPem,
        });
      } catch (err) {
        if (!(err instanceof GrpcError) || err.code !== Code.UNAVAILABLE) throw err;
      } finally {
        c.close();
      }
    }
    throw new GrpcError(Code.UNAVAILABLE, "no replica leads");
  });
  return { clusterId, certPem: enrolled.certificateChainPem, keyPem: csr.keyPem };
}

/** One Connect stream, until it ends: Hello, then the snapshot on Welcome, every delta ACKed. */
async function session(
  client: ServiceClient<(typeof AgentService)["method"]>,
  clusterId: string,
  applied: Map<string, string>,
  events: AgentEvents,
  welcomed: () => void,
): Promise<void> {
  const stream = client.connect();
  const mesh = {
    network: `net-${clusterId}`,
    trustDomain: `${clusterId}.local`,
    eastWestGateways: [{ address: "10.0.0.1", port: 15443 }],
  };
  const appliedVersions = Object.fromEntries(applied);
  await stream.send({
    message: { case: "hello", value: { clusterId, agentVersion: "bench", mesh, appliedVersions } },
  });
  await forEachMessage(stream.responses, async (m) => {
    if (m.message.case === "welcome") {
      welcomed();
      events.welcome(clusterId, performance.now());
      const service = {
        namespace: "bench",
        name: `svc-${clusterId}`,
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        selector: { app: "svc" },
        readyEndpoints: 1,
        serviceAccounts: ["svc"],
        inMesh: true,
      };
      await stream.send({
        message: {
          case: "catalogUpdate",
          value: { fullSnapshot: true, revision: 1n, upsertedServices: [service] },
        },
      });
    } else if (m.message.case === "configDelta") {
      const d = m.message.value;
      for (const intent of d.upserted) applied.set(intent.name, intent.version);
      for (const name of d.removed) applied.delete(name);
      await stream.send({
        message: { case: "ack", value: { nonce: d.nonce, systemVersion: d.systemVersion } },
      });
      if (d.complete) events.complete(clusterId, performance.now());
    }
  });
}

export async function startFailoverAgents(
  hubs: HubReplicas,
  caPem: string,
  count: number,
  events: AgentEvents,
) {
  const endpoints = hubs.replicas.map((r) => r.address);
  let stopped = false;
  const closers: (() => void)[] = [];
  const identities: Identity[] = [];
  for (let i = 0; i < count; i++)
    identities.push(await enroll(hubs, caPem, `c${String(i).padStart(3, "0")}`));
  for (const [i, id] of identities.entries()) {
    const applied = new Map<string, string>();
    // Each agent starts at a different replica, as agents given the list in another order.
    const addresses = endpoints.map((_, k) => endpoints[(i + k) % endpoints.length]!).join(",");
    const dialing = createHubEndpoints({
      addresses,
      random: Math.random,
      nowMs: () => performance.now(),
    });
    // Once per agent, as the real agent: building TLS credentials parses the key and chain.
    const credentials = clientCredentials({ caPem, certChainPem: id.certPem, keyPem: id.keyPem });
    const loop = async () => {
      while (!stopped) {
        const client = createClient(AgentService, dialing.target(), credentials);
        closers[i] = () => client.close();
        let welcomed = false;
        let failure: unknown;
        try {
          await session(client, id.clusterId, applied, events, () => {
            welcomed = true;
          });
        } catch (err) {
          failure = err;
        } finally {
          client.close();
        }
        if (stopped) return;
        const { waitMs } = dialing.ended(welcomed, failure);
        await new Promise((r) => setTimeout(r, waitMs));
      }
    };
    void loop();
  }
  return {
    leader: async () => hubs.leader(),
    close() {
      stopped = true;
      for (const close of closers) close?.();
    },
  };
}
