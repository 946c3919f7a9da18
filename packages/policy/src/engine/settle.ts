// The batch pipeline: settle takes what catalog intake or a policy change marked in a batch
// and recomputes exactly what depends on it, in dependency order, then returns the deltas.
//   1. destinations to recompile: their matching rules        (rule-set.ts)
//   2. identities to re-match: their rule memberships         (rule-set.ts)
//   3. decisions of changed members, patched                  (decisions.ts)
//   4. decisions where a destination's rules changed, whole   (decisions.ts)
//   5. principals whose holders changed: more rebuilds        (here)
//   6. principal lists, then imports/exports, then access     (access-intents.ts,
//      intents                                                  imports-exports.ts)
import { trustDomainOf } from "@isthmus/model";
import {
  accessExplicit,
  accessHeld,
  finalizeAccess,
  type PrincipalListsMemo,
  rebuildDestination,
} from "./access-intents.js";
import type { Deltas } from "./api.js";
import { type Batch, finishBatch } from "./batch.js";
import { decideDestinations, patchDecisions } from "./decisions.js";
import {
  crossClusterAllowed,
  type Destination,
  type EngineState,
  type Rule,
  sameClusterAllowed,
} from "./engine-state.js";
import { markAllowedClusters, markService, recomputeLogical } from "./imports-exports.js";
import { matchRecompiledDestinations, updateMemberships } from "./rule-set.js";

/** Recomputes what the batch marked and returns its deltas. */
export function settle(state: EngineState, batch: Batch): Deltas {
  const recompiled = matchRecompiledDestinations(state, batch);
  const memberships = updateMemberships(state, batch);
  patchDecisions(state.identities, batch, recompiled, memberships);
  decideDestinations(batch, recompiled);
  markSharedPrincipals(state, batch, new Set(memberships.changed.keys()));
  rebuildMarked(state, batch, recompiled);
  return finishBatch(state, batch);
}

/**
 * Step 5: principals whose holders changed: the destinations of the other holders' rules
 * (`done`: rules whose destinations are handled already), and trust-domain wide deny lists
 * when the local trust domain is allowed by default.
 */
function markSharedPrincipals(state: EngineState, batch: Batch, done: Set<Rule>): void {
  const { catalog } = state;
  // forEach: a for-of over entries allocates a pair per entry.
  batch.principals.forEach((concerned, principal) => {
    for (const h of catalog.identitiesWithPrincipal(principal)) {
      const identity = state.identities.get(h.key);
      if (identity === undefined) continue;
      for (const r of identity.rules) {
        if (done.has(r)) continue;
        done.add(r);
        for (const d of r.destinations) batch.rebuild.add(d);
      }
    }
    if (crossClusterAllowed(state)) {
      for (const c of catalog.clusterIds()) batch.rebuildClusters.add(c);
    } else if (sameClusterAllowed(state)) {
      // Remote holders in the local trust domain are candidates of every destination of
      // the trust domain's clusters (per-cluster trust domains: nothing to do).
      const sharing = catalog.clustersWithTrustDomain(trustDomainOf(principal));
      const alone = typeof concerned === "string";
      let more = 0;
      if (alone) more = sharing.has(concerned) ? 0 : 1;
      else for (const c of concerned) if (!sharing.has(c)) more++;
      if (sharing.size + more > 1) {
        for (const c of sharing) batch.rebuildClusters.add(c);
        if (alone) batch.rebuildClusters.add(concerned);
        else for (const c of concerned) batch.rebuildClusters.add(c);
      }
    }
  });
  for (const c of batch.rebuildClusters) {
    for (const d of state.destinationsByCluster.get(c) ?? []) batch.rebuild.add(d);
  }
}

/** Step 6: rebuild destinations, then their logical services, then access intents. */
function rebuildMarked(state: EngineState, batch: Batch, recompiled: Set<Destination>): void {
  const finalize = new Set<Destination>();
  const memo: PrincipalListsMemo = new Map();
  /**
   * `recordChanged`: the destination's record changed. Otherwise its access intent is
   * rebuilt only when its principal groups, enforceability or presence changed (its record
   * and the defaults did not: the groups kept their objects when equal).
   */
  const rebuildOne = (d: Destination, recordChanged: boolean) => {
    if (!d.live) return;
    const { allowedClusters, allowGroups, denyGroups, enforceable } = d;
    rebuildDestination(state, d, memo);
    if (
      recordChanged ||
      d.allowGroups !== allowGroups ||
      d.denyGroups !== denyGroups ||
      d.enforceable !== enforceable ||
      accessExplicit(state, d) !== accessHeld(state, d)
    ) {
      finalize.add(d);
    }
    if (allowedClusters !== d.allowedClusters) markAllowedClusters(batch, d, allowedClusters);
  };
  for (const d of recompiled) {
    markService(batch, d.record.clusterId, d.record.logicalKey, d);
    rebuildOne(d, true);
  }
  for (const d of batch.redecide) if (!recompiled.has(d)) rebuildOne(d, false);
  for (const d of batch.rebuild) {
    if (!recompiled.has(d) && !batch.redecide.has(d)) rebuildOne(d, false);
  }
  for (const [key, changes] of batch.logicalServices) {
    recomputeLogical(state, batch, key, changes, finalize);
  }
  for (const d of finalize) if (d.live) finalizeAccess(state, batch, d);
}
