// Replicas of a highly available hub as real `isthmus hub` processes on one etcd, on loopback
// ports that survive a restart (agents are given every replica's address), with kill -9,
// SIGSTOP/SIGCONT and an admin client that follows a follower's hint to the leader.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdminService, type CallOptions, clientCredentials, createClient } from "@isthmus/proto";
import { stringify } from "yaml";
import { isthmusBin } from "./cli.js";

export interface HubReplica {
  index: number;
  /** "127.0.0.1:<port>", the same across restarts. */
  address: string;
  readonly running: boolean;
  /** JSON log lines the process wrote (bounded). */
  logs(): string;
  /** Terms this process served as leader in (from its "serving as leader" log lines). */
  terms(): bigint[];
  kill(signal?: NodeJS.Signals): Promise<void>;
  pause(): void;
  resume(): void;
  /** Starts the process again on its port and data dir. */
  start(): Promise<void>;
}

export interface HubReplicasOptions {
  dir: string;
  count: number;
  etcdEndpoints: string[];
  adminToken: string;
  /** hub.yaml keys on top of the defaults below. */
  config?: Record<string, unknown>;
  /** `file`: one hub on its data dir, no etcd (the floor of a failover). Default etcd. */
  store?: "etcd" | "file";
}

export type AdminClient = ReturnType<typeof createAdminClient>;
const createAdminClient = (address: string, caPem: string) =>
  createClient(AdminService, address, clientCredentials({ caPem }));

function startProcess(replica: {
  index: number;
  port: number;
  dir: string;
  configFile: string;
  tokenFile: string;
  etcdEndpoints: string[];
}): { child: ChildProcess; port: Promise<number>; logs: () => string } {
  const store =
    replica.etcdEndpoints.length === 0
      ? []
      : ["--store", "etcd", "--etcd-endpoints", replica.etcdEndpoints.join(",")];
  const child = spawn(
    process.execPath,
    [
      isthmusBin,
      "hub",
      "--config",
      replica.configFile,
      ...store,
      "--listen",
      `127.0.0.1:${replica.port}`,
      "--metrics-listen",
      "",
      "--data-dir",
      join(replica.dir, `replica-${replica.index}`),
      "--admin-token-file",
      replica.tokenFile,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ISTHMUS_LOG_FORMAT: "json", ISTHMUS_LOG_LEVEL: "info" },
    },
  );
  let logs = "";
  const keep = (d: Buffer) => {
    logs = (logs + d.toString()).slice(-400_000);
  };
  child.stdout!.on("data", keep);
  // The hub writes only its JSON log, on stderr; the "hub started" record holds its port.
  const port = new Promise<number>((resolve, reject) => {
    let pending = "";
    child.stderr!.on("data", (d: Buffer) => {
      keep(d);
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        let record: { message?: string; port?: number };
        try {
          record = JSON.parse(line) as typeof record;
        } catch {
          continue;
        }
        if (record.message === "hub started" && typeof record.port === "number")
          resolve(record.port);
      }
    });
    child.once("exit", (code, signal) =>
      reject(
        new Error(`hub replica ${replica.index} exited (${code ?? signal}): ${logs.slice(-2000)}`),
      ),
    );
  });
  port.catch(() => {});
  return { child, port, logs: () => logs };
}

export async function startHubReplicas(options: HubReplicasOptions) {
  mkdirSync(options.dir, { recursive: true });
  const tokenFile = join(options.dir, "admin-token");
  writeFileSync(tokenFile, options.adminToken, { mode: 0o600 });
  const configFile = join(options.dir, "hub.yaml");
  writeFileSync(
    configFile,
    stringify({
      leaderLeaseSeconds: 2,
      warmupSeconds: 30,
      graceSeconds: 60,
      debounce: { windowMs: 20, maxMs: 200 },
      ...options.config,
    }),
  );
  const replicas: HubReplica[] = [];
  for (let index = 0; index < options.count; index++) {
    let child: ChildProcess | undefined;
    let logs = () => "";
    /** Logs of the replica's earlier processes. */
    let earlier = "";
    let port = 0;
    const launch = async () => {
      const p = startProcess({
        index,
        port,
        dir: options.dir,
        configFile,
        tokenFile,
        etcdEndpoints: options.store === "file" ? [] : options.etcdEndpoints,
      });
      earlier += logs();
      child = p.child;
      logs = p.logs;
      p.child.once("exit", () => {
        if (child === p.child) child = undefined;
      });
      port = await p.port;
    };
    await launch();
    const replica: HubReplica = {
      index,
      address: `127.0.0.1:${port}`,
      get running() {
        return child !== undefined;
      },
      logs: () => earlier + logs(),
      terms: () =>
        [
          ...(earlier + logs()).matchAll(
            /"serving as leader".*?"term":"(\d+)"|"term":"(\d+)".*?"serving as leader"/g,
          ),
        ].map((m) => BigInt(m[1] ?? m[2]!)),
      async kill(signal = "SIGKILL") {
        const c = child;
        if (c === undefined) return;
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGCONT");
        c.kill(signal);
        await exited;
      },
      pause: () => child?.kill("SIGSTOP"),
      resume: () => child?.kill("SIGCONT"),
      start: launch,
    };
    replicas.push(replica);
  }
  const call: CallOptions = {
    metadata: { authorization: `Bearer ${options.adminToken}` },
    timeoutMs: 10_000,
  };
  return {
    replicas,
    call,
    /** The control-plane CA of a file-store hub (replica 0's data dir). */
    caPem: () =>
      readFileSync(join(options.dir, "replica-0", "control-plane", "ca-cert.pem"), "utf8"),
    /** The running replica that logged the newest term it serves in. */
    leader(): HubReplica {
      let best: { replica: HubReplica; term: bigint } | undefined;
      for (const r of replicas) {
        if (!r.running) continue;
        for (const term of r.terms())
          if (best === undefined || term > best.term) best = { replica: r, term };
      }
      if (best === undefined) throw new Error("no running replica logged serving as leader");
      return best.replica;
    },
    /** Every replica's address, comma separated (the agents' --hub). */
    endpoints: () => replicas.map((r) => r.address).join(","),
    /** Runs `fn` with an admin client at the leader: tries the replicas in turn and follows a
     * follower's hint; retries until a leader answers or `timeoutMs` passed. */
    async atLeader<T>(
      caPem: string,
      fn: (client: AdminClient) => Promise<T>,
      timeoutMs = 15_000,
    ): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      let i = 0;
      let last: unknown;
      for (;;) {
        const address = replicas[i++ % replicas.length]!.address;
        const client = createAdminClient(address, caPem);
        try {
          return await fn(client);
        } catch (err) {
          last = err;
          const e = err as { code?: number; message?: string };
          // Only "not the leader" and "cannot connect" are retried; anything else is the answer.
          if (e.code !== 14) throw err;
        } finally {
          client.close();
        }
        if (Date.now() > deadline) throw last;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      await Promise.all(replicas.map((r) => r.kill("SIGKILL")));
    },
  };
}

export type HubReplicas = Awaited<ReturnType<typeof startHubReplicas>>;
