// One batch of work (a catalog change set, a policy set, new defaults): what the stages mark
// for recomputation, and every intent write, recorded so that the batch ends with the deltas
// of what changed from before it to after it.
import type { ServiceRecord } from "@isthmus/model";
import type { Intent, Service } from "@isthmus/proto";
import type { Deltas } from "./api.js";
import type { Destination, EngineState } from "./engine-state.js";

/** An identity to re-match against the rules. */
export interface IdentityRef {
  clusterId: string;
  namespace: string;
  serviceAccount: string;
}

/** Changes to the importing clusters of some backers of a logical service. */
export interface LogicalServiceChanges {
  /** Clusters that became, or stopped being, importers of one of the backers. */
  importers: Set<string>;
  /** Backers whose importing clusters changed. */
  backers: Set<Destination>;
}

/** Work of one batch. */
export interface Batch {
  /** Destinations whose matching rules and decisions are recomputed, by service key. */
  recompile: Map<string, ServiceRecord>;
  /** Destinations whose decisions are recomputed (rules unchanged). */
  redecide: Set<Destination>;
  /** Identities whose rule memberships are recomputed, by key. */
  identities: Map<string, IdentityRef>;
  /** Principals whose holders changed, with the clusters concerned: the cluster itself while
   * it is the only one (nearly always: a trust domain per cluster), a set from the second on.
   * A first compile marks every principal: a set each was 100k sets of one. */
  principals: Map<string, string | Set<string>>;
  /** Destinations whose principal lists are rebuilt. */
  rebuild: Set<Destination>;
  /** Logical services to recompute: every importer (null), or the changes named. */
  logicalServices: Map<string, LogicalServiceChanges | null>;
  /** Every destination of these clusters is rebuilt. */
  rebuildClusters: Set<string>;
  /** cluster -> intent name -> its version before the batch (null: absent). What it is now
   * is in `intentsByCluster`: a first compile touches every intent, and an object per touch
   * would be hundreds of MB of garbage across a fleet. */
  touched: Map<string, Map<string, string | null>>;
}

export function newBatch(): Batch {
  return {
    recompile: new Map(),
    redecide: new Set(),
    identities: new Map(),
    principals: new Map(),
    rebuild: new Set(),
    logicalServices: new Map(),
    rebuildClusters: new Set(),
    touched: new Map(),
  };
}

/** Sets (or with null, removes) a desired intent, recording its version before the batch. */
export function setIntent(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  name: string,
  next: Intent | null,
): void {
  let map = state.intentsByCluster.get(clusterId);
  const prev = map?.get(name);
  // Unchanged: nothing to record (most calls of a recompute).
  if (next === null ? prev === undefined : prev?.version === next.version) return;
  let touched = batch.touched.get(clusterId);
  if (touched === undefined) {
    touched = new Map();
    batch.touched.set(clusterId, touched);
  }
  if (!touched.has(name)) touched.set(name, prev?.version ?? null);
  if (next === null) {
    if (map !== undefined) {
      map.delete(name);
      if (map.size === 0) state.intentsByCluster.delete(clusterId);
    }
    return;
  }
  if (map === undefined) {
    map = new Map();
    state.intentsByCluster.set(clusterId, map);
  }
  map.set(name, next);
}

/** The deltas of a batch: intents whose version differs from before it, by cluster. */
export function finishBatch(state: EngineState, batch: Batch): Deltas {
  const out: Deltas = new Map();
  for (const [clusterId, names] of [...batch.touched].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const upserted: Intent[] = [];
    const removed: string[] = [];
    const held = state.intentsByCluster.get(clusterId);
    // forEach: a for-of over entries allocates a pair per entry.
    names.forEach((before, name) => {
      // setIntent writes every touch through to intentsByCluster: what it holds is the last.
      const now = held?.get(name) ?? null;
      if ((now?.version ?? null) === before) return;
      if (now === null) removed.push(name);
      else upserted.push(now);
    });
    if (upserted.length === 0 && removed.length === 0) continue;
    out.set(clusterId, { upserted, removed });
  }
  return out;
}

export function markIdentity(
  batch: Batch,
  clusterId: string,
  namespace: string,
  serviceAccount: string,
): void {
  batch.identities.set(`${clusterId}/${namespace}/${serviceAccount}`, {
    clusterId,
    namespace,
    serviceAccount,
  });
}

export function markPrincipal(batch: Batch, principal: string, clusterId: string): void {
  const held = batch.principals.get(principal);
  if (held === undefined) batch.principals.set(principal, clusterId);
  else if (typeof held !== "string") held.add(clusterId);
  else if (held !== clusterId) batch.principals.set(principal, new Set([held, clusterId]));
}

/** The service accounts of a service, when some rule selects sources by service. */
export function markServiceAccounts(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  service: Service,
): void {
  if (!state.sourcesByService) return;
  for (const sa of service.serviceAccounts) {
    if (
      state.catalog.identity(clusterId, service.namespace, sa) !== undefined ||
      state.identities.has(`${clusterId}/${service.namespace}/${sa}`)
    ) {
      markIdentity(batch, clusterId, service.namespace, sa);
    }
  }
}
