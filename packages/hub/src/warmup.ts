// Warm-up after a restart: until every cluster enrolled before it has reconnected and sent
// its catalog (or the grace period `warmupSeconds` has passed), the hub knows only part of
// the catalog, so it sends no removals: an intent missing then may only be not yet computed.
import type { Logger } from "@isthmus/logging";
import type { ClusterCatalog } from "./context.js";
import type { Registry } from "./registry.js";

export interface Warmup {
  /** Whether warm-up is over (removals may be sent). */
  warm(): boolean;
  /** Starts the grace period's timer. */
  start(): void;
  /** Begins a warm-up anew (a replica taking over as leader) and starts its timer. */
  begin(): void;
  /** A cluster sent a full snapshot: warm-up ends when every enrolled one has. */
  snapshotReceived(): void;
  stop(): void;
}

export function createWarmup(options: {
  registry: Registry;
  catalogs: ReadonlyMap<string, ClusterCatalog>;
  warmupSeconds: number;
  logger: Logger;
  /** Called once when warm-up ends. */
  ended(): void;
}): Warmup {
  const { registry, catalogs, logger } = options;
  // Warm-up waits for the clusters that were enrolled before the restart.
  const enrolled = () =>
    [...registry.clusters.values()]
      .filter((r) => r.certSerials.length > 0)
      .map((r) => r.cluster.id);
  let warm = enrolled().length === 0 || options.warmupSeconds === 0;
  let warmupTimer: NodeJS.Timeout | undefined;
  const endWarmup = (reason: string) => {
    if (warm) return;
    warm = true;
    if (warmupTimer !== undefined) clearTimeout(warmupTimer);
    logger.info("warm-up ended", { reason });
    options.ended();
  };
  return {
    warm: () => warm,
    start() {
      if (warm) return;
      warmupTimer = setTimeout(
        () => endWarmup("grace period passed"),
        options.warmupSeconds * 1000,
      );
      warmupTimer.unref();
    },
    begin() {
      if (warmupTimer !== undefined) clearTimeout(warmupTimer);
      warm = enrolled().length === 0 || options.warmupSeconds === 0;
      this.start();
    },
    snapshotReceived() {
      if (warm) return;
      const waiting = enrolled().filter((id) => (catalogs.get(id)?.revision ?? 0n) === 0n);
      if (waiting.length > 0) return;
      // The snapshot waits in the catalog queue until its turn of the event loop ends: end the
      // warm-up after that (a later setImmediate), or the removals it releases are computed by
      // an engine that lacks the last cluster's catalog.
      setImmediate(() => endWarmup("every known cluster reconnected"));
    },
    stop() {
      if (warmupTimer !== undefined) clearTimeout(warmupTimer);
    },
  };
}
