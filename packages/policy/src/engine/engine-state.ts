// The engine's state, explicit: what the stages (catalog intake, rule set, decisions, access
// intents, imports/exports) read and write, as one object instead of captured variables.
// Inputs: the catalog, the installed rules, the defaults. Derived: identity and destination
// states (rule memberships, matching rules, decisions, principal lists), logical services.
// Output: the desired intents by cluster.
import { create } from "@bufbuild/protobuf";
import {
  type ClusterFacts,
  createCatalog,
  type IdentityRecord,
  type MutableCatalog,
  type ServiceRecord,
} from "@isthmus/model";
import {
  accessIntentName,
  type ConnectionPolicy,
  Decision,
  type Intent,
  isEnforceableService,
  type Warning,
  WarningSchema,
} from "@isthmus/proto";
import { PolicyError } from "../errors.js";
import { exportName, importName, type PrincipalGroups } from "../intent-builder.js";
import { type CompiledRule, servicePorts } from "../rule-matcher.js";
import type { PolicyDefaults, PolicyEngineOptions } from "./api.js";

/** An installed (or planned) rule: a compiled policy and what it applies to. */
export interface Rule extends CompiledRule {
  /** Unique per compiled rule (a replaced rule of the same name gets a new id). */
  id: number;
  /** Identities the rule's sources select. */
  members: Set<IdentityState>;
  /** Destinations the rule's destinations select. */
  destinations: Set<Destination>;
  /** The planRules call that last saw this rule's name, and at which index (duplicates). */
  seenInPlan: number;
  seenAtIndex: number;
  /** The policy as last given under this name: a frozen one as given, others copied. */
  given: ConnectionPolicy;
}

/** A workload identity of the catalog and the rules whose sources select it. */
export interface IdentityState {
  key: string;
  record: IdentityRecord;
  rules: Set<Rule>;
}

/** A rule matching a destination, on the port slots it covers. */
export interface RuleHit {
  rule: Rule;
  slots: number[];
}

/** The deciding rule of one identity per port slot (null: the default decides). */
export type SlotRules = (Rule | null)[];

/** Identities some rule decides at a destination, with their deciding rules. */
export type DecisionMap = Map<IdentityState, SlotRules>;

/** The compiled state of one service in one cluster (a destination). */
export interface Destination {
  key: string;
  record: ServiceRecord;
  /** Shared by the destinations with the same ports (`servicePorts`): never mutated. */
  ports: readonly number[];
  slotCount: number;
  /** Rules whose destinations match, in evaluation order, with the port slots they cover
   * (NO_HITS, shared, when none: most destinations; replaced on write). */
  rules: RuleHit[];
  /**
   * Identities some rule decides on some slot. Destinations with the same rules on the same
   * slots share one map until one of them patches it (`decisionsOwned`): copy on write.
   */
  decisions: DecisionMap;
  decisionsOwned: boolean;
  /** Other clusters with an identity allowed on some port (after DENY-wins merging). */
  allowedClusters: ReadonlySet<string>;
  /** Principals of the AccessIntent (null: none). */
  allowGroups: PrincipalGroups | null;
  denyGroups: PrincipalGroups | null;
  enforceable: boolean;
  exported: boolean;
  warnings: Warning[];
  /** Registered (in `destinations`): false once removed, and for explain's and impact's. */
  live: boolean;
  /** The ImportBackendIntent last built, and what it was built from. */
  backend?: { record: ServiceRecord; facts: ClusterFacts; intent: Intent };
}

/** The importers, backend intents and exporters of one logical service (`namespace/name`). */
export interface LogicalServiceState {
  importers: Set<string>;
  /** Names of the backend intents some importer holds. */
  backers: string[];
  exporters: Set<string>;
}

/** Intent names of one logical service. */
export interface IntentNames {
  import: string;
  export: string;
  access: string;
}

export interface EngineState {
  readonly catalog: MutableCatalog;
  /** See PolicyEngineOptions.bulkThreshold. */
  readonly bulkThreshold: number;
  readonly defaults: PolicyDefaults;
  /** Installed rules by policy name. */
  readonly rules: Map<string, Rule>;
  /** Installed rules in evaluation order. */
  evaluationOrder: Rule[];
  nextRuleId: number;
  /** planRules calls so far (marks rules seen in one call). */
  planCount: number;
  /** Some rule selects sources by service: service changes can change rule memberships. */
  sourcesByService: boolean;
  /** Identity states by identity key. */
  readonly identities: Map<string, IdentityState>;
  /** Registered destinations by service key, by cluster, by logical service. */
  readonly destinations: Map<string, Destination>;
  readonly destinationsByCluster: Map<string, Set<Destination>>;
  readonly destinationsByLogical: Map<string, Set<Destination>>;
  readonly logicalServices: Map<string, LogicalServiceState>;
  /** The output: desired intents by cluster, then by name. */
  readonly intentsByCluster: Map<string, Map<string, Intent>>;
  /**
   * Intent names of each backed logical service, built once: intent maps are looked up by
   * name in every batch, and a kept string hashes once.
   */
  readonly intentNames: Map<string, IntentNames>;
}

