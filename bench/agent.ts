// Agent benchmark: one simulated cluster with 10k services and 50k pods. How long the agent
// takes to list and index it (target: under 20 s) and its memory once synced (target: under
// 400 MiB RSS); how long one pod churn takes to reach the local ServiceEntry (the
// EndpointSlice changes, the agent re-renders and applies, the new ServiceEntry comes back
// through its watch). kubesim runs in a child process so that the RSS is the agent's own.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import {
  CONTENT_HASH_ANNOTATION,
  createController,
  createKubeClient,
  kubeConfigFromString,
} from "@isthmus/agent";
import { createKubeSim, istioScene, type KubeObject } from "@isthmus/kubesim";
import { IntentSchema } from "@isthmus/proto";
import type { BenchOptions, Figure } from "./harness.js";
import { createRandom, median, percentile } from "./harness.js";

const SYNC = "initial sync: list + index";
const SNAPSHOT = "full catalog snapshot";
const RSS = "RSS after sync";
const HEAP = "heap used after sync";
const APPLY = "apply Export intents (first write, per intent)";
const CHURN = "pod churn -> local ServiceEntry updated";
const NOOP = "re-apply unchanged intents (no-op, per intent)";

const MiB = 1024 * 1024;

interface Shape {
  namespaces: number;
  servicesPerNamespace: number;
  podsPerService: number;
  exported: number;
  churns: number;
}

type ChildMessage = { kubeconfig: string } | { churned: number };

/** The cluster, as the kubelet and the EndpointSlice controller would leave it. */
function workload(shape: Shape, random: () => number): KubeObject[] {
  const objects: KubeObject[] = [];
  for (let n = 0; n < shape.namespaces; n++) {
    const ns = `ns-${n}`;
    objects.push({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns, labels: { "istio-injection": "enabled" } },
    });
    for (let s = 0; s < shape.servicesPerNamespace; s++) {
      const app = `svc-${s}`;
      const sa = `sa-${Math.floor(random() * shape.servicesPerNamespace)}`;
      objects.push({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: app, namespace: ns, labels: { app } },
        spec: {
          selector: { app },
          ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }],
        },
      });
      const ips: string[] = [];
      for (let p = 0; p < shape.podsPerService; p++) {
        const ip = `10.${n % 250}.${s % 250}.${10 + p}`;
        ips.push(ip);
        objects.push({
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name: `${app}-${p}`,
            namespace: ns,
            labels: { app, version: "v1", "pod-template-hash": "7d9f8c" },
          },
          spec: {
            serviceAccountName: sa,
            nodeName: `node-${p % 20}`,
            containers: [
              {
                name: "app",
                image: "registry.example/app:1",
                ports: [{ containerPort: 8080, name: "http" }],
              },
            ],
          },
          status: {
            phase: "Running",
            podIP: ip,
            podIPs: [{ ip }],
            conditions: [{ type: "Ready", status: "True" }],
          },
        });
      }
      objects.push({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: `${app}-abcde`,
          namespace: ns,
          labels: { "kubernetes.io/service-name": app },
        },
        addressType: "IPv4",
        endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      });
    }
  }
  return objects;
}

/** Child process: serves the cluster and applies churn on request. */
async function clusterChild(): Promise<void> {
  const shape = JSON.parse(process.env.ISTHMUS_AGENT_BENCH_SHAPE ?? "{}") as Shape;
  const sim = createKubeSim({ name: "bench", historySize: 100_000 });
  sim.load(
    istioScene({
      clusterId: "bench",
      network: "net-1",
      trustDomain: "bench.example",
      eastWestAddress: "198.51.100.1",
    }),
  );
  sim.load(workload(shape, createRandom()));
  await sim.listen();
  // The benchmark's process is gone (crashed or killed): nothing left to serve.
  process.on("disconnect", () => process.exit(0));
  process.on(
    "message",
    (m: { churn: { ns: string; svc: string; round: number } } | { stop: true }) => {
      if ("stop" in m) {
        void sim.close().then(() => process.exit(0));
        return;
      }
      const { ns, svc, round } = m.churn;
      const slice = sim.get("discovery.k8s.io/v1", "EndpointSlice", `${svc}-abcde`, ns);
      const endpoints = (slice.endpoints as { addresses: string[] }[]).slice(1);
      endpoints.push({ addresses: [`10.255.${Math.floor(round / 200) % 250}.${round % 200}`] });
      sim.update({ ...slice, endpoints });
      process.send!({ churned: round } satisfies ChildMessage);
    },
  );
  process.send!({ kubeconfig: sim.kubeconfig() } satisfies ChildMessage);
}

function startChild(shape: Shape): Promise<{ child: ChildProcess; kubeconfig: string }> {
  const child = fork(fileURLToPath(import.meta.url), ["--cluster-child"], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ISTHMUS_AGENT_BENCH_SHAPE: JSON.stringify(shape) },
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`kubesim child exited with ${code}`)));
    child.once("message", (m: ChildMessage) => {
      if ("kubeconfig" in m) resolve({ child, kubeconfig: m.kubeconfig });
    });
  });
}

