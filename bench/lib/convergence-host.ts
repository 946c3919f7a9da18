// Cluster host of the convergence benchmark, a child process (`fork` of this file) that
// hosts one or more clusters, each as deployed: its own kubesim API server (seeded as the
// sandbox seeds its clusters, its own port) and its own real agent (its own kube client,
// informers and gRPC connection to the hub, apart from the hub's process). Several clusters
// share a process only because the machine has fewer cores than clusters: in production each
// cluster has its own machine, and 10 processes on 2 cores spend more on switching between
// them at every hop than on the work (see bench/README.md, convergence). The parent (the
// hub's process) drives the host over IPC: create a Service in one of its clusters, report
// CPU time, measure the floor's hops from here (watch event on its first cluster's API
// server, round trips to the hub, a write to that API server), stop.
import { Agent as HttpAgent } from "node:http";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import {
  createAgent,
  createController,
  createKubeClient,
  kubeConfigFromString,
} from "@isthmus/agent";
import { SANDBOX_NAMESPACES, type Scene, sceneObjects } from "@isthmus/cli/sandbox";
import { istioScene, type KubeObject, sampleApp, startKubeSim } from "@isthmus/kubesim";
import { silentLogger } from "@isthmus/logging";
import {
  AdminService,
  clientCredentials,
  createClient,
  type Intent,
  IntentSchema,
} from "@isthmus/proto";
import { startCpuProfile } from "./cpu-profile.js";
import { type GcPauses, watchGcPauses } from "./gc-pauses.js";
import { applyOverHttp, openWatch } from "./kube-http.js";

export const SHOP = "shop";

/** What the parent sends first. */
export interface HostStart {
  scene: Scene;
  /** The clusters this process hosts: indexes into `scene.clusters`, with their agent's
   * bootstrap token. The first one serves the floor. */
  clusters: { index: number; bootstrapToken: string }[];
  hubAddress: string;
  hubCaPem: string;
  adminToken: string;
  /** The agents' catalog debounce window (ms); undefined: the agent's default. */
  agentDebounceMs?: number;
  extraObjects: KubeObject[];
}

export type ToHost =
  | { type: "start"; start: HostStart }
  /** Create svc-k (Service, two ready pods, Endpoints, EndpointSlice) in `shop` of the
   * cluster `index` (of the scene), one this process hosts. */
  | { type: "create"; index: number; k: number }
  | { type: "cpu" }
  /** With `dir`: start a CPU profile (`name`, when given, goes into the file's name); without:
   * stop it and write it to the folder given. */
  | { type: "profile"; dir?: string; name?: string }
  | { type: "floor"; warmup: number; rounds: number }
  /** CPU time of import deltas applied by a controller to a kubesim of their own. */
  | { type: "import-cpu"; warmup: number; deltas: number; inFlight: number }
  | { type: "stop" };

export interface FloorSamples {
  watch: number[];
  grpc: number[];
  write: number[];
}

export type FromHost =
  /** The API servers' URLs, in the order of `HostStart.clusters`. */
  | { type: "ready"; urls: string[] }
  /** CPU time so far; the GC pauses so far and the longest one since the last `cpu`. */
  | { type: "cpu"; micros: number; gc: GcPauses }
  | { type: "profile" }
  | { type: "floor"; samples: FloorSamples }
  | { type: "import-cpu"; msPerDelta: number }
  | { type: "error"; message: string };

/** A Service in `shop` with two ready pods and its EndpointSlice (no Node or Namespace: they
 * exist already, and rewriting them would be churn of its own). */
function shopService(k: number, cluster: number): KubeObject[] {
  return sampleApp({
    name: `svc-${k}`,
    namespace: SHOP,
    replicas: 2,
    serviceAccount: `svc-${k}`,
    podIpPrefix: `10.${100 + cluster}.${k % 250}`,
  }).filter((o) => o.kind !== "Node" && o.kind !== "Namespace");
}

/** The intents an importing cluster gets for a new service of another cluster: the import
 * header and one backend, as the hub sends them. */
