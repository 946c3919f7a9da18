// End-to-end convergence: kubesim clusters with real agents and one hub, all in this process
// (`startSandbox`). A policy lets the frontend in `web` of every cluster call every service
// in `shop`; Services are created in `shop` (one cluster at a time, rotating) at a steady
// churn, and each creation is timed until the import ServiceEntry for it exists in every
// cluster that imports it. The floor, timed in the same run on the same sandbox: one kubesim
// watch event, two gRPC round trips on the hub and one kubesim write over HTTP: the hops a
// change has to make at the least (cluster -> agent, agent -> hub -> agent, agent -> cluster).
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, get, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Scene, startSandbox, waitConverged } from "@isthmus/cli/sandbox";
import { type KubeObject, type KubeSim, sampleApp } from "@isthmus/kubesim";
import { Action } from "@isthmus/proto";
import type { BenchOptions, Figure } from "./harness.js";

const converge = (intervalMs: number) =>
  `service created -> import SE in every importer, ${1000 / intervalMs} events/s`;
const cpu = (intervalMs: number) => `process CPU time per event, ${1000 / intervalMs} events/s`;
const FLOOR = "floor: watch event + 2 gRPC round trips + HTTP write";
const WATCH = "floor part: kubesim watch event (in-process write -> line read)";
const GRPC = "floor part: hub admin GetStatus round trip";
const WRITE = "floor part: kubesim server-side apply over HTTP";

const NS = "shop";
const SE = ["networking.istio.io/v1", "ServiceEntry"] as const;

interface Scale {
  clusters: number;
  events: number;
  warmup: number;
  intervalMs: number;
  /** The same below saturation: fewer events, further apart. */
  slowEvents: number;
  slowIntervalMs: number;
  floorRounds: number;
}

function scale(smoke: boolean): Scale {
  return smoke
    ? {
        clusters: 3,
        events: 10,
        warmup: 2,
        intervalMs: 20,
        slowEvents: 5,
        slowIntervalMs: 200,
        floorRounds: 10,
      }
    : {
        clusters: 10,
        events: 500,
        warmup: 10,
        intervalMs: 20,
        slowEvents: 100,
        slowIntervalMs: 200,
        floorRounds: 300,
      };
}

const clusterId = (i: number) => `c${String(i).padStart(2, "0")}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a rejection with `why()` after `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, why: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(why())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A Service in `shop` with two ready pods and its EndpointSlice (no Node or Namespace: they
 * exist already, and rewriting them would be churn of its own). */
function shopService(k: number, cluster: number): KubeObject[] {
  return sampleApp({
    name: `svc-${k}`,
    namespace: NS,
    replicas: 2,
    serviceAccount: `svc-${k}`,
    podIpPrefix: `10.${100 + cluster}.${k % 250}`,
  }).filter((o) => o.kind !== "Node" && o.kind !== "Namespace");
}

/** Opens a watch and calls `onLine` for each event line; resolves once the stream is open. */
function openWatch(url: string, onLine: (line: string) => void): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      resolve(res);
    }).on("error", reject);
  });
}

