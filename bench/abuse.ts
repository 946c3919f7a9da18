// What abusive clients cost a well-behaved admin: one hub process (`isthmus hub`, its own
// process so that its memory is its own), a simulated agent changing its catalog all along,
// and an admin calling GetStatus at a steady pace; first alone, then with 1,000 abusive
// clients on loopback, each from its own address: catalog watchers that never read,
// unauthenticated 13.6 MiB ApplyPolicies, and token guessers. Figures: the admin's GetStatus
// latency and the hub's peak RSS in both phases of the same run, and what the hub refused.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdminService, clientCredentials, createClient, Visibility } from "@isthmus/proto";
import type { BenchOptions, Figure } from "./harness.js";
import { connectSimulatedAgent } from "./lib/bench-hub.js";

const ADMIN_TOKEN = "bench-admin-token-0123456789";
const VIEWER_TOKEN = "bench-viewer-token-0123456789";
const CLI = fileURLToPath(new URL("../packages/cli/bin/isthmus.js", import.meta.url));
const ABUSERS = fileURLToPath(new URL("./lib/abusers.ts", import.meta.url));

const ALONE = "admin GetStatus, no abusers";
const ABUSED = "admin GetStatus, with abusers";
const RSS_ALONE = "hub peak RSS, no abusers";
const RSS_ABUSED = "hub peak RSS, with abusers";
const CPU_ALONE = "hub CPU time per second, no abusers";
const CPU_ABUSED = "hub CPU time per second, with abusers";

function scale(smoke: boolean) {
  return smoke
    ? { abusers: 30, services: 100, churn: 10, phaseMs: 2_000 }
    : { abusers: 1000, services: 2000, churn: 200, phaseMs: 20_000 };
}

interface HubProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  caPem: string;
  /** Peak and current resident set size of the hub process, MiB (Linux /proc). */
  rss(): { peak: number; now: number };
  /** CPU time the hub process used so far (user + system), ms (Linux /proc). */
  cpuMs(): number;
  close(): Promise<void>;
}

