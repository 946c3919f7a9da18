// Hub memory per catalog service: the RSS and heap growth of the hub's process from empty
// (every cluster enrolled and connected) to holding the whole catalog, compiled and ACKed by
// every agent; and what one more service costs, the growth from holding half the clusters'
// catalogs to holding all of them, which leaves out what does not grow with the catalog (V8's
// young generation, up to 128 MiB on Node 24 and resident after the first feed however small;
// compiled code; the first connections' buffers). The simulated agents run in a child process
// (bench/lib/memory-agents.ts): only the hub is in this one.
import { type BenchOptions, createRandom, type Figure } from "./harness.js";
import { startBenchHub } from "./lib/bench-hub.js";
import { clusterId, policies, scale, startAgents } from "./lib/memory-agents.js";

const MiB = 1024 * 1024;

const RSS_PER = "hub RSS per catalog service";
const HEAP_PER = "hub heap per catalog service";
const OUTSIDE_PER = "hub RSS outside the V8 heap per catalog service";
const ADDED_PER = "hub RSS per added catalog service (half to full)";
const ADDED_HEAP_PER = "hub heap per added catalog service (half to full)";
const EMPTY_RSS = "empty hub RSS (process)";
const FULL_RSS = "hub RSS with the catalog (process)";
const EMPTY_HEAP = "empty hub heap used";
const FULL_HEAP = "hub heap used with the catalog";
const FEED = "feed and compile until every agent ACKed";
const INTENTS = "intents held by the agents";

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
  let agents: Awaited<ReturnType<typeof startAgents>> | undefined;
  const status = () => admin.getStatus({}, auth);
  try {
    await admin.applyPolicies({ policies: policies(s, random) }, auth);
    const clusters: { id: string; token: string }[] = [];
    for (let c = 0; c < s.clusters; c++) {
      const id = clusterId(c);
      const labels = { env: c % 2 === 0 ? "prod" : "dev", region: ["eu", "us", "ap"][c % 3]! };
      const created = await admin.createCluster({ cluster: { id, labels } }, auth);
      clusters.push({ id, token: created.bootstrapToken });
    }
    agents = await startAgents({ scale: s, address, caPem: hub.caPem, clusters });
    for (;;) {
      const st = await status();
      if (st.clusters.every((c) => c.connected && c.pendingNonce === "")) break;
      await sleep(100);
    }
    await sleep(500);
    settle();
    const empty = process.memoryUsage();

    const t0 = performance.now();
    const half = Math.floor(s.clusters / 2);
    const order = new Map(clusters.map((c, i) => [c.id, i]));
    const fed = async (clusters: number) => {
      for (;;) {
        const st = await status();
        const done = st.clusters.every(
          (c) =>
            c.serviceCount ===
              (order.get(c.cluster?.id ?? "")! < clusters ? s.servicesPerCluster : 0) &&
            c.pendingNonce === "" &&
            c.inSync,
        );
        if (done) break;
        await sleep(100);
      }
      await sleep(500);
      settle();
      return process.memoryUsage();
    };
    await agents.feed(0, half);
    const halfway = await fed(half);
    await agents.feed(half, s.clusters);
    const full = await fed(s.clusters);
    const feedMs = performance.now() - t0;
    const added = (s.clusters - half) * s.servicesPerCluster;
    const intents = await agents.intents();
    return [
      { name: RSS_PER, unit: "B", samples: [(full.rss - empty.rss) / total] },
      {
        name: HEAP_PER,
        unit: "B",
        samples: [(full.heapUsed - empty.heapUsed) / total],
        reference: RSS_PER,
      },
      {
        // Memory of malloc (buffers, V8's own tables): RSS less the V8 heap's committed size.
        name: OUTSIDE_PER,
        unit: "B",
        samples: [(full.rss - full.heapTotal - (empty.rss - empty.heapTotal)) / total],
        reference: RSS_PER,
      },
      {
        name: ADDED_PER,
        unit: "B",
        samples: [(full.rss - halfway.rss) / added],
        reference: RSS_PER,
      },
      {
        name: ADDED_HEAP_PER,
        unit: "B",
        samples: [(full.heapUsed - halfway.heapUsed) / added],
        reference: ADDED_PER,
      },
      { name: EMPTY_RSS, unit: "MiB", samples: [empty.rss / MiB] },
      { name: FULL_RSS, unit: "MiB", samples: [full.rss / MiB], reference: EMPTY_RSS },
      { name: EMPTY_HEAP, unit: "MiB", samples: [empty.heapUsed / MiB] },
      { name: FULL_HEAP, unit: "MiB", samples: [full.heapUsed / MiB], reference: EMPTY_HEAP },
      { name: FEED, unit: "ms", samples: [feedMs] },
      { name: INTENTS, unit: "intents", samples: [intents] },
    ];
  } finally {
    agents?.stop();
    await bench.close();
  }
}