function importIntents(k: number): Intent[] {
  const name = `import/${SHOP}/svc-${k}`;
  const ports = [{ name: "http", port: 80, targetPort: "8080", protocol: "TCP" }];
  const backend = {
    clusterId: `c${String(2 + (k % 8)).padStart(2, "0")}`,
    network: "net-remote",
    locality: "region/zone",
    weight: 2,
    gateways: [{ address: "203.0.113.20", port: 15443 }],
  };
  const value = { namespace: SHOP, service: `svc-${k}`, ports };
  return [
    create(IntentSchema, {
      name,
      version: `v${k}`,
      kind: { case: "importIntent", value: { ...value, localBackend: false } },
    }),
    create(IntentSchema, {
      name: `${name}/${backend.clusterId}`,
      version: `v${k}-b`,
      kind: { case: "importBackendIntent", value: { ...value, backend } },
    }),
  ];
}

/**
 * The importing side of an event without the other processes: a kubesim of its own (Istio
 * scene, `shop`) and the agent's controller on it (informers, reconciler, kube client over
 * HTTP, as in the agent), fed import deltas directly, `inFlight` at a time; one more watch
 * on the ServiceEntries, as the benchmark's. Returns this process's CPU time per delta.
 */
async function importCpu(warmup: number, deltas: number, inFlight: number): Promise<number> {
  const sim = await startKubeSim({ name: "c01" });
  sim.load(
    istioScene({
      clusterId: "c01",
      network: "net-c01",
      trustDomain: "c01.local",
      eastWestAddress: "198.51.100.10",
    }),
  );
  sim.load([
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: SHOP, labels: { "istio-injection": "enabled" } },
    },
  ]);
  const client = createKubeClient(kubeConfigFromString(sim.kubeconfig()));
  const controller = createController({ client, clusterId: "c01", logger: silentLogger });
  const watch = await openWatch(
    `${sim.url}/apis/networking.istio.io/v1/namespaces/${SHOP}/serviceentries?watch=1`,
    () => {},
  );
  try {
    await controller.start();
    let k = 0;
    const run = async (n: number) => {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++, k++) {
        pending.push(
          controller.reconciler.applyDelta({
            upserted: importIntents(k),
            removed: [],
            complete: false,
          }),
        );
        if (pending.length >= inFlight) await pending.shift();
      }
      await Promise.all(pending);
      await controller.reconciler.idle();
      // The watch events of the last writes, and the no-op checks they cause.
      await new Promise((r) => setTimeout(r, 50));
    };
    await run(warmup);
    const before = process.cpuUsage();
    await run(deltas);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000 / deltas;
  } finally {
    watch.destroy();
    await controller.stop();
    client.close();
    await sim.close();
  }
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the host's one IPC loop: a case per parent message, read in order
async function main(): Promise<void> {
  const send = (m: FromHost) => process.send?.(m);
  const start = await new Promise<HostStart>((resolve) => {
    const first = (m: ToHost) => {
      if (m.type !== "start") return;
      process.off("message", first);
      resolve(m.start);
    };
    process.on("message", first);
  });
  // The parent is gone: nothing left to serve.
  process.on("disconnect", () => process.exit(0));
  // Each cluster as deployed: an API server of its own and an agent of its own (its own
  // kube client, informers and gRPC connection with its own client certificate).
  const hosted = await Promise.all(
    start.clusters.map(async ({ index, bootstrapToken }) => {
      const id = start.scene.clusters[index]!.id;
      const sim = await startKubeSim({ name: id, namespaces: SANDBOX_NAMESPACES });
      sim.load([...sceneObjects(start.scene, index), ...start.extraObjects]);
      const agent = createAgent({
        clusterId: id,
        hubAddress: start.hubAddress,
        hubCaPem: start.hubCaPem,
        bootstrapToken,
        kubeconfig: sim.kubeconfig(),
        ...(start.agentDebounceMs === undefined ? {} : { debounceMs: start.agentDebounceMs }),
        logger: silentLogger,
      });
      await agent.start();
      return { index, id, sim, agent };
    }),
  );
  const byIndex = new Map(hosted.map((c) => [c.index, c]));
  const id = hosted.map((c) => c.id).join(",");
  // The floor's hops are measured on the first cluster (its API server, its agent's process).
  const { sim } = hosted[0]!;

  /** The floor's hops as the agent makes them from here: an in-process write until the line
   * is read on an HTTP watch, two GetStatus round trips to the hub (TLS), one server-side
   * apply over HTTP. */
  const floor = async (warmup: number, rounds: number): Promise<FloorSamples> => {
    const admin = createClient(
      AdminService,
      start.hubAddress,
      clientCredentials({ caPem: start.hubCaPem }),
    );
    const call = { metadata: { authorization: `Bearer ${start.adminToken}` }, timeoutMs: 15_000 };
    const http = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "floor-watch", namespace: "kube-system" },
      data: { round: "-1" },
    });
    let lineArrived: (() => void) | undefined;
    const stream = await openWatch(
      `${sim.url}/api/v1/namespaces/kube-system/configmaps?watch=1&resourceVersion=${sim.resourceVersion()}`,
      () => {
        const f = lineArrived;
        lineArrived = undefined;
        f?.();
      },
    );
    const out: FloorSamples = { watch: [], grpc: [], write: [] };
    try {
      for (let r = 0; r < warmup + rounds; r++) {
        const line = new Promise<void>((resolve) => {
          lineArrived = resolve;
        });
        let t = performance.now();
        sim.patch("v1", "ConfigMap", "floor-watch", "kube-system", {
          data: { round: String(r) },
        });
        await line;
        const w = performance.now() - t;
        const g: number[] = [];
        for (let i = 0; i < 2; i++) {
          t = performance.now();
          await admin.getStatus({}, call);
          g.push(performance.now() - t);
        }
        t = performance.now();
        await applyOverHttp(http, sim.url, r);
        const h = performance.now() - t;
        if (r < warmup) continue;
        out.watch.push(w);
        out.grpc.push(...g);
        out.write.push(h);
      }
      return out;
    } finally {
      stream.destroy();
      http.destroy();
      admin.close();
    }
  };

  const gcPauses = watchGcPauses();
  let stopProfile: (() => Promise<void>) | undefined;
  process.on("message", (m: ToHost) => {
    const fail = (err: unknown) =>
      send({ type: "error", message: `${id}: ${err instanceof Error ? err.message : err}` });
    try {
      switch (m.type) {
        case "create": {
          const c = byIndex.get(m.index);
          if (c === undefined) throw new Error(`cluster ${m.index} is not hosted here`);
          c.sim.load(shopService(m.k, m.index));
          break;
        }
        case "cpu": {
          const u = process.cpuUsage();
          send({ type: "cpu", micros: u.user + u.system, gc: gcPauses.take() });
          break;
        }
        case "profile":
          if (m.dir !== undefined) {
            const dir = m.dir;
            startCpuProfile(dir).then((stop) => {
              const name = m.name === undefined ? "host" : `host-${m.name}`;
              stopProfile = () => stop(`${name}-${hosted[0]!.id}`);
              send({ type: "profile" });
            }, fail);
          } else {
            (stopProfile?.() ?? Promise.resolve()).then(() => send({ type: "profile" }), fail);
            stopProfile = undefined;
          }
          break;
        case "floor":
          floor(m.warmup, m.rounds).then((samples) => send({ type: "floor", samples }), fail);
          break;
        case "import-cpu":
          importCpu(m.warmup, m.deltas, m.inFlight).then(
            (msPerDelta) => send({ type: "import-cpu", msPerDelta }),
            fail,
          );
          break;
        case "stop":
          Promise.all(hosted.map((c) => c.agent.stop().then(() => c.sim.close()))).then(
            () => process.exit(0),
            () => process.exit(1),
          );
          break;
        case "start":
          break;
      }
    } catch (err) {
      fail(err);
    }
  });
  send({ type: "ready", urls: hosted.map((c) => c.sim.url) });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.send?.({
      type: "error",
      message: err instanceof Error ? (err.stack ?? err.message) : String(err),
    } satisfies FromHost);
    process.exit(1);
  });
}
