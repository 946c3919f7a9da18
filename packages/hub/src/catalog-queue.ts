// Agents' catalog updates on their way to the policy engine, gathered per turn of the event
// loop into one engine batch.
import type { CatalogChange, PolicyEngine } from "@isthmus/policy";
import type { HubContext } from "./context.js";

export type CatalogQueue = Pick<HubContext, "applyCatalog" | "queueCatalog" | "catalogPending">;

export function createCatalogQueue(
  engine: Pick<PolicyEngine, "applyCatalog">,
  deliver: HubContext["deliver"],
): CatalogQueue {
  // Agents' catalog updates that arrived in the same turn of the event loop go to the engine in
  // one batch: after a hub restart a hundred snapshots arrive together, and one batch computes
  // each logical service once instead of once per backing cluster's snapshot.
  let queued: {
    changes: CatalogChange[];
    origin: number | undefined;
    refused(err: unknown): void;
  }[] = [];
  const originsOf = (items: typeof queued) =>
    items.flatMap((q) => (q.origin === undefined ? [] : [q.origin]));
  /**
   * Applies every queued update in one engine batch. Smaller batches were measured and are
   * worse: the engine recomputes a logical service for all its importers whenever one of its
   * backing clusters changes, so ten batches of a restart's snapshots cost nearly ten full
   * compiles (and their garbage), where one batch blocks the event loop once (9 s for 100k
   * services on 2 cores).
   */
  const flushCatalog = (): void => {
    if (queued.length === 0) return;
    const batch = queued;
    queued = [];
    try {
      deliver(engine.applyCatalog(batch.flatMap((q) => q.changes)), originsOf(batch));
    } catch {
      // The engine checks a batch before it changes anything: nothing was applied. One by
      // one, so that a refused update holds back no other.
      for (const q of batch) {
        try {
          deliver(engine.applyCatalog(q.changes), originsOf([q]));
        } catch (err) {
          q.refused(err);
        }
      }
    }
  };
  return {
    applyCatalog(changes, origin) {
      flushCatalog();
      if (changes.length === 0) return;
      deliver(engine.applyCatalog(changes), origin === undefined ? [] : [origin]);
    },
    catalogPending: () => queued.length > 0,
    queueCatalog(changes, origin, refused) {
      if (changes.length === 0) return;
      if (queued.length === 0) setImmediate(flushCatalog);
      queued.push({ changes, origin, refused });
    },
  };
}
