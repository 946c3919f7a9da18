// The engine's public types: the facade (policy-engine.ts) implements PolicyEngine, and the
// stage modules return these shapes. Kept apart so that no stage imports the facade.
import type { Catalog, CatalogChange } from "@isthmus/model";
import type {
  ConnectionPolicy,
  Decision,
  DecisionChange,
  ExplainResponse,
  Intent,
  Warning,
} from "@isthmus/proto";

/** Decisions for connections no rule matches. */
export interface PolicyDefaults {
  /** Source and destination in the same cluster (default ALLOW). */
  sameCluster: Decision;
  /** Source and destination in different clusters (default DENY). */
  crossCluster: Decision;
}

/** What changed in one cluster's desired intents. */
export interface ClusterDelta {
  /** Intents added or whose version changed, in the order the batch changed them. */
  upserted: Intent[];
  /** Names of intents that left the desired set, in the same order. */
  removed: string[];
}

/** Deltas by cluster id; only clusters with changes appear. */
export type Deltas = Map<string, ClusterDelta>;

/** A source workload identity (the proto `SourceRef` shape). */
export interface SourceRefLike {
  clusterId: string;
  namespace: string;
  serviceAccount: string;
}

/** A destination (the proto `DestinationRef` shape): empty cluster = every backing cluster. */
export interface DestinationRefLike {
  clusterId?: string;
  namespace: string;
  service: string;
  /** 0 or absent: every port of the service. */
  port?: number;
}

export interface PolicyEngine {
  /** Applies catalog changes as one batch; returns the intent deltas. */
  applyCatalog(changes: readonly CatalogChange[]): Deltas;
  /**
   * Replaces the whole policy set (validated first: a bad set throws and changes nothing).
   * Policies frozen with `freezePolicy` are kept as given, and the same object given again
   * is known unchanged at once; others are copied and compared field by field.
   */
  setPolicies(policies: readonly ConnectionPolicy[]): Deltas;
  /** Changes the default decisions. */
  setDefaults(defaults: Partial<PolicyDefaults>): Deltas;
  /** The current policies, normalized, in evaluation order. */
  policies(): ConnectionPolicy[];
  readonly defaults: Readonly<PolicyDefaults>;
  /** The desired intents of a cluster, by name. */
  intents(clusterId: string): ReadonlyMap<string, Intent>;
  /** Ids of the clusters that have intents. */
  clustersWithIntents(): string[];
  /** Compilation warnings of a cluster (shared trust domain, unenforceable services...). */
  warnings(clusterId: string): Warning[];
  /** Why a source may or may not reach a destination. Throws a not-found PolicyError. */
  explain(source: SourceRefLike, destination: DestinationRefLike): ExplainResponse;
  /** Dry run: the connections whose decision setPolicies(next) would change. */
  impact(next: readonly ConnectionPolicy[]): DecisionChange[];
  readonly catalog: Catalog;
  /**
   * Counts the calls that may change what the engine computes (applyCatalog, setPolicies,
   * setDefaults, counted as they start, whether they change anything or throw): whatever a
   * caller derives from the engine stays valid while the revision is the same.
   */
  revision(): number;
}

export interface PolicyEngineOptions {
  defaults?: Partial<PolicyDefaults>;
  /**
   * Batches with more new or changed destinations (or identities) than this match them
   * rule by rule through the catalog indexes instead of one by one. Both ways give the same
   * result; tests set 0 to exercise the indexed way on small scenes.
   */
  bulkThreshold?: number;
}