async function startHubProcess(): Promise<HubProcess> {
  const dir = mkdtempSync(join(tmpdir(), "isthmus-bench-abuse-"));
  const config = join(dir, "hub.yaml");
  writeFileSync(
    config,
    JSON.stringify({
      listen: "127.0.0.1:0",
      metricsListen: "127.0.0.1:0",
      dataDir: join(dir, "data"),
      warmupSeconds: 0,
      adminTokens: [
        { name: "ops", role: "admin", token: ADMIN_TOKEN },
        { name: "dash", role: "viewer", token: VIEWER_TOKEN },
      ],
    }),
  );
  const child = spawn(process.execPath, [CLI, "hub", "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
    // Info: the "hub started" record holds the ports. The hub logs per agent, not per call.
    env: { ...process.env, ISTHMUS_LOG_LEVEL: "info", ISTHMUS_LOG_FORMAT: "json" },
    // A session of its own: with Linux's autogroup scheduling, its own share of the CPU,
    // as on a machine of its own, not one taken from the abusers' or the benchmark's.
    detached: true,
  });
  child.stdout!.resume();
  // The hub logs JSON lines on stderr; its "hub started" record holds the ports.
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    let out = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      for (const line of out.split("\n").slice(0, -1)) {
        const r = JSON.parse(line) as { message?: string; port?: number; metricsPort?: number };
        if (r.message !== "hub started") continue;
        child.stderr!.removeAllListeners("data");
        child.stderr!.resume();
        resolve([r.port!, r.metricsPort!]);
        return;
      }
    });
    child.once("exit", (code) => reject(new Error(`hub exited with ${code}: ${out}`)));
  });
  const kib = (field: string) => {
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  };
  return {
    child,
    port: ports[0],
    metricsPort: ports[1],
    caPem: readFileSync(join(dir, "data", "control-plane", "ca-cert.pem"), "utf8"),
    rss: () => ({ peak: kib("VmHWM") / 1024, now: kib("VmRSS") / 1024 }),
    cpuMs: () => {
      // Fields 14 and 15 of /proc/<pid>/stat, after the command name in parentheses: user and
      // system time in clock ticks (100 per second on Linux).
      const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async close() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const service = (i: number, ready: number) => ({
  namespace: `ns-${i % 20}`,
  name: `svc-${i}`,
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  selector: { app: `svc-${i}` },
  visibility: Visibility.PRIVATE,
  readyEndpoints: ready,
  serviceAccounts: [`sa-${i}`],
  inMesh: true,
});

/** Calls GetStatus every 20 ms (below the per-client rate) for `ms`; latencies in ms. */
async function adminLoop(admin: ReturnType<typeof createAdmin>, ms: number): Promise<number[]> {
  const samples: number[] = [];
  const auth = { metadata: { authorization: `Bearer ${ADMIN_TOKEN}` }, timeoutMs: 30_000 };
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t = performance.now();
    await admin.getStatus({}, auth);
    samples.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  return samples;
}

const createAdmin = (port: number, caPem: string) =>
  createClient(AdminService, `localhost:${port}`, clientCredentials({ caPem }));

/** Starts the abusive clients in their own process (bench/lib/abusers.ts). */
function startAbusers(hub: HubProcess, count: number) {
  const child = fork(
    ABUSERS,
    [JSON.stringify({ port: hub.port, caPem: hub.caPem, count, viewerToken: VIEWER_TOKEN })],
    {
      execArgv: ["--import", import.meta.resolve("tsx")],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      detached: true, // its own scheduling group too (see startHubProcess)
    },
  );
  const messages: unknown[] = [];
  let heard: () => void = () => {};
  child.on("message", (m) => {
    messages.push(m);
    heard();
  });
  const next = <T>(key: string) =>
    new Promise<T>((resolve, reject) => {
      const look = () => {
        const m = messages.find((x) => typeof x === "object" && x !== null && key in x);
        if (m !== undefined) resolve((m as Record<string, T>)[key]!);
      };
      heard = look;
      look();
      child.once("exit", (code) =>
        reject(new Error(`abusers exited with ${code} before "${key}"`)),
      );
    });
  return {
    /** Resolves with the number of abusers connected, once they all tried. */
    ready: () => next<number>("ready"),
    /** Stops every abuser; resolves with how their calls were answered. */
    stop() {
      child.send("stop");
      return next<Record<string, number>>("answered");
    },
  };
}

/** One timed phase of the admin's GetStatus loop, with abusers when `abuse` is given. */
async function phase(
  hub: HubProcess,
  admin: ReturnType<typeof createAdmin>,
  ms: number,
  abusers?: number,
) {
  const abuse = abusers === undefined ? undefined : startAbusers(hub, abusers);
  const connected = (await abuse?.ready()) ?? 0;
  const cpu = hub.cpuMs();
  const t = performance.now();
  const latencies = await adminLoop(admin, ms);
  const elapsed = performance.now() - t;
  const cpuPerSecond = ((hub.cpuMs() - cpu) / elapsed) * 1000;
  const answered = Object.values((await abuse?.stop()) ?? {}).reduce((a, b) => a + b, 0);
  return {
    latencies,
    peakRss: hub.rss().peak,
    cpu: cpuPerSecond,
    connected,
    answeredPerSecond: (answered / elapsed) * 1000,
  };
}

async function refusals(hub: HubProcess): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${hub.metricsPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(
    /^isthmus_hub_(refused_calls_total|catalog_watch_cutoffs_total)\{reason="([^"]+)"\} (\d+)/gm,
  ))
    out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  return out;
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
  const hub = await startHubProcess();
  const admin = createAdmin(hub.port, hub.caPem);
  const auth = { metadata: { authorization: `Bearer ${ADMIN_TOKEN}` } };
  let churning = true;
  try {
    const created = await admin.createCluster({ cluster: { id: "a" } }, auth);
    const agent = await connectSimulatedAgent(
      `127.0.0.1:${hub.port}`,
      hub.caPem,
      "a",
      created.bootstrapToken,
      () => {},
    );
    let revision = 1n;
    await agent.send({
      message: {
        case: "catalogUpdate",
        value: {
          fullSnapshot: true,
          revision,
          upsertedServices: Array.from({ length: s.services }, (_, i) => service(i, 1)),
        },
      },
    });
    // The catalog changes all along, in both phases: `churn` services every 100 ms.
    const churn = (async () => {
      for (let round = 0; churning; round++) {
        revision += 1n;
        const from = (round * s.churn) % s.services;
        await agent.send({
          message: {
            case: "catalogUpdate",
            value: {
              revision,
              upsertedServices: Array.from({ length: s.churn }, (_, k) =>
                service((from + k) % s.services, 2 + round),
              ),
            },
          },
        });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await adminLoop(admin, 500); // warm-up: connection, first compiles
    const alone = await phase(hub, admin, s.phaseMs);
    // The abusers run on the same cores as the hub and the admin: their own CPU use slows
    // every process of the machine, which the hub's CPU time per second tells apart.
    const abused = await phase(hub, admin, s.phaseMs, s.abusers);
    churning = false;
    await churn;
    agent.close();
    const refused = await refusals(hub);
    return [
      { name: ALONE, unit: "ms", samples: alone.latencies },
      { name: ABUSED, unit: "ms", samples: abused.latencies, reference: ALONE },
      { name: RSS_ALONE, unit: "MiB", samples: [alone.peakRss] },
      { name: RSS_ABUSED, unit: "MiB", samples: [abused.peakRss], reference: RSS_ALONE },
      { name: CPU_ALONE, unit: "ms/s", samples: [alone.cpu] },
      { name: CPU_ABUSED, unit: "ms/s", samples: [abused.cpu], reference: CPU_ALONE },
      {
        name: "abusive clients connected",
        unit: "clients",
        samples: [abused.connected],
      },
      {
        name: "abusive calls answered per second",
        unit: "calls/s",
        samples: [abused.answeredPerSecond],
      },
      ...[...refused].map(([k, v]) => ({
        name: `hub ${k.replace(/_/g, " ")}`,
        unit: "calls",
        samples: [v],
      })),
    ];
  } finally {
    churning = false;
    admin.close();
    await hub.close();
  }
}
