// Real etcd processes for tests: one member or a cluster, on loopback ports picked free, each
// in its own temporary data dir, with per-member stop/kill/pause/resume/start. Debian's
// `etcd-server` provides the binary (.ci/run installs it); without it, tests skip.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether an `etcd` binary is on PATH (checked once). */
export const etcdAvailable: boolean = (() => {
  try {
    execFileSync("etcd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** Skips the calling mocha suite or test, with a printed reason, when etcd is missing. */
export function skipWithoutEtcd(context: Mocha.Context): void {
  if (etcdAvailable) return;
  console.log("    skipped: no `etcd` on PATH (Debian package etcd-server; .ci/run installs it)");
  context.skip();
}

export interface EtcdMember {
  name: string;
  /** Client URL, `http://127.0.0.1:<port>`. */
  endpoint: string;
  dataDir: string;
  /** Whether the process runs (paused counts as running). */
  readonly running: boolean;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the process stays, stops answering. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Starts the member again on its data dir and ports; waits until it answers /health
   * (only when its cluster has a quorum, so pass `waitHealthy: false` to start a minority). */
  start(options?: { waitHealthy?: boolean }): Promise<void>;
  /** Whether the member answers /health with true (it is up and its cluster has a leader). */
  healthy(): Promise<boolean>;
  /** Lines etcd wrote to stderr, for a failing test's message. */
  log(): string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL. */
  endpoints: string[];
  /** Stops every member and removes the data dirs. */
  close(): Promise<void>;
}

export interface EtcdOptions {
  /** Raft timings in ms; small by default so that tests of member loss stay short. */
  heartbeatMs?: number;
  electionMs?: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: string };
    return body.health === "true";
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
}

function launch(spec: MemberSpec, all: MemberSpec[], state: "new" | "existing", o: EtcdOptions) {
  const peer = (m: MemberSpec) => `http://127.0.0.1:${m.peerPort}`;
  const client = `http://127.0.0.1:${spec.clientPort}`;
  const args = [
    `--name=${spec.name}`,
    `--data-dir=${spec.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer(spec)}`,
    `--initial-advertise-peer-urls=${peer(spec)}`,
    `--initial-cluster=${all.map((m) => `${m.name}=${peer(m)}`).join(",")}`,
    `--initial-cluster-state=${state}`,
    "--initial-cluster-token=isthmus-test",
    `--heartbeat-interval=${o.heartbeatMs ?? 100}`,
    `--election-timeout=${o.electionMs ?? 1000}`,
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
  return spawn("etcd", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * Starts `size` members forming one cluster and waits until every member is healthy (has a
 * leader). Ports are picked free just before the start; a port taken in between fails the start.
 */
export async function startEtcdCluster(
  size: number,
  options: EtcdOptions = {},
): Promise<EtcdCluster> {
  const root = await mkdtemp(join(tmpdir(), "isthmus-etcd-"));
  const specs: MemberSpec[] = [];
  for (let i = 0; i < size; i++) {
    specs.push({
      name: `m${i}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      dataDir: join(root, `m${i}`),
    });
  }
  const members = specs.map((spec) => createMember(spec, specs, options));
  try {
    await Promise.all(members.map((m) => m.startFirst()));
  } catch (err) {
    await Promise.all(members.map((m) => m.kill()));
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    async close() {
      for (const m of members) if (m.paused) m.resume();
      await Promise.all(members.map((m) => m.kill()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** One member: a cluster of one. */
export function startEtcd(options: EtcdOptions = {}): Promise<EtcdCluster> {
  return startEtcdCluster(1, options);
}

function createMember(spec: MemberSpec, all: MemberSpec[], options: EtcdOptions) {
  const endpoint = `http://127.0.0.1:${spec.clientPort}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = "";
  let started = false;

  const run = async (waitHealthy: boolean) => {
    if (child !== undefined) throw new Error(`etcd member ${spec.name} is already running`);
    const proc = launch(spec, all, started ? "existing" : "new", options);
    started = true;
    child = proc;
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      // Bounded: a long test must not keep every log line.
      stderr = (stderr + chunk).slice(-20_000);
    });
    exited = new Promise((resolve) => {
      proc.once("exit", () => {
        if (child === proc) child = undefined;
        member.paused = false;
        resolve();
      });
    });
    if (!waitHealthy) return;
    const deadline = Date.now() + 20_000;
    while (!(await healthy(endpoint))) {
      if (child !== proc)
        throw new Error(`etcd member ${spec.name} exited at start: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline)
        throw new Error(`etcd member ${spec.name} not healthy after 20 s: ${stderr.slice(-2000)}`);
      await sleep(50);
    }
  };
  const signal = async (sig: NodeJS.Signals) => {
    const proc = child;
    if (proc === undefined) return;
    if (member.paused && sig !== "SIGKILL") proc.kill("SIGCONT");
    proc.kill(sig);
    await exited;
  };

  const member = {
    name: spec.name,
    endpoint,
    dataDir: spec.dataDir,
    paused: false,
    get running() {
      return child !== undefined;
    },
    startFirst: () => run(true),
    start: async (o: { waitHealthy?: boolean } = {}) => run(o.waitHealthy ?? true),
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    pause() {
      if (child === undefined) throw new Error(`etcd member ${spec.name} is not running`);
      child.kill("SIGSTOP");
      member.paused = true;
    },
    resume() {
      if (child === undefined) throw new Error(`etcd member ${spec.name} is not running`);
      child.kill("SIGCONT");
      member.paused = false;
    },
    healthy: () => healthy(endpoint),
    log: () => stderr,
  };
  return member;
}