/** Batches with more new or changed destinations (or identities) match them in bulk. */
const DEFAULT_BULK_THRESHOLD = 64;

/** Shared empty values of destinations and identities: never mutated, replaced on write. */
export const NO_DECISIONS: DecisionMap = new Map<never, never>();
export const NO_CLUSTERS: ReadonlySet<string> = new Set();
export const NO_WARNINGS: Warning[] = [];
export const NO_DESTINATIONS: ReadonlySet<never> = new Set();
/** The rule hits of a destination no rule matches (most of them): never added to. */
export const NO_HITS: RuleHit[] = Object.freeze([]) as unknown as RuleHit[];
/** The rules of an identity no rule selects (most of them): one set, never added to. */
export const NO_RULES = new Set<never>();

export function checkDefault(d: Decision, what: string): Decision {
  if (d !== Decision.ALLOW && d !== Decision.DENY) {
    throw new PolicyError(`invalid defaults: ${what} must be ALLOW or DENY`, "invalid-policy");
  }
  return d;
}

export function createEngineState(options?: PolicyEngineOptions): EngineState {
  return {
    catalog: createCatalog(),
    bulkThreshold: options?.bulkThreshold ?? DEFAULT_BULK_THRESHOLD,
    defaults: {
      sameCluster: checkDefault(options?.defaults?.sameCluster ?? Decision.ALLOW, "sameCluster"),
      crossCluster: checkDefault(options?.defaults?.crossCluster ?? Decision.DENY, "crossCluster"),
    },
    rules: new Map(),
    evaluationOrder: [],
    nextRuleId: 0,
    planCount: 0,
    sourcesByService: false,
    identities: new Map(),
    destinations: new Map(),
    destinationsByCluster: new Map(),
    destinationsByLogical: new Map(),
    logicalServices: new Map(),
    intentsByCluster: new Map(),
    intentNames: new Map(),
  };
}

/** A decision's name in messages. */
export function decisionName(d: Decision): string {
  return d === Decision.ALLOW ? "ALLOW" : d === Decision.DENY ? "DENY" : "UNSPECIFIED";
}

export function warning(code: string, message: string): Warning {
  return create(WarningSchema, { code, message });
}

/** Whether the default allows connections within a cluster. */
export function sameClusterAllowed(state: EngineState): boolean {
  return state.defaults.sameCluster === Decision.ALLOW;
}

/** Whether the default allows connections across clusters. */
export function crossClusterAllowed(state: EngineState): boolean {
  return state.defaults.crossCluster === Decision.ALLOW;
}

export function defaultAllows(state: EngineState, sameCluster: boolean): boolean {
  const d = sameCluster ? state.defaults.sameCluster : state.defaults.crossCluster;
  return d === Decision.ALLOW;
}

/** The decision of a slot's deciding rule, or of the default when none decides. */
export function slotDecision(
  state: EngineState,
  rule: Rule | null,
  sameCluster: boolean,
): Decision {
  if (rule !== null) return rule.deny ? Decision.DENY : Decision.ALLOW;
  return sameCluster ? state.defaults.sameCluster : state.defaults.crossCluster;
}

export function intentNamesOf(
  state: EngineState,
  key: string,
  namespace: string,
  name: string,
): IntentNames {
  let names = state.intentNames.get(key);
  if (names === undefined) {
    names = {
      import: importName(namespace, name),
      export: exportName(namespace, name),
      access: accessIntentName(namespace, name),
    };
    state.intentNames.set(key, names);
  }
  return names;
}

export function serviceIntentNames(state: EngineState, record: ServiceRecord): IntentNames {
  return intentNamesOf(state, record.logicalKey, record.service.namespace, record.service.name);
}

/** State of a destination; unregistered ones serve explain and impact. */
export function createDestination(
  state: EngineState,
  record: ServiceRecord,
  register = true,
): Destination {
  const ports = servicePorts(record);
  const d: Destination = {
    key: record.key,
    record,
    ports,
    slotCount: Math.max(1, ports.length),
    rules: NO_HITS,
    decisions: NO_DECISIONS,
    decisionsOwned: false,
    allowedClusters: NO_CLUSTERS,
    allowGroups: null,
    denyGroups: null,
    enforceable: isEnforceableService(record.service),
    exported: false,
    warnings: NO_WARNINGS,
    live: register,
  };
  if (!register) return d;
  state.destinations.set(record.key, d);
  addToIndex(state.destinationsByLogical, record.logicalKey, d);
  addToIndex(state.destinationsByCluster, record.clusterId, d);
  return d;
}

/** Adds a value to the set of `key` in an index of sets, creating the set. */
export function addToIndex<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (set === undefined) {
    set = new Set();
    index.set(key, set);
  }
  set.add(value);
}
