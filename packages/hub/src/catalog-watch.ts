// AdminService.WatchCatalog: the catalog as it is, then every change, to one watcher.
//
// A watcher's backlog is the set of catalog entries that changed since it was last sent
// them, not a queue of events: an entry that changes six times while the watcher reads
// slowly is sent once, in its state at the time of sending. The backlog is therefore bounded
// by the catalog's size, whatever the rate of change; past `watch.maxPendingChanges`, or when
// the watcher reads nothing for `watch.stallSeconds` while changes wait, it is ended with
// RESOURCE_EXHAUSTED and the reason, and its backlog is dropped at once.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CatalogEventType,
  type CatalogFilter,
  Code,
  GrpcError,
  type ServerStream,
  type Service,
  type WatchCatalogResponseSchema,
} from "@isthmus/proto";
import type { WatchContext } from "./context.js";

type Event = MessageInitShape<typeof WatchCatalogResponseSchema>;

function matches(filter: CatalogFilter | undefined, clusterId: string, key: string): boolean {
  if (filter?.clusterId && filter.clusterId !== clusterId) return false;
  if (!filter?.namespace && !filter?.service) return true;
  const [namespace = "", name = ""] = key.split("/");
  return (
    (!filter.namespace || filter.namespace === namespace) &&
    (!filter.service || filter.service === name)
  );
}

/** The entries one watcher has not been sent since they changed, by cluster. */
function createBacklog(ctx: WatchContext) {
  const byCluster = new Map<string, Set<string>>();
  let size = 0;
  return {
    get size() {
      return size;
    },
    add(clusterId: string, key: string): void {
      let keys = byCluster.get(clusterId);
      if (keys === undefined) {
        keys = new Set();
        byCluster.set(clusterId, keys);
      }
      if (keys.has(key)) return;
      keys.add(key);
      size += 1;
      ctx.metrics.watchPending.inc();
    },
    /** The oldest waiting entry, removed from the backlog. */
    take(): [clusterId: string, key: string] | undefined {
      for (const [clusterId, keys] of byCluster) {
        for (const key of keys) {
          keys.delete(key);
          if (keys.size === 0) byCluster.delete(clusterId);
          size -= 1;
          ctx.metrics.watchPending.dec();
          return [clusterId, key];
        }
        byCluster.delete(clusterId);
      }
      return undefined;
    },
    clear(): void {
      ctx.metrics.watchPending.dec(size);
      byCluster.clear();
      size = 0;
    },
  };
}

/** The event that tells a watcher the current state of one entry. */
function eventOf(ctx: WatchContext, clusterId: string, key: string): Event {
  const cat = ctx.catalogs.get(clusterId);
  const service = cat?.services.get(key);
  if (cat !== undefined && service !== undefined)
    return {
      type: CatalogEventType.UPSERTED,
      service: { clusterId, service, stale: !cat.connected },
    };
  const [namespace = "", name = ""] = key.split("/");
  return {
    type: CatalogEventType.REMOVED,
    service: { clusterId, service: { namespace, name } },
  };
}

/** Serves one WatchCatalog call until the watcher goes away or is cut off. */
export async function watchCatalog(
  ctx: WatchContext,
  filter: CatalogFilter | undefined,
  stream: ServerStream<typeof WatchCatalogResponseSchema>,
  signal: AbortSignal,
): Promise<void> {
  const { maxPendingChanges, stallSeconds } = ctx.config.watch;
  const backlog = createBacklog(ctx);
  let ended: GrpcError | undefined;
  // Every wait of the loop below is one promise that whatever it waits for resolves: a
  // change, the end of a send, the end of the call. Nothing is registered per wait.
  let resume: (() => void) | undefined;
  const wake = () => {
    const r = resume;
    resume = undefined;
    r?.();
  };
  const waitForWake = () =>
    new Promise<void>((resolve) => {
      resume = resolve;
    });
  const cutOff = (reason: "too-many-pending" | "stalled", message: string) => {
    if (ended !== undefined) return;
    ended = new GrpcError(
      Code.RESOURCE_EXHAUSTED,
      `catalog watch ended: ${message}; watch again for a fresh snapshot`,
    );
    ctx.metrics.watchCutoffs.inc({ reason });
    ctx.catalogEvents.delete(listener);
    backlog.clear();
    wake();
  };
  const listener = (clusterId: string, _service: Service | undefined, key: string) => {
    if (!matches(filter, clusterId, key)) return;
    backlog.add(clusterId, key);
    if (backlog.size > maxPendingChanges)
      cutOff(
        "too-many-pending",
        `${backlog.size} changed entries waited to be sent (watch.maxPendingChanges ${maxPendingChanges}): the watcher reads too slowly`,
      );
    wake();
  };
  let sending = false;
  const stall =
    stallSeconds > 0
      ? setTimeout(() => {
          if (sending)
            cutOff(
              "stalled",
              `the watcher read nothing for ${stallSeconds} s while changes waited (watch.stallSeconds)`,
            );
        }, stallSeconds * 1000).unref()
      : undefined;
  /** Sends one event; false when the call ended meanwhile. */
  const send = async (event: Event): Promise<boolean> => {
    let done = false;
    sending = true;
    stall?.refresh();
    stream.send(event).then(
      () => {
        done = true;
        wake();
      },
      (err: unknown) => {
        ended ??= GrpcError.from(err);
        wake();
      },
    );
    while (!done && ended === undefined && !signal.aborted) await waitForWake();
    sending = false;
    return done;
  };
  const onAbort = () => wake();
  signal.addEventListener("abort", onAbort, { once: true });
  ctx.catalogEvents.add(listener);
  ctx.metrics.watchers.inc();
  try {
    for (const [clusterId, cat] of ctx.catalogs) {
      for (const [key, service] of cat.services) {
        if (!matches(filter, clusterId, key)) continue;
        const event = {
          type: CatalogEventType.UPSERTED,
          service: { clusterId, service, stale: !cat.connected },
        };
        if (!(await send(event))) break;
      }
    }
    while (ended === undefined && !signal.aborted) {
      const next = backlog.take();
      if (next === undefined) await waitForWake();
      else await send(eventOf(ctx, ...next));
    }
    if (ended !== undefined && !signal.aborted) throw ended;
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (stall !== undefined) clearTimeout(stall);
    ctx.catalogEvents.delete(listener);
    backlog.clear();
    ctx.metrics.watchers.dec();
  }
}
