// Simulated agents for the failover benchmark: each enrolls once, then keeps a Connect stream
// to the hub as the real agent does (packages/agent/src/session.ts): the configured addresses
// in turn, a follower's `isthmus-leader` hint followed at once, full-jitter backoff otherwise,
// Hello with the versions it holds, a small catalog snapshot, every delta ACKed.
import { createAgentCsr } from "@isthmus/pki";
import {
  AgentService,
  clientCredentials,
  createClient,
  forEachMessage,
  GrpcError,
} from "@isthmus/proto";
import type { HubReplicas } from "../../test/helpers/hub-replicas.js";

const LEADER_HINT = "isthmus-leader";

/** What an agent saw, with performance.now() times: a Welcome, and a complete delta applied
 * (from then on it holds the whole desired config). */
export interface AgentEvents {
  welcome(clusterId: string, at: number): void;
  complete(clusterId: string, at: number): void;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: enrolment, then one reconnect loop per agent over the shared endpoints and events; the loop is the agent's session rules in one place
export async function startFailoverAgents(
  hubs: HubReplicas,
  caPem: string,
  count: number,
  events: AgentEvents,
) {
  const endpoints = hubs.replicas.map((r) => r.address);
  let stopped = false;
  const closers: (() => void)[] = [];
  const identities = [];
  for (let i = 0; i < count; i++) {
    const clusterId = `c${String(i).padStart(3, "0")}`;
    const created = await hubs.atLeader(caPem, (c) =>
      c.createCluster({ cluster: { id: clusterId, labels: { env: "bench" } } }, hubs.call),
    );
    const csr = await createAgentCsr(clusterId);
    const enrolled = await hubs.atLeader(caPem, async () => {
      for (const address of endpoints) {
        const c = createClient(AgentService, address, clientCredentials({ caPem }));
        try {
          return await c.enroll({
            clusterId,
            bootstrapToken: created.bootstrapToken,
            csrPem: csr.csrPem,
          });
        } catch (err) {
          if (!(err instanceof GrpcError) || err.code !== 14) throw err;
        } finally {
          c.close();
        }
      }
      throw new GrpcError(14, "no replica leads");
    });
    identities.push({ clusterId, certPem: enrolled.certificateChainPem, keyPem: csr.keyPem });
  }
  for (const [i, id] of identities.entries()) {
    const applied = new Map<string, string>();
    let next = i % endpoints.length;
    // biome-ignore lint/complexity/noExcessiveLinesPerFunction: one simulated agent's session loop, kept whole so that it reads as the agent's reconnection and redirect rules
    const loop = async () => {
      let hinted: string | undefined;
      let attempt = 0;
      let redirectedSince: number | undefined;
      let deadHint: { address: string; until: number } | undefined;
      while (!stopped) {
        const address = hinted ?? endpoints[next % endpoints.length]!;
        hinted = undefined;
        const client = createClient(
          AgentService,
          address,
          clientCredentials({ caPem, certChainPem: id.certPem, keyPem: id.keyPem }),
        );
        closers[i] = () => client.close();
        let welcomed = false;
        let failure: unknown;
        try {
          const stream = client.connect();
          await stream.send({
            message: {
              case: "hello",
              value: {
                clusterId: id.clusterId,
                agentVersion: "bench",
                mesh: {
                  network: `net-${id.clusterId}`,
                  trustDomain: `${id.clusterId}.local`,
                  eastWestGateways: [{ address: "10.0.0.1", port: 15443 }],
                },
                appliedVersions: Object.fromEntries(applied),
              },
            },
          });
          await forEachMessage(stream.responses, async (m) => {
            if (m.message.case === "welcome") {
              welcomed = true;
              events.welcome(id.clusterId, performance.now());
              attempt = 0;
              await stream.send({
                message: {
                  case: "catalogUpdate",
                  value: {
                    fullSnapshot: true,
                    revision: 1n,
                    upsertedServices: [
                      {
                        namespace: "bench",
                        name: `svc-${id.clusterId}`,
                        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
                        selector: { app: "svc" },
                        readyEndpoints: 1,
                        serviceAccounts: ["svc"],
                        inMesh: true,
                      },
                    ],
                  },
                },
              });
            } else if (m.message.case === "configDelta") {
              const d = m.message.value;
              for (const intent of d.upserted) applied.set(intent.name, intent.version);
              for (const name of d.removed) applied.delete(name);
              await stream.send({
                message: { case: "ack", value: { nonce: d.nonce, systemVersion: d.systemVersion } },
              });
              if (d.complete) events.complete(id.clusterId, performance.now());
            }
          });
        } catch (err) {
          failure = err;
        } finally {
          client.close();
        }
        if (stopped) return;
        // The agent's redirect rules (packages/agent/src/session.ts, redirect()).
        const hint =
          failure instanceof GrpcError ? failure.metadata?.get(LEADER_HINT)[0] : undefined;
        const followed = address === endpoints[next % endpoints.length] ? undefined : address;
        const t = performance.now();
        if (welcomed) redirectedSince = undefined;
        if (typeof hint === "string" || followed !== undefined) {
          redirectedSince ??= t;
          if (t - redirectedSince < 15_000) {
            if (typeof hint !== "string" && followed !== undefined)
              deadHint = { address: followed, until: t + 5_000 };
            const usable =
              typeof hint === "string" &&
              hint !== "" &&
              !(deadHint?.address === hint && t < deadHint.until);
            if (usable) hinted = hint;
            else next++;
            await new Promise((r) =>
              setTimeout(r, usable ? Math.random() * 100 : 200 + Math.random() * 200),
            );
            continue;
          }
        }
        redirectedSince = undefined;
        if (!welcomed || address === endpoints[next % endpoints.length]) next++;
        attempt = welcomed ? 0 : attempt + 1;
        const cap = Math.min(30_000, 500 * 2 ** attempt);
        await new Promise((r) => setTimeout(r, Math.max(250, Math.random() * cap)));
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
