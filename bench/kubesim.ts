// kubesim benchmark: what holding a big cluster costs (100k pods, heap and RSS), how long a
// list of 10k objects takes over HTTP (target: under 200 ms), and how long one change takes
// to reach 50 HTTP watchers (target: under 20 ms median). All over loopback, one process.
import type { IncomingMessage } from "node:http";
import { Agent, get } from "node:http";
import { pathToFileURL } from "node:url";
import type { KubeObject, KubeSim } from "@isthmus/kubesim";
import { createKubeSim } from "@isthmus/kubesim";
import type { BenchOptions, Figure } from "./harness.js";
import { createRandom, median, percentile } from "./harness.js";
import { openWatch } from "./lib/kube-http.js";

const HEAP = "100k pods held: heap delta";
const RSS = "100k pods held: RSS delta";
const CREATE = "create pod (in process, per object)";
const LIST = "list 10k pods over HTTP";
const LIST_SELECTED = "list 10k pods, label selector matching 1k";
const FANOUT = "one change to 50 watchers over HTTP";
const FANOUT_ONE = "one change to 1 watcher over HTTP";

const MiB = 1024 * 1024;

function pod(ns: string, i: number, random: () => number): KubeObject {
  const app = `app-${Math.floor(random() * 100)}`;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `pod-${i}`,
      namespace: ns,
      labels: { app, shard: String(i % 10), "pod-template-hash": "5d8f7c9b6" },
      annotations: {
        "sidecar.istio.io/status": '{"initContainers":["istio-init"],"containers":["istio-proxy"]}',
      },
    },
    spec: {
      serviceAccountName: app,
      nodeName: `node-${i % 50}`,
      containers: [
        {
          name: "app",
          image: `registry.example/${app}:1.2.3`,
          ports: [{ containerPort: 8080, name: "http", protocol: "TCP" }],
        },
        { name: "istio-proxy", image: "docker.io/istio/proxyv2:1.29.2" },
      ],
    },
    status: {
      phase: "Running",
      podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      conditions: [
        { type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" },
        { type: "ContainersReady", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" },
      ],
    },
  };
}

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}

function httpGet(agent: Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
      });
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(bytes)
          : reject(new Error(`GET ${url}: ${res.statusCode}`)),
      );
    }).on("error", reject);
  });
}

async function fanOut(
  sim: KubeSim,
  watchers: number,
  rounds: number,
  warmup: number,
): Promise<number[]> {
  const path = `${sim.url}/api/v1/namespaces/fanout/configmaps?watch=1&resourceVersion=${sim.resourceVersion()}`;
  let pending = 0;
  let done = () => {};
  const streams: IncomingMessage[] = [];
  for (let i = 0; i < watchers; i++) {
    streams.push(
      await openWatch(path, () => {
        pending--;
        if (pending === 0) done();
      }),
    );
  }
  const samples: number[] = [];
  for (let r = 0; r < warmup + rounds; r++) {
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    pending = watchers;
    const started = performance.now();
    sim.patch("v1", "ConfigMap", "hot", "fanout", { data: { round: String(r) } });
    await all;
    if (r >= warmup) samples.push(performance.now() - started);
  }
  for (const s of streams) s.destroy();
  return samples;
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const random = createRandom();
  const total = smoke ? 2000 : 100_000;
  const perNamespace = smoke ? 1000 : 10_000;
  const listRounds = smoke ? 3 : 30;
  const fanRounds = smoke ? 5 : 200;

  settle();
  const heapBefore = process.memoryUsage().heapUsed;
  const rssBefore = process.memoryUsage().rss;
  const sim = createKubeSim({ historySize: 10_000 });
  const createSamples: number[] = [];
  const batch = 1000;
  for (let start = 0; start < total; start += batch) {
    const objects: KubeObject[] = [];
    for (let i = start; i < start + batch && i < total; i++) {
      const ns = `ns-${Math.floor(i / perNamespace)}`;
      if (i % perNamespace === 0)
        objects.push({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      objects.push(pod(ns, i, random));
    }
    const t0 = performance.now();
    sim.load(objects);
    createSamples.push(((performance.now() - t0) * 1000) / objects.length);
  }
  settle();
  const heapDelta = (process.memoryUsage().heapUsed - heapBefore) / MiB;
  const rssDelta = (process.memoryUsage().rss - rssBefore) / MiB;

  await sim.listen();
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const listUrl = `${sim.url}/api/v1/namespaces/ns-0/pods`;
    await httpGet(agent, listUrl);
    const list: number[] = [];
    for (let r = 0; r < listRounds; r++) {
      const t0 = performance.now();
      await httpGet(agent, listUrl);
      list.push(performance.now() - t0);
    }
    const selected: number[] = [];
    for (let r = 0; r < listRounds; r++) {
      const t0 = performance.now();
      await httpGet(agent, `${listUrl}?labelSelector=shard%3D3`);
      selected.push(performance.now() - t0);
    }
    agent.destroy();

    sim.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "fanout" } });
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "hot", namespace: "fanout" },
    });
    const fan50 = await fanOut(sim, 50, fanRounds, smoke ? 2 : 20);
    const fan1 = await fanOut(sim, 1, fanRounds, smoke ? 2 : 20);

    return [
      { name: HEAP, unit: "MiB", samples: [heapDelta] },
      { name: RSS, unit: "MiB", samples: [rssDelta] },
      { name: CREATE, unit: "µs", samples: createSamples },
      { name: LIST, unit: "ms", samples: list },
      { name: LIST_SELECTED, unit: "ms", samples: selected, reference: LIST },
      { name: FANOUT, unit: "ms", samples: fan50, reference: FANOUT_ONE },
      { name: FANOUT_ONE, unit: "ms", samples: fan1 },
    ];
  } finally {
    await sim.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await run({ smoke: process.argv.includes("--smoke") });
  for (const f of figures) {
    const m = median(f.samples);
    const ref = figures.find((g) => g.name === f.reference);
    const ratio =
      ref === undefined ? "" : `  (${(m / median(ref.samples)).toFixed(2)} × ${ref.name})`;
    console.log(
      `${f.name.padEnd(44)} median ${m.toFixed(2).padStart(9)}  p99 ${percentile(f.samples, 99).toFixed(2).padStart(9)} ${f.unit}  n=${f.samples.length}${ratio}`,
    );
  }
}
