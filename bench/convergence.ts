// End-to-end convergence: 10 kubesim clusters, each with its real agent, and one hub.
// Every cluster is as deployed: an API server of its own (its own port) and an agent of its
// own (its own kube client, informers, and gRPC connection to the hub with its own client
// certificate), in a cluster host process apart from the hub (bench/lib/convergence-host.ts; the parent's
// side of it in bench/lib/convergence-parent.ts).
// In production each cluster has its own machine; here the clusters share the machine's
// cores, so they are spread over as many host processes as Node has cores
// (`availableParallelism()`, cluster i in process i % hosts), not one process per cluster:
// 10 cluster processes and the hub's on 2 cores switched between processes at every hop
// (a delta, its writes, their answers, the watch events, the ACK), each time with cold
// caches, and an event cost about twice the CPU time it costs with 2 hosts (see
// bench/README.md, convergence). ISTHMUS_BENCH_CLUSTER_HOSTS=<n> sets another count (10: a
// process per cluster). The hub runs in this process (`startSandbox` with no clusters),
// which also follows the results through one HTTP watch per cluster.
//
// A policy lets the frontend in `web` of every cluster call every service in `shop`;
// Services are created in `shop` (one cluster at a time, rotating) at a steady churn, and
// each creation is timed from the IPC message that asks the cluster's host for it until
// the import ServiceEntry for it exists in every cluster that imports it. The floor, timed
// in the same run on the same clusters, from the first cluster's host process (where its
// agent is): one kubesim watch event, two gRPC round trips to the hub and one kubesim write
// over HTTP: the hops a change has to make at the least (cluster -> agent, agent -> hub ->
// agent, agent -> cluster).
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type Scene, startSandbox, waitConverged } from "@isthmus/cli/sandbox";
import type { KubeObject } from "@isthmus/kubesim";
import { Action } from "@isthmus/proto";
import type { BenchOptions, Figure } from "./harness.js";
import {
  createWatcher,
  forkHost,
  type HostProcess,
  sleep,
  withTimeout,
} from "./lib/convergence-parent.js";
import { profileDir, startCpuProfile } from "./lib/cpu-profile.js";
import { watchGcPauses } from "./lib/gc-pauses.js";

const converge = (intervalMs: number) =>
  `service created -> import SE in every importer, ${1000 / intervalMs} events/s`;
const ONE = "service created -> import SE in every importer, one at a time";
const ramp = (intervalMs: number, events: number) =>
  `service created -> import SE in every importer, ${1000 / intervalMs} events/s, first ${events} (ramp-up)`;
const cpu = (intervalMs: number) =>
  `CPU time per event (all processes), ${1000 / intervalMs} events/s`;
const hubCpu = (intervalMs: number) =>
  `hub process CPU time per event, ${1000 / intervalMs} events/s`;
const gcPerEvent = (intervalMs: number) =>
  `GC pause time per event (all processes), ${1000 / intervalMs} events/s`;
const gcLongest = (intervalMs: number) =>
  `longest GC pause (any process), ${1000 / intervalMs} events/s`;
const IDLE = "CPU time per second with no events (all processes)";
const HUB_IDLE = "hub process CPU time per second with no events";
const IMPORT_CPU =
  "CPU time of one import delta, one process alone (kubesim + controller, 3 writes)";
const HOSTS = "cluster host processes (each with its clusters' kubesims and agents)";
const FLOOR = "floor: watch event + 2 gRPC round trips + HTTP write";
const WATCH = "floor part: kubesim watch event (in-process write -> line read)";
const GRPC = "floor part: hub admin GetStatus round trip (cluster process -> hub)";
const WRITE = "floor part: kubesim server-side apply over HTTP";

const NS = "shop";

interface Scale {
  clusters: number;
  events: number;
  warmup: number;
  intervalMs: number;
  /** Creations at the churn's rate before the steady-state ones, timed as a figure of their
   * own: the first seconds from a quiet system are slower (a backlog builds up while code
   * and heap warm up, then drains; 3 to 4 s at 50/s, seen in the samples' time series). */
  rampEvents: number;
  /** The same below saturation: fewer events, further apart. */
  slowEvents: number;
  slowIntervalMs: number;
  /** How long the quiet system's CPU time is measured. */
  idleMs: number;
  floorRounds: number;
  /** Import deltas applied in one process alone, after as many warm-up ones, per round. */
  importDeltas: number;
  importRounds: number;
}

