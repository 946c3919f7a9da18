// The memory benchmark's scene and its simulated agents. The agents run in a child process
// (`fork` of this file), apart from the hub, as deployed: decoding 100 clusters' deltas and
// holding 100 client channels would otherwise count as hub memory. The parent (the hub's
// process) drives the child over IPC: connect every agent, feed every catalog, count the
// intents the agents hold.
import { fork } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Action,
  type ConnectionPolicySchema,
  type ServiceSchema,
  Visibility,
  type WorkloadIdentitySchema,
} from "@isthmus/proto";
import { connectSimulatedAgent } from "./bench-hub.js";

export interface Scale {
  clusters: number;
  servicesPerCluster: number;
  /** Logical services (namespace + name); each is backed by clusters*perCluster/logical. */
  logical: number;
  namespaces: number;
  rules: number;
}

export function scale(smoke: boolean): Scale {
  return smoke
    ? { clusters: 10, servicesPerCluster: 100, logical: 500, namespaces: 10, rules: 50 }
    : { clusters: 100, servicesPerCluster: 1000, logical: 5000, namespaces: 50, rules: 500 };
}

/** Services per CatalogUpdate: far below the 32 MiB message limit (about 150 B each). */
const CHUNK = 20_000;

export const clusterId = (i: number) => `c${String(i).padStart(3, "0")}`;
const nsOf = (s: Scale, j: number) => `ns-${j % s.namespaces}`;

type ServiceInit = MessageInitShape<typeof ServiceSchema>;
type IdentityInit = MessageInitShape<typeof WorkloadIdentitySchema>;
type PolicyInit = MessageInitShape<typeof ConnectionPolicySchema>;

/** Logical service j as cluster c backs it: one or two ports, its own service account. */
function service(s: Scale, j: number, c: number): ServiceInit {
  const ports = [{ name: "http", port: 8080, protocol: "TCP" }];
  if (j % 10 < 3) ports.push({ name: "grpc", port: 9090, protocol: "TCP" });
  return {
    namespace: nsOf(s, j),
    name: `svc-${j}`,
    ports,
    labels: { app: `svc-${j}`, team: `team-${j % 37}` },
    selector: { app: `svc-${j}` },
    visibility: Visibility.PRIVATE,
    readyEndpoints: 2 + ((j + c) % 3),
    serviceAccounts: [`sa-${j}`],
    inMesh: j % 33 !== 0,
  };
}

/** The logical services cluster c backs: a window of the logical space, so that each is
 * backed by about clusters * perCluster / logical clusters. */
function backed(s: Scale, c: number): number[] {
  const stride = Math.floor(s.logical / s.clusters);
  return Array.from({ length: s.servicesPerCluster }, (_, i) => (c * stride + i) % s.logical);
}

function identities(s: Scale, c: number): IdentityInit[] {
  return [
    {
      namespace: "web",
      serviceAccount: "frontend",
      labelSets: [{ labels: { app: "frontend" }, podCount: 2 }],
      podCount: 2,
    },
    ...backed(s, c).map((j) => ({
      namespace: nsOf(s, j),
      serviceAccount: `sa-${j}`,
      labelSets: [{ labels: { app: `svc-${j}`, version: "v1" }, podCount: 2 }],
      podCount: 2,
    })),
  ];
}

/** Rules as teams write them: mostly one service account to one service; some whole
 * namespaces, some lists of services, some limited to prod clusters, a few DENY. */
export function policies(s: Scale, random: () => number): PolicyInit[] {
  const pick = () => Math.floor(random() * s.logical);
  const out: PolicyInit[] = [];
  for (let r = 0; r < s.rules; r++) {
    const src = pick();
    const dst = pick();
    const roll = random();
    const from =
      roll < 0.1
        ? [{ namespaces: ["web"] }]
        : [{ namespaces: [nsOf(s, src)], serviceAccounts: [`sa-${src}`] }];
    if (random() < 0.3)
      (from[0] as { clusterLabels?: Record<string, string> }).clusterLabels = {
        env: "prod",
      };
    const to =
      roll > 0.95
        ? [
            {
              namespaces: [nsOf(s, dst)],
              services: Array.from({ length: 10 }, () => `svc-${pick()}`),
            },
          ]
        : [{ namespaces: [nsOf(s, dst)], services: [`svc-${dst}`] }];
    const deny = random() < 0.1;
    out.push({
      name: `rule-${r}`,
      priority: deny ? 50 : 100 + (r % 50),
      action: deny ? Action.DENY : Action.ALLOW,
      from,
      to,
    });
  }
  return out;
}

