// The parent's side of the convergence benchmark (bench/convergence.ts): forking the cluster
// host processes and talking to them over IPC, and following the import ServiceEntries of
// every cluster through kubesim watches.
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { FromHost, HostStart, ToHost } from "./convergence-host.js";
import { openWatch } from "./kube-http.js";

const CHILD = fileURLToPath(new URL("./convergence-host.ts", import.meta.url));
const NS = "shop";
const SE = ["networking.istio.io/v1", "ServiceEntry"] as const;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a rejection with `why()` after `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  why: () => string,
): Promise<T> {
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

/** A cluster host process: its API servers' URLs (in the order of `HostStart.clusters`) and
 * a request/answer channel over IPC. */
export interface HostProcess {
  child: ChildProcess;
  urls: string[];
  send(m: ToHost): void;
  /** Sends `m` and resolves with the next answer of `type`. */
  ask<T extends FromHost["type"]>(m: ToHost, type: T): Promise<Extract<FromHost, { type: T }>>;
}

export function forkHost(start: HostStart): Promise<HostProcess> {
  const child = fork(CHILD, [], {
    execArgv: ["--import", "tsx"],
    stdio: "inherit",
  });
  const waiting = new Map<string, ((m: FromHost) => void)[]>();
  let failure: Error | undefined;
  const failAll = (err: Error) => {
    failure ??= err;
    for (const list of waiting.values())
      for (const f of list) f({ type: "error", message: err.message });
    waiting.clear();
  };
  child.on("message", (m: FromHost) => {
    if (m.type === "error") return failAll(new Error(`cluster host process: ${m.message}`));
    const list = waiting.get(m.type);
    list?.shift()?.(m);
  });
  child.on("exit", (code, signal) =>
    failAll(new Error(`cluster host process exited (${code ?? signal})`)),
  );
  const ask = <T extends FromHost["type"]>(m: ToHost, type: T) =>
    new Promise<Extract<FromHost, { type: T }>>((resolve, reject) => {
      if (failure !== undefined) return reject(failure);
      const list = waiting.get(type) ?? [];
      list.push((answer) =>
        answer.type === "error"
          ? reject(new Error(answer.message))
          : resolve(answer as Extract<FromHost, { type: T }>),
      );
      waiting.set(type, list);
      child.send(m);
    });
  return ask({ type: "start", start }, "ready").then(({ urls }) => ({
    child,
    urls,
    send: (m) => child.send(m),
    ask,
  }));
}

interface Pending {
  waitingFor: Set<number>;
  started: number;
  done: (ms: number) => void;
}

const IMPORT = /^isthmus-import-(svc-\d+)$/;
/** A watch line that may carry one: checked again on the parsed object. */
const IMPORT_LINE = /"name":"isthmus-import-svc-\d+"/;

/** Follows the import ServiceEntries of `shop` in every cluster through one kubesim watch
 * each (HTTP, as any client sees them): resolves an event once its ServiceEntry has been
 * written in every cluster waited for. */
export async function createWatcher(urls: string[]) {
  const pending = new Map<string, Pending>();
  const seen = new Map<string, Set<number>>();
  const now = performance.now.bind(performance);
  const streams = await Promise.all(
    urls.map((url, i) =>
      openWatch(`${url}/apis/${SE[0]}/namespaces/${NS}/serviceentries?watch=1`, (line) => {
        // Most lines are other ServiceEntries (per-cluster imports, exports): not worth
        // parsing in the hub's process, whose CPU time is a figure of its own.
        if (!IMPORT_LINE.test(line)) return;
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
      }),
    ),
  );
  return {
    /** Resolves with the ms from `started` until svc's import ServiceEntry is in every one
     * of `clusters` (indexes). */
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