function scale(smoke: boolean): Scale {
  return smoke
    ? {
        clusters: 3,
        events: 10,
        rampEvents: 2,
        warmup: 2,
        intervalMs: 20,
        slowEvents: 5,
        slowIntervalMs: 200,
        idleMs: 500,
        floorRounds: 10,
        importDeltas: 20,
        importRounds: 2,
      }
    : {
        clusters: 10,
        events: 500,
        rampEvents: 250,
        warmup: 30,
        intervalMs: 20,
        slowEvents: 100,
        slowIntervalMs: 200,
        idleMs: 5000,
        floorRounds: 300,
        importDeltas: 1000,
        importRounds: 5,
      };
}

const clusterId = (i: number) => `c${String(i).padStart(2, "0")}`;

/**
 * Debounce of the hub's deltas and of the agents' catalog updates: shorter than the
 * product's defaults (hub `windowMs` 100 / `maxMs` 1000, agent 100 / 1000 ms), which favour
 * fewer, larger deltas over latency. Under a steady churn every cluster gets a change every
 * 20 ms at 50 events/s, so the hub's window never closes and each change waits for `maxMs`:
 * with the defaults the latency is that bound (up to 1 s), not the system's speed.
 * ISTHMUS_BENCH_DEBOUNCE=product runs with the product's defaults instead.
 */
const BENCH_DEBOUNCE = { hub: { windowMs: 10, maxMs: 100 }, agentMs: 10 };

/** How many cluster host processes: one per core the machine gives Node (at most one per
 * cluster), or ISTHMUS_BENCH_CLUSTER_HOSTS (1 to the number of clusters; as many as clusters
 * is a process per cluster). */
