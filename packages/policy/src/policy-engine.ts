// The policy engine's facade: createPolicyEngine wires the stages of engine/ over one
// explicit state (engine/engine-state.ts). Every mutation is one batch: mark what changed
// (catalog intake, rule set, defaults), settle it (engine/settle.ts), return the deltas.
// The pipeline and its invariants: packages/policy/README.md.
import type { ConnectionPolicy, Intent, Warning } from "@isthmus/proto";
import { accessPresent } from "./engine/access-intents.js";
import type { Deltas, PolicyEngine, PolicyEngineOptions } from "./engine/api.js";
import { finishBatch, newBatch } from "./engine/batch.js";
import { applyCatalogChange, checkCatalogChanges } from "./engine/catalog-intake.js";
import { finalizeDefaultAccess } from "./engine/default-access.js";
import {
  checkDefault,
  createEngineState,
  type Destination,
  type EngineState,
  warning,
} from "./engine/engine-state.js";
import { explain } from "./engine/explain.js";
import { impact } from "./engine/impact.js";
import { installPlan, planRules } from "./engine/rule-set.js";
import { settle } from "./engine/settle.js";
import { sortPolicies } from "./policy-canonical.js";

export type {
  ClusterDelta,
  Deltas,
  DestinationRefLike,
  PolicyDefaults,
  PolicyEngine,
  PolicyEngineOptions,
  SourceRefLike,
} from "./engine/api.js";

const NO_INTENTS: ReadonlyMap<string, Intent> = new Map<string, Intent>();

/** A policy engine with an empty catalog and no policies. */
export function createPolicyEngine(options?: PolicyEngineOptions): PolicyEngine {
  const state = createEngineState(options);
  const { catalog, defaults } = state;
  let revision = 0;
  return {
    catalog,
    revision: () => revision,
    get defaults() {
      return { ...defaults };
    },

    applyCatalog(changes) {
      revision += 1;
      checkCatalogChanges(state, changes);
      const batch = newBatch();
      for (const c of changes) applyCatalogChange(state, batch, c);
      return settle(state, batch);
    },

    setPolicies(policies) {
      revision += 1;
      return setPolicies(state, policies);
    },

    setDefaults(next) {
      revision += 1;
      const same = checkDefault(next.sameCluster ?? defaults.sameCluster, "sameCluster");
      const cross = checkDefault(next.crossCluster ?? defaults.crossCluster, "crossCluster");
      const batch = newBatch();
      if (same === defaults.sameCluster && cross === defaults.crossCluster) {
        return finishBatch(state, batch);
      }
      defaults.sameCluster = same;
      defaults.crossCluster = cross;
      for (const id of catalog.clusterIds()) finalizeDefaultAccess(state, batch, id);
      for (const record of catalog.allServices()) batch.recompile.set(record.key, record);
      for (const key of catalog.logicalServiceKeys()) batch.logicalServices.set(key, null);
      return settle(state, batch);
    },

    policies: () => sortPolicies(state.evaluationOrder.map((r) => r.policy)),
    intents: (clusterId) => state.intentsByCluster.get(clusterId) ?? NO_INTENTS,
    clustersWithIntents: () => [...state.intentsByCluster.keys()].sort(),
    warnings: (clusterId) => clusterWarnings(state, clusterId),
    explain: (source, destination) => explain(state, source, destination),
    impact: (next) => impact(state, next),
  };
}

function setPolicies(state: EngineState, policies: readonly ConnectionPolicy[]): Deltas {
  const plan = planRules(state, policies);
  const batch = newBatch();
  installPlan(state, batch, policies, plan);
  return settle(state, batch);
}

/** A cluster's shared trust domain, then its destinations' warnings by service key. */
function clusterWarnings(state: EngineState, clusterId: string): Warning[] {
  const { catalog } = state;
  const out: Warning[] = [];
  const facts = catalog.cluster(clusterId);
  if (facts === undefined) return out;
  const sharing = [...catalog.clustersWithTrustDomain(facts.trustDomain)]
    .filter((c) => c !== clusterId)
    .sort();
  if (sharing.length > 0) {
    out.push(
      warning(
        "shared-trust-domain",
        `cluster ${clusterId} shares trust domain ${facts.trustDomain} with ${sharing.join(", ")}: the same principal names workloads of several clusters, so DENY wins for shared principals (give each cluster its own trust domain)`,
      ),
    );
  }
  // Only the destinations with warnings are sorted (few): status asks for every cluster's
  // warnings, and a sorted copy of each cluster's destinations was garbage of their size.
  const destinations: Destination[] = [];
  for (const d of state.destinationsByCluster.get(clusterId) ?? [])
    if (d.warnings.length > 0) destinations.push(d);
  destinations.sort((a, b) => (a.key < b.key ? -1 : 1));
  for (const d of destinations) {
    // A shared principal matters only where an AccessIntent enforces decisions.
    const enforced = accessPresent(state, d);
    for (const w of d.warnings) if (enforced || w.code !== "shared-principal") out.push(w);
  }
  return out;
}