/** One server-side apply of a ConfigMap over HTTP (keep-alive), until the response's end. */
function applyOverHttp(agent: Agent, sim: KubeSim, round: number): Promise<void> {
  const body = JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "floor-write", namespace: "isthmus-system" },
    data: { round: String(round) },
  });
  const url = `${sim.url}/api/v1/namespaces/isthmus-system/configmaps/floor-write?fieldManager=bench&force=true`;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent,
        method: "PATCH",
        headers: {
          "content-type": "application/apply-patch+yaml",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          res.statusCode === 200 || res.statusCode === 201
            ? resolve()
            : reject(new Error(`apply: HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

interface Pending {
  waitingFor: Set<number>;
  started: number;
  done: (ms: number) => void;
}

const IMPORT = /^isthmus-import-(svc-\d+)$/;

/** Follows the import ServiceEntries of `shop` in every cluster through one kubesim watch
 * each (HTTP, as any client sees them): resolves an event once its ServiceEntry has been
 * written in every cluster waited for. Polling `sim.find` instead costs more than the system
 * under test once hundreds of events are pending (a miss throws a NotFound error inside). */
async function createWatcher(sims: KubeSim[]) {
  const pending = new Map<string, Pending>();
  const seen = new Map<string, Set<number>>();
  const now = performance.now.bind(performance);
  const streams = await Promise.all(
    sims.map((sim, i) =>
      openWatch(
        `${sim.url}/apis/${SE[0]}/namespaces/${NS}/serviceentries?watch=1&resourceVersion=${sim.resourceVersion()}`,
        (line) => {
          const e = JSON.parse(line) as { type: string; object?: { metadata?: { name?: string } } };
          if (e.type !== "ADDED" && e.type !== "MODIFIED") return;
          const svc = IMPORT.exec(e.object?.metadata?.name ?? "")?.[1];
          if (svc === undefined) return;
          let s = seen.get(svc);
          if (s === undefined) {
            s = new Set();
            seen.set(svc, s);
          }
          s.add(i);
          const p = pending.get(svc);
          if (p === undefined || !p.waitingFor.delete(i) || p.waitingFor.size > 0) return;
          pending.delete(svc);
          p.done(now() - p.started);
        },
      ),
    ),
  );
  return {
    /** Resolves with the ms from `started` until svc's import ServiceEntry is in every one
     * of `clusters` (indexes into sims). */
    wait(svc: string, clusters: number[], started: number): Promise<number> {
      return new Promise((done) => {
        const already = seen.get(svc);
        const waitingFor = new Set(clusters.filter((i) => !already?.has(i)));
        if (waitingFor.size === 0) done(now() - started);
        else pending.set(svc, { waitingFor, started, done });
      });
    },
    /** Clusters where svc's import ServiceEntry has been seen. */
    seenIn: (svc: string) => seen.get(svc) ?? new Set<number>(),
    get size() {
      return pending.size;
    },
    close() {
      for (const s of streams) s.destroy();
    },
  };
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
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
  const sandbox = await startSandbox({
    scene,
    dir,
    hub: { debounce: { windowMs: 10, maxMs: 100 } },
    agentDebounceMs: 10,
    extraObjects: Object.fromEntries(scene.clusters.map((c) => [c.id, [shopNamespace]])),
  });
  const { client: admin, call } = sandbox.admin();
  const httpAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  let watchStream: IncomingMessage | undefined;
  let watcher: Awaited<ReturnType<typeof createWatcher>> | undefined;
  try {
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
    const sims = sandbox.clusters.map((c) => c.sim);
    watcher = await createWatcher(sims);
    const w = watcher;
    const all = sims.map((_, i) => i);

    // Warm-up, one event at a time; it also tells which clusters import a new service: every
    // cluster has a frontend, so all of them but perhaps the one that backs it.
    let selfImports: boolean | undefined;
    let k = 0;
    for (; k < s.warmup; k++) {
      const origin = k % s.clusters;
      const started = performance.now();
      sims[origin]!.load(shopService(k, origin));
      await withTimeout(
        w.wait(
          `svc-${k}`,
          all.filter((i) => i !== origin),
          started,
        ),
        30_000,
        () => `warm-up svc-${k}: no import ServiceEntry everywhere after 30 s`,
      );
      await waitConverged(sandbox, 30_000);
      const self = w.seenIn(`svc-${k}`).has(origin);
      if (selfImports !== undefined && self !== selfImports) {
        throw new Error("the backing cluster imports its own service only sometimes");
      }
      selfImports = self;
    }

    /** One creation every intervalMs, each timed on its own (they overlap); also the
     * process's CPU time (user + system) per event over the run. */
    const churn = async (events: number, intervalMs: number) => {
      const samples: number[] = [];
      const waits: Promise<void>[] = [];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let e = 0; e < events; e++, k++) {
        const delay = t0 + e * intervalMs - performance.now();
        if (delay > 1) await sleep(delay);
        const origin = k % s.clusters;
        const importers = selfImports ? all : all.filter((i) => i !== origin);
        const started = performance.now();
        sims[origin]!.load(shopService(k, origin));
        waits.push(
          w.wait(`svc-${k}`, importers, started).then((ms) => {
            samples[e] = ms;
          }),
        );
      }
      await withTimeout(
        Promise.all(waits),
        120_000,
        () => `${w.size} events not converged 120 s after the last creation`,
      );
      const cpu = process.cpuUsage(cpu0);
      await waitConverged(sandbox, 60_000);
      return { samples, cpuMsPerEvent: (cpu.user + cpu.system) / 1000 / events };
    };
    const fast = await churn(s.events, s.intervalMs);
    const slow = await churn(s.slowEvents, s.slowIntervalMs);

    // The floor, on the same (now quiet) sandbox.
    const sim = sims[0]!;
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "floor-watch", namespace: "kube-system" },
      data: { round: "-1" },
    });
    let lineArrived: (() => void) | undefined;
    watchStream = await openWatch(
      `${sim.url}/api/v1/namespaces/kube-system/configmaps?watch=1&resourceVersion=${sim.resourceVersion()}`,
      () => {
        const f = lineArrived;
        lineArrived = undefined;
        f?.();
      },
    );
    const floor: number[] = [];
    const watchParts: number[] = [];
    const grpcParts: number[] = [];
    const writeParts: number[] = [];
    const warm = smoke ? 3 : 30;
    for (let r = 0; r < warm + s.floorRounds; r++) {
      const line = new Promise<void>((resolve) => {
        lineArrived = resolve;
      });
      let t = performance.now();
      sim.patch("v1", "ConfigMap", "floor-watch", "kube-system", { data: { round: String(r) } });
      await line;
      const w = performance.now() - t;
      const g: number[] = [];
      for (let i = 0; i < 2; i++) {
        t = performance.now();
        await admin.getStatus({}, call);
        g.push(performance.now() - t);
      }
      t = performance.now();
      await applyOverHttp(httpAgent, sim, r);
      const h = performance.now() - t;
      if (r < warm) continue;
      watchParts.push(w);
      grpcParts.push(...g);
      writeParts.push(h);
      floor.push(w + g[0]! + g[1]! + h);
    }
    return [
      { name: converge(s.intervalMs), unit: "ms", samples: fast.samples, reference: FLOOR },
      {
        name: converge(s.slowIntervalMs),
        unit: "ms",
        samples: slow.samples,
        reference: FLOOR,
      },
      { name: cpu(s.intervalMs), unit: "ms", samples: [fast.cpuMsPerEvent] },
      { name: cpu(s.slowIntervalMs), unit: "ms", samples: [slow.cpuMsPerEvent] },
      { name: FLOOR, unit: "ms", samples: floor },
      { name: WATCH, unit: "ms", samples: watchParts, reference: FLOOR },
      { name: GRPC, unit: "ms", samples: grpcParts, reference: FLOOR },
      { name: WRITE, unit: "ms", samples: writeParts, reference: FLOOR },
    ];
  } finally {
    watchStream?.destroy();
    watcher?.close();
    httpAgent.destroy();
    admin.close();
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