function clusterHosts(clusters: number): number {
  const env = process.env.ISTHMUS_BENCH_CLUSTER_HOSTS;
  if (env === undefined || env === "") return Math.min(clusters, availableParallelism());
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n > clusters) {
    throw new Error(`ISTHMUS_BENCH_CLUSTER_HOSTS: ${JSON.stringify(env)} is not 1 to ${clusters}`);
  }
  return n;
}
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the benchmark's phases in the order they run, each timing what the previous set up
export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
  const productDebounce = process.env.ISTHMUS_BENCH_DEBOUNCE === "product";
  const dir = mkdtempSync(join(tmpdir(), "isthmus-bench-convergence-"));
  const scene: Scene = {
    clusters: Array.from({ length: s.clusters }, (_, i) => ({
      id: clusterId(i),
      labels: { env: "prod" },
      apps: [{ name: "frontend", namespace: "web" }],
    })),
  };
  const shopNamespace: KubeObject = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: NS, labels: { "istio-injection": "enabled" } },
  };
  // The hub alone: the clusters are in processes of their own.
  const sandbox = await startSandbox({
    scene: { clusters: [] },
    dir,
    ...(productDebounce ? {} : { hub: { debounce: BENCH_DEBOUNCE.hub } }),
  });
  const { client: admin, call } = sandbox.admin();
  const hosts: HostProcess[] = [];
  const hostCount = clusterHosts(s.clusters);
  /** Cluster i is hosted by process i % hostCount, the (i / hostCount)-th of its clusters. */
  const hostOf = (i: number) => hosts[i % hostCount]!;
  const urlOf = (i: number) => hostOf(i).urls[Math.floor(i / hostCount)]!;
  let watcher: Awaited<ReturnType<typeof createWatcher>> | undefined;
  const gcPauses = watchGcPauses();
  try {
    const tokens: string[] = [];
    for (const c of scene.clusters) {
      const created = await admin.createCluster(
        { cluster: { id: c.id, labels: c.labels ?? {} } },
        call,
      );
      tokens.push(created.bootstrapToken);
    }
    hosts.push(
      ...(await Promise.all(
        Array.from({ length: hostCount }, (_, h) =>
          forkHost({
            scene,
            clusters: scene.clusters
              .map((_, index) => ({ index, bootstrapToken: tokens[index]! }))
              .filter(({ index }) => index % hostCount === h),
            hubAddress: sandbox.address,
            hubCaPem: sandbox.hub.caPem,
            adminToken: sandbox.adminToken,
            ...(productDebounce ? {} : { agentDebounceMs: BENCH_DEBOUNCE.agentMs }),
            extraObjects: [shopNamespace],
          }),
        ),
      )),
    );
    await waitConverged(sandbox, 60_000);
    await admin.applyPolicies(
      {
        policies: [
          {
            name: "web-to-shop",
            priority: 100,
            action: Action.ALLOW,
            from: [{ namespaces: ["web"] }],
            to: [{ namespaces: [NS] }],
          },
        ],
      },
      call,
    );
    await waitConverged(sandbox, 60_000);
    const all = scene.clusters.map((_, i) => i);
    watcher = await createWatcher(all.map(urlOf));
    const w = watcher;

    // Warm-up, one event at a time; it also tells which clusters import a new service: every
    // cluster has a frontend, so all of them but perhaps the one that backs it.
    let selfImports: boolean | undefined;
    const single: number[] = [];
    let k = 0;
    for (; k < s.warmup; k++) {
      const origin = k % s.clusters;
      const started = performance.now();
      hostOf(origin).send({ type: "create", index: origin, k });
      const ms = await withTimeout(
        w.wait(
          `svc-${k}`,
          all.filter((i) => i !== origin),
          started,
        ),
        30_000,
        () => `warm-up svc-${k}: no import ServiceEntry everywhere after 30 s`,
      );
      // The first half warms up (JIT, connections); the second is the unloaded latency.
      if (k >= s.warmup / 2) single.push(ms);
      await waitConverged(sandbox, 30_000);
      const self = w.seenIn(`svc-${k}`).has(origin);
      if (selfImports !== undefined && self !== selfImports) {
        throw new Error("the backing cluster imports its own service only sometimes");
      }
      selfImports = self;
    }

    /** CPU time (user + system, µs) of this process and of every cluster host process; their
     * GC pauses so far (ms) and the longest one since the previous call. */
    const cpuNow = async () => {
      const hub = process.cpuUsage();
      const hubGc = gcPauses.take();
      const answers = await Promise.all(hosts.map((h) => h.ask({ type: "cpu" }, "cpu")));
      return {
        hub: hub.user + hub.system,
        all: hub.user + hub.system + answers.reduce((sum, a) => sum + a.micros, 0),
        gcMs: hubGc.totalMs + answers.reduce((sum, a) => sum + a.gc.totalMs, 0),
        gcMaxMs: Math.max(hubGc.maxMs, ...answers.map((a) => a.gc.maxMs)),
      };
    };

    /** One creation every intervalMs, each timed on its own (they overlap): first `ramp`
     * of them (the ramp-up from a quiet system, a figure of its own), then `events`; also
     * the CPU time per event over all of them. */
    const churn = async (events: number, intervalMs: number, ramp = 0) => {
      const samples: number[] = [];
      const rampSamples: number[] = [];
      const waits: Promise<void>[] = [];
      const cpu0 = await cpuNow();
      const t0 = performance.now();
      for (let e = 0; e < ramp + events; e++, k++) {
        const delay = t0 + e * intervalMs - performance.now();
        if (delay > 1) await sleep(delay);
        const origin = k % s.clusters;
        const importers = selfImports ? all : all.filter((i) => i !== origin);
        const started = performance.now();
        hostOf(origin).send({ type: "create", index: origin, k });
        waits.push(
          w.wait(`svc-${k}`, importers, started).then((ms) => {
            if (e < ramp) rampSamples[e] = ms;
            else samples[e - ramp] = ms;
          }),
        );
      }
      await withTimeout(
        Promise.all(waits),
        120_000,
        () => `${w.size} events not converged 120 s after the last creation`,
      );
      const cpu1 = await cpuNow();
      await waitConverged(sandbox, 60_000);
      return {
        samples,
        rampSamples,
        cpuMsPerEvent: (cpu1.all - cpu0.all) / 1000 / (ramp + events),
        hubCpuMsPerEvent: (cpu1.hub - cpu0.hub) / 1000 / (ramp + events),
        gcMsPerEvent: (cpu1.gcMs - cpu0.gcMs) / (ramp + events),
        gcMaxMs: cpu1.gcMaxMs,
      };
    };
    // ISTHMUS_BENCH_CPU_PROF=<dir>: every process (this one: the hub and the watches; each
    // cluster host) writes a CPU profile of the 50/s churn there.
    const dir = profileDir();
    const stopProfile = dir === undefined ? undefined : await startCpuProfile(dir);
    if (dir !== undefined) {
      await Promise.all(hosts.map((h) => h.ask({ type: "profile", dir }, "profile")));
    }
    const fast = await churn(s.events, s.intervalMs, s.rampEvents);
    if (stopProfile !== undefined) {
      await stopProfile("hub");
      await Promise.all(hosts.map((h) => h.ask({ type: "profile" }, "profile")));
    }
    const slow = await churn(s.slowEvents, s.slowIntervalMs);

    // What the converged system costs with nothing happening (timers, bookmarks, keepalives):
    // part of every churn's CPU time per event, the more so the fewer events per second.
    await sleep(200);
    // ISTHMUS_BENCH_CPU_PROF: the quiet window is profiled too (`hub-idle`, `host-idle-…`).
    const stopIdleProfile = dir === undefined ? undefined : await startCpuProfile(dir);
    if (dir !== undefined) {
      await Promise.all(hosts.map((h) => h.ask({ type: "profile", dir, name: "idle" }, "profile")));
    }
    const idle0 = await cpuNow();
    await sleep(s.idleMs);
    const idle1 = await cpuNow();
    if (stopIdleProfile !== undefined) {
      await stopIdleProfile("hub-idle");
      await Promise.all(hosts.map((h) => h.ask({ type: "profile" }, "profile")));
    }
    const perSecond = (micros: number) => micros / 1000 / (s.idleMs / 1000);

    // The floor, on the same (now quiet) clusters, from the process of the first cluster.
    const { samples: f } = await hostOf(0).ask(
      { type: "floor", warmup: smoke ? 3 : 30, rounds: s.floorRounds },
      "floor",
    );
    const floor = f.watch.map((w, r) => w + f.grpc[2 * r]! + f.grpc[2 * r + 1]! + f.write[r]!);
    // An importing cluster's share of an event, without 10 other processes on the same cores.
    const importCpu: number[] = [];
    for (let r = 0; r < s.importRounds; r++) {
      const { msPerDelta } = await hostOf(0).ask(
        { type: "import-cpu", warmup: s.importDeltas / 5, deltas: s.importDeltas, inFlight: 4 },
        "import-cpu",
      );
      importCpu.push(msPerDelta);
    }
    return [
      { name: ONE, unit: "ms", samples: single, reference: FLOOR },
      { name: converge(s.intervalMs), unit: "ms", samples: fast.samples, reference: FLOOR },
      {
        name: ramp(s.intervalMs, s.rampEvents),
        unit: "ms",
        samples: fast.rampSamples,
        reference: FLOOR,
      },
      {
        name: converge(s.slowIntervalMs),
        unit: "ms",
        samples: slow.samples,
        reference: FLOOR,
      },
      { name: cpu(s.intervalMs), unit: "ms", samples: [fast.cpuMsPerEvent] },
      { name: cpu(s.slowIntervalMs), unit: "ms", samples: [slow.cpuMsPerEvent] },
      { name: gcPerEvent(s.intervalMs), unit: "ms", samples: [fast.gcMsPerEvent] },
      { name: gcPerEvent(s.slowIntervalMs), unit: "ms", samples: [slow.gcMsPerEvent] },
      { name: gcLongest(s.intervalMs), unit: "ms", samples: [fast.gcMaxMs] },
      { name: gcLongest(s.slowIntervalMs), unit: "ms", samples: [slow.gcMaxMs] },
      { name: hubCpu(s.intervalMs), unit: "ms", samples: [fast.hubCpuMsPerEvent] },
      { name: hubCpu(s.slowIntervalMs), unit: "ms", samples: [slow.hubCpuMsPerEvent] },
      { name: IDLE, unit: "ms", samples: [perSecond(idle1.all - idle0.all)] },
      { name: HUB_IDLE, unit: "ms", samples: [perSecond(idle1.hub - idle0.hub)] },
      { name: IMPORT_CPU, unit: "ms", samples: importCpu },
      { name: HOSTS, unit: "processes", samples: [hostCount] },
      { name: FLOOR, unit: "ms", samples: floor },
      { name: WATCH, unit: "ms", samples: f.watch, reference: FLOOR },
      { name: GRPC, unit: "ms", samples: f.grpc, reference: FLOOR },
      { name: WRITE, unit: "ms", samples: f.write, reference: FLOOR },
    ];
  } finally {
    gcPauses.stop();
    watcher?.close();
    admin.close();
    await Promise.all(
      hosts.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.child.removeAllListeners("exit");
            if (c.child.exitCode !== null || c.child.signalCode !== null) return resolve();
            c.child.once("exit", () => resolve());
            c.send({ type: "stop" });
          }),
      ),
    );
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