type ToAgents =
  | {
      type: "start";
      scale: Scale;
      address: string;
      caPem: string;
      clusters: { id: string; token: string }[];
    }
  /** Send the catalogs (full snapshots) of clusters [from, to). */
  | { type: "feed"; from: number; to: number }
  | { type: "count" };

type FromAgents =
  | { type: "ready" }
  | { type: "fed" }
  | { type: "count"; intents: number }
  | { type: "error"; message: string };

export interface AgentsProcess {
  /** Sends the catalogs of clusters [from, to); resolves once all are sent. */
  feed(from: number, to: number): Promise<void>;
  /** Distinct intent names the agents hold, summed. */
  intents(): Promise<number>;
  stop(): void;
}

/** Forks the child and connects one simulated agent per cluster to the hub. */
export async function startAgents(
  start: Omit<Extract<ToAgents, { type: "start" }>, "type">,
): Promise<AgentsProcess> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ["--import", "tsx"],
    stdio: "inherit",
  });
  let pending: ((m: FromAgents) => void) | undefined;
  child.on("message", (m: FromAgents) => pending?.(m));
  child.on("exit", (code, signal) =>
    pending?.({ type: "error", message: `agents process exited (${code ?? signal})` }),
  );
  const ask = <T extends FromAgents["type"]>(m: ToAgents, type: T) =>
    new Promise<Extract<FromAgents, { type: T }>>((resolve, reject) => {
      pending = (answer) => {
        pending = undefined;
        if (answer.type === type) resolve(answer as Extract<FromAgents, { type: T }>);
        else reject(new Error(answer.type === "error" ? answer.message : `got ${answer.type}`));
      };
      child.send(m);
    });
  await ask({ type: "start", ...start }, "ready");
  return {
    feed: async (from, to) => {
      await ask({ type: "feed", from, to }, "fed");
    },
    intents: async () => (await ask({ type: "count" }, "count")).intents,
    stop: () => child.kill(),
  };
}

async function main(): Promise<void> {
  const send = (m: FromAgents) => process.send?.(m);
  process.on("disconnect", () => process.exit(0));
  let s: Scale | undefined;
  const agents: {
    held: Set<string>;
    send: (u: {
      services: ServiceInit[];
      identities: IdentityInit[];
      full: boolean;
    }) => Promise<void>;
  }[] = [];
  const handle = async (m: ToAgents): Promise<FromAgents> => {
    switch (m.type) {
      case "start":
        s = m.scale;
        for (const { id, token } of m.clusters) {
          const held = new Set<string>();
          let revision = 1n;
          const sim = await connectSimulatedAgent(m.address, m.caPem, id, token, (d) => {
            for (const i of d.upserted) held.add(i.name);
            for (const n of d.removed) held.delete(n);
          });
          agents.push({
            held,
            send: (u) =>
              sim.send({
                message: {
                  case: "catalogUpdate",
                  value: {
                    fullSnapshot: u.full,
                    revision: revision++,
                    upsertedServices: u.services,
                    upsertedIdentities: u.identities,
                  },
                },
              }),
          });
        }
        return { type: "ready" };
      case "feed":
        for (const [c, agent] of agents.entries()) {
          if (c < m.from || c >= m.to) continue;
          const list = backed(s!, c);
          for (let at = 0; at < list.length; at += CHUNK) {
            await agent.send({
              full: at === 0,
              services: list.slice(at, at + CHUNK).map((j) => service(s!, j, c)),
              identities: at === 0 ? identities(s!, c) : [],
            });
          }
        }
        return { type: "fed" };
      case "count":
        return { type: "count", intents: agents.reduce((n, a) => n + a.held.size, 0) };
    }
  };
  process.on("message", (m: ToAgents) => {
    handle(m).then(send, (err: unknown) =>
      send({ type: "error", message: err instanceof Error ? err.message : String(err) }),
    );
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