function exportIntent(ns: string, svc: string) {
  return create(IntentSchema, {
    name: `export/${ns}/${svc}`,
    version: "1",
    kind: {
      case: "exportIntent",
      value: {
        namespace: ns,
        service: svc,
        ports: [{ name: "http", port: 80 }],
        importingClusters: ["remote"],
      },
    },
  });
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const shape: Shape = smoke
    ? { namespaces: 2, servicesPerNamespace: 10, podsPerService: 5, exported: 10, churns: 5 }
    : {
        namespaces: 100,
        servicesPerNamespace: 100,
        podsPerService: 5,
        exported: 1000,
        churns: 200,
      };
  const random = createRandom();
  const { child, kubeconfig } = await startChild(shape);
  const client = createKubeClient(kubeConfigFromString(kubeconfig));
  const ctl = createController({ client, clusterId: "bench" });
  try {
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    await ctl.start();
    const sync = performance.now() - t0;
    const t1 = performance.now();
    const { snapshot } = ctl.cache.fullSnapshot();
    const snap = performance.now() - t1;
    const expectedServices = shape.namespaces * shape.servicesPerNamespace;
    if (snapshot.services.size < expectedServices) {
      throw new Error(
        `catalog has ${snapshot.services.size} services, expected at least ${expectedServices}`,
      );
    }
    const rss = process.memoryUsage().rss / MiB;
    const heap = process.memoryUsage().heapUsed / MiB;

    // Export intents for the first `exported` services (spread over the namespaces).
    const targets: { ns: string; svc: string }[] = [];
    for (let i = 0; i < shape.exported; i++) {
      targets.push({
        ns: `ns-${i % shape.namespaces}`,
        svc: `svc-${Math.floor(i / shape.namespaces) % shape.servicesPerNamespace}`,
      });
    }
    const intents = targets.map((t) => exportIntent(t.ns, t.svc));
    const t2 = performance.now();
    const report = await ctl.reconciler.applyDelta({
      upserted: intents,
      removed: [],
      complete: true,
    });
    const applyMs = performance.now() - t2;
    if (report.errors.length > 0) throw new Error(`apply failed: ${report.errors[0]!.message}`);
    // Wait for the informer to hold every written object, then time a no-op re-apply.
    while (ctl.cache.liveObjects().length < intents.length)
      await new Promise((r) => setTimeout(r, 20));
    await ctl.reconciler.idle();
    const t3 = performance.now();
    await ctl.reconciler.applyDelta({ upserted: intents, removed: [], complete: true });
    const noopMs = performance.now() - t3;

    // Churn: one slice changes in the child; time until the agent's ServiceEntry with the
    // new address comes back through the agent's own watch. The agent's informers keep the
    // rendered kinds' metadata only: a new content hash is the new address written.
    const churn: number[] = [];
    const hashOf = (obj: KubeObject | undefined) =>
      obj?.metadata.annotations?.[CONTENT_HASH_ANNOTATION];
    let waiting:
      | { name: string; ns: string; hash: string | undefined; resolve: () => void }
      | undefined;
    ctl.cache.onRendered((_e, obj) => {
      if (
        waiting === undefined ||
        obj.metadata.name !== waiting.name ||
        obj.metadata.namespace !== waiting.ns
      )
        return;
      if (hashOf(obj) !== waiting.hash) waiting.resolve();
    });
    for (let round = 0; round < shape.churns; round++) {
      const t = targets[Math.floor(random() * targets.length)]!;
      const start = performance.now();
      await new Promise<void>((resolve) => {
        const name = `isthmus-export-${t.svc}`;
        const hash = hashOf(ctl.cache.liveObject("ServiceEntry", t.ns, name));
        waiting = { name, ns: t.ns, hash, resolve };
        child.send({ churn: { ns: t.ns, svc: t.svc, round } });
      });
      churn.push(performance.now() - start);
      waiting = undefined;
    }
    return [
      { name: SYNC, unit: "ms", samples: [sync] },
      { name: SNAPSHOT, unit: "ms", samples: [snap], reference: SYNC },
      { name: RSS, unit: "MiB", samples: [rss] },
      { name: HEAP, unit: "MiB", samples: [heap], reference: RSS },
      {
        name: "RSS growth during sync",
        unit: "MiB",
        samples: [rss - rssBefore / MiB],
        reference: RSS,
      },
      { name: APPLY, unit: "ms", samples: [applyMs / intents.length] },
      { name: NOOP, unit: "ms", samples: [noopMs / intents.length], reference: APPLY },
      { name: CHURN, unit: "ms", samples: churn },
    ];
  } finally {
    await ctl.stop();
    client.close();
    child.removeAllListeners("exit");
    child.send({ stop: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes("--cluster-child")) {
    await clusterChild();
  } else {
    const figures = await run({ smoke: process.argv.includes("--smoke") });
    for (const f of figures) {
      const m = median(f.samples);
      const ref = figures.find((g) => g.name === f.reference);
      const ratio =
        ref === undefined ? "" : `  (${(m / median(ref.samples)).toFixed(3)} × ${ref.name})`;
      console.log(
        `${f.name.padEnd(48)} median ${m.toFixed(2).padStart(9)}  p99 ${percentile(f.samples, 99).toFixed(2).padStart(9)} ${f.unit}  n=${f.samples.length}${ratio}`,
      );
    }
    process.exit(0);
  }
}
