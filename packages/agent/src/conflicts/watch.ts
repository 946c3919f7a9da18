// Keeps the cluster's conflict list current: any change of a pod, namespace, policy or the
// mesh config schedules one detection after a short quiet window (a rollout is one detection,
// not one per pod); listeners hear only when the list changed.
import { type Logger, silentLogger } from "@isthmus/logging";
import type { Reconciler } from "../apply/reconciler.js";
import type { ClusterCache } from "../discovery/cache.js";
import { canonicalJson } from "../kube-object.js";
import { type ConflictRecord, detectConflicts } from "./detect.js";

export interface ConflictWatchOptions {
  clusterId: string;
  cache: ClusterCache;
  reconciler: Pick<Reconciler, "accessIntents">;
  /** Quiet window before a detection, in ms. Default 200. */
  windowMs?: number;
  logger?: Logger;
}

export interface ConflictWatch {
  /** The conflicts found by the last detection. */
  current(): ConflictRecord[];
  /** Called after a detection whose list differs from the previous one. */
  onChange(cb: (conflicts: ConflictRecord[]) => void): void;
  /** Detects now (after the caches synced); also what every change schedules. */
  detect(): void;
  stop(): void;
}

export function createConflictWatch(options: ConflictWatchOptions): ConflictWatch {
  const logger = options.logger ?? silentLogger;
  const windowMs = options.windowMs ?? 200;
  const listeners: ((c: ConflictRecord[]) => void)[] = [];
  let conflicts: ConflictRecord[] = [];
  let key = "[]";
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function detect(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (stopped) return;
    const { cache } = options;
    let next: ConflictRecord[];
    try {
      next = detectConflicts({
        clusterId: options.clusterId,
        trustDomain: cache.mesh().facts.trustDomain,
        objects: cache.securityObjects(),
        access: options.reconciler.accessIntents(),
        podPorts: (ns, svc) => cache.facts().endpoints(ns, svc)?.podPorts,
      });
    } catch (err) {
      // The model refuses input it cannot read (a mesh config that is not YAML): the cluster
      // warning says so already; keep the last list rather than report none.
      logger.warn("conflict detection failed", { err: (err as Error).message });
      return;
    }
    const nextKey = canonicalJson(next);
    if (nextKey === key) return;
    conflicts = next;
    key = nextKey;
    for (const c of next)
      logger.warn("foreign object conflicts with isthmus", {
        kind: c.kind,
        object: c.object,
        service: c.service,
      });
    for (const cb of listeners) cb(next);
  }

  options.cache.onSecurity(() => {
    if (timer === undefined && !stopped) {
      timer = setTimeout(detect, windowMs);
      timer.unref();
    }
  });

  return {
    current: () => conflicts,
    onChange: (cb) => void listeners.push(cb),
    detect,
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
