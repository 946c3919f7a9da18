import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Action,
  type ConnectionPolicySchema,
  type ServiceSchema,
  Visibility,
  type WorkloadIdentitySchema,
} from "@isthmus/proto";
import { type BenchOptions, createRandom, type Figure } from "./harness.js";
import { connectSimulatedAgent, startBenchHub } from "./lib/bench-hub.js";

const MiB = 1024 * 1024;

const RSS_PER = "hub RSS per catalog service";
const HEAP_PER = "hub heap per catalog service";
const EMPTY_RSS = "empty hub RSS (process)";
const FULL_RSS = "hub RSS with the catalog (process)";
const EMPTY_HEAP = "empty hub heap used";
const FULL_HEAP = "hub heap used with the catalog";
const FEED = "feed and compile until every agent ACKed";
const INTENTS = "intents held by the agents";

interface Scale {
  clusters: number;
  servicesPerCluster: number;
  /** Logical services (namespace + name); each is backed by clusters*perCluster/logical. */
  logical: number;
  namespaces: number;
  rules: number;
}

function scale(smoke: boolean): Scale {
  return smoke
    ? { clusters: 10, servicesPerCluster: 100, logical: 500, namespaces: 10, rules: 50 }
    : { clusters: 100, servicesPerCluster: 1000, logical: 5000, namespaces: 50, rules: 500 };
}

/** Services per CatalogUpdate: far below the 32 MiB message limit (about 150 B each). */
const CHUNK = 20_000;

const clusterId = (i: number) => `c${String(i).padStart(3, "0")}`;
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
function policies(s: Scale, random: () => number): PolicyInit[] {
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

interface SimAgent {
  /** Distinct intent names the agent holds. */
  intents(): number;
  send(update: {
    fullSnapshot: boolean;
    services: ServiceInit[];
    identities: IdentityInit[];
  }): Promise<void>;
  close(): void;
}

async function simAgent(
  address: string,
  caPem: string,
  id: string,
  token: string,
): Promise<SimAgent> {
  const held = new Set<string>();
  let revision = 1n;
  const sim = await connectSimulatedAgent(address, caPem, id, token, (d) => {
    for (const i of d.upserted) held.add(i.name);
    for (const n of d.removed) held.delete(n);
  });
  return {
    intents: () => held.size,
    send: (u) =>
      sim.send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: u.fullSnapshot,
            revision: revision++,
            upsertedServices: u.services,
            upsertedIdentities: u.identities,
          },
        },
      }),
    close: () => sim.close(),
  };
}

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
  const random = createRandom();
  const total = s.clusters * s.servicesPerCluster;
  const bench = await startBenchHub({ windowMs: 50, maxMs: 500 });
  const { hub, address, admin } = bench;
  const auth = { ...bench.auth, timeoutMs: 120_000 };
  const agents: SimAgent[] = [];
  const status = () => admin.getStatus({}, auth);
  try {
    await admin.applyPolicies({ policies: policies(s, random) }, auth);
    for (let c = 0; c < s.clusters; c++) {
      const id = clusterId(c);
      const labels = { env: c % 2 === 0 ? "prod" : "dev", region: ["eu", "us", "ap"][c % 3]! };
      const created = await admin.createCluster({ cluster: { id, labels } }, auth);
      agents.push(await simAgent(address, hub.caPem, id, created.bootstrapToken));
    }
    for (;;) {
      const st = await status();
      if (st.clusters.every((c) => c.connected && c.pendingNonce === "")) break;
      await sleep(100);
    }
    await sleep(500);
    settle();
    const empty = process.memoryUsage();

    const t0 = performance.now();
    for (let c = 0; c < s.clusters; c++) {
      const list = backed(s, c);
      for (let start = 0; start < list.length; start += CHUNK) {
        await agents[c]!.send({
          fullSnapshot: start === 0,
          services: list.slice(start, start + CHUNK).map((j) => service(s, j, c)),
          identities: start === 0 ? identities(s, c) : [],
        });
      }
    }
    for (;;) {
      const st = await status();
      const done = st.clusters.every(
        (c) => c.serviceCount === s.servicesPerCluster && c.pendingNonce === "" && c.inSync,
      );
      if (done) break;
      await sleep(100);
    }
    const feedMs = performance.now() - t0;
    await sleep(500);
    settle();
    const full = process.memoryUsage();
    const intents = agents.reduce((n, a) => n + a.intents(), 0);
    return [
      {
        name: RSS_PER,
        unit: "B",
        samples: [(full.rss - empty.rss) / total],
      },
      {
        name: HEAP_PER,
        unit: "B",
        samples: [(full.heapUsed - empty.heapUsed) / total],
        reference: RSS_PER,
      },
      { name: EMPTY_RSS, unit: "MiB", samples: [empty.rss / MiB] },
      { name: FULL_RSS, unit: "MiB", samples: [full.rss / MiB], reference: EMPTY_RSS },
      { name: EMPTY_HEAP, unit: "MiB", samples: [empty.heapUsed / MiB] },
      { name: FULL_HEAP, unit: "MiB", samples: [full.heapUsed / MiB], reference: EMPTY_HEAP },
      { name: FEED, unit: "ms", samples: [feedMs] },
      { name: INTENTS, unit: "intents", samples: [intents] },
    ];
  } finally {
    for (const a of agents) a.close();
    await bench.close();
  }
}
