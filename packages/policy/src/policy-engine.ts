import { create } from "@bufbuild/protobuf";
import {
  type Catalog,
  type CatalogChange,
  type ClusterFacts,
  createCatalog,
  type IdentityRecord,
  principalOf,
  type ServiceRecord,
  trustDomainOf,
} from "@isthmus/model";
import {
  type ConnectionPolicy,
  Decision,
  type DecisionChange,
  DecisionChangeSchema,
  type ExplainResponse,
  ExplainResponseSchema,
  type Intent,
  type Service,
  type Warning,
  WarningSchema,
  type WorkloadIdentity,
  WorkloadIdentitySchema,
} from "@isthmus/proto";
import { canonicalJson } from "./content-hash.js";
import { PolicyError } from "./errors.js";
import {
  accessName,
  addToGroup,
  buildAccess,
  buildExport,
  buildImport,
  buildImportBackend,
  exportName,
  importBackendName,
  importName,
  NO_GROUPS,
  PrincipalGroups,
} from "./intent-builder.js";
import {
  checkUniqueName,
  copyPolicy,
  duplicatePolicy,
  isFrozenPolicy,
  normalizePolicy,
  samePolicy,
  sortPolicies,
  validatePolicy,
} from "./policy-validate.js";
import {
  type CompiledRule,
  compareRules,
  compileRule,
  destinationCandidates,
  destinationSlots,
  ruleMatchesDestinationPort,
  ruleMatchesSource,
  type SourceSubject,
  servicePorts,
  sourceCandidates,
  sourceCoverage,
  subjectOf,
} from "./rule-matcher.js";

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
}

interface Rule extends CompiledRule {
  /** Unique per compiled rule (a replaced rule of the same name gets a new id). */
  id: number;
  members: Set<IdState>;
  dests: Set<DestState>;
  /** The planRules call that last saw this rule's name, and at which index (duplicates). */
  seenIn: number;
  seenAt: number;
  /** The policy as last given under this name: a frozen one as given, others copied. */
  raw: ConnectionPolicy;
}

interface IdState {
  key: string;
  rec: IdentityRecord;
  rules: Set<Rule>;
}

interface Hit {
  rule: Rule;
  slots: number[];
}

/** The compiled state of one service in one cluster (a destination). */
interface DestState {
  key: string;
  rec: ServiceRecord;
  ports: number[];
  slotCount: number;
  /** Rules whose destinations match, in evaluation order, with the port slots they cover. */
  rules: Hit[];
  /**
   * Identities some rule decides on some slot: the deciding rule per slot (null: default).
   * Destinations with the same rules on the same slots share one map until one of them
   * patches it (`decOwned`): copy on write.
   */
  dec: Map<IdState, (Rule | null)[]>;
  decOwned: boolean;
  /** Other clusters with an identity allowed on some port (after DENY-wins merging). */
  allowed: ReadonlySet<string>;
  /** Principals of the AccessIntent (null: none). */
  allowGroups: PrincipalGroups | null;
  denyGroups: PrincipalGroups | null;
  enforceable: boolean;
  exported: boolean;
  warnings: Warning[];
  /** Registered (in `dests`): false once removed, and for the states of explain and impact. */
  live: boolean;
  /** The ImportBackendIntent last built, and what it was built from. */
  backend?: { rec: ServiceRecord; facts: ClusterFacts; intent: Intent };
}

interface Principals {
  allow: PrincipalGroups;
  deny: PrincipalGroups;
  allowed: Set<string>;
  warnings: Warning[];
  shareable: boolean;
}

/** Principal lists of one batch by decisions, then by place (cluster or "*", and ports). */
type PrincipalsMemo = Map<Map<IdState, (Rule | null)[]>, SharedDecisions>;

/** What the destinations sharing one decision map share within a batch. */
interface SharedDecisions {
  clusters: Set<string>;
  byPlace: Map<string, Principals>;
  /** The decided identities by principal, sorted once for all of them (large maps only). */
  byPrincipal?: IdState[];
}

/** Decision maps at least this large are visited in principal order (see principalsOf). */
const SORTED_VISIT = 16;

interface LogicalState {
  importers: Set<string>;
  /** Names of the backend intents some importer holds. */
  backers: string[];
  exporters: Set<string>;
}

/** Changes to the importing clusters of some backers of a logical service. */
interface LogicalDirty {
  /** Clusters that became, or stopped being, importers of one of the backers. */
  importers: Set<string>;
  /** Backers whose importing clusters changed. */
  backers: Set<DestState>;
}

/** Work of one batch. */
interface Tx {
  /** Destinations whose matching rules and decisions are recomputed. */
  fullDests: Map<string, ServiceRecord>;
  /** Destinations whose decisions are recomputed (rules unchanged). */
  decDests: Set<DestState>;
  /** Identities whose rule memberships are recomputed, by key. */
  ids: Map<string, { clusterId: string; namespace: string; serviceAccount: string }>;
  /** Principals whose holders changed, with the clusters concerned. */
  principals: Map<string, Set<string>>;
  rebuild: Set<DestState>;
  /** Logical services to recompute: every importer (null), or the changes named. */
  logical: Map<string, LogicalDirty | null>;
  /** Every destination of these clusters is rebuilt. */
  rebuildClusters: Set<string>;
  /** cluster -> intent name -> its version before the batch and the intent now. */
  touched: Map<string, Map<string, Touch>>;
}

/** An intent the batch changed: its version before (null: absent) and what it is now. */
interface Touch {
  before: string | null;
  now: Intent | null;
}

const BULK = 64;
/** Shared empty values of destinations: never mutated, replaced on write. */
const NO_DECISIONS = new Map<never, never>();
const NO_CLUSTERS: ReadonlySet<string> = new Set();
const NO_WARNINGS: Warning[] = [];
const NO_DESTS: ReadonlySet<never> = new Set();
/** The rules of an identity no rule selects (most of them): one set, never added to. */
const NO_RULES = new Set<never>();

function warning(code: string, message: string): Warning {
  return create(WarningSchema, { code, message });
}

function decisionName(d: Decision): string {
  return d === Decision.ALLOW ? "ALLOW" : d === Decision.DENY ? "DENY" : "UNSPECIFIED";
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function serviceShapeKey(s: Service): string {
  return canonicalJson({
    ports: s.ports,
    selector: s.selector,
    inMesh: s.inMesh,
    serviceAccounts: [...new Set(s.serviceAccounts)].sort(),
  });
}

/** Whether two principal groups hold the same principals in the same order. */
function sameGroups(a: PrincipalGroups | null, b: PrincipalGroups): boolean {
  if (a === null || a.size !== b.size) return a === null && b.size === 0;
  for (const key of b.keys()) {
    const g = b.get(key)!;
    const h = a.get(key);
    if (h === undefined || h.principals.length !== g.principals.length) return false;
    for (let i = 0; i < g.principals.length; i++) {
      if (h.principals[i] !== g.principals[i]) return false;
    }
  }
  return true;
}

function checkDefault(d: Decision, what: string): Decision {
  if (d !== Decision.ALLOW && d !== Decision.DENY) {
    throw new PolicyError(`invalid defaults: ${what} must be ALLOW or DENY`, "invalid-policy");
  }
  return d;
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

/** A policy engine with an empty catalog and no policies. */
export function createPolicyEngine(options?: PolicyEngineOptions): PolicyEngine {
  const catalog = createCatalog();
  const bulk = options?.bulkThreshold ?? BULK;
  const defaults: PolicyDefaults = {
    sameCluster: checkDefault(options?.defaults?.sameCluster ?? Decision.ALLOW, "sameCluster"),
    crossCluster: checkDefault(options?.defaults?.crossCluster ?? Decision.DENY, "crossCluster"),
  };
  const rules = new Map<string, Rule>();
  let ordered: Rule[] = [];
  let nextRuleId = 0;
  let planCount = 0;
  /** Some rule selects sources by service: service changes can change rule memberships. */
  let sourcesByService = false;
  const idStates = new Map<string, IdState>();
  const dests = new Map<string, DestState>();
  const destsByCluster = new Map<string, Set<DestState>>();
  /** Registered destinations by logical service (`namespace/name`). */
  const destsByLogical = new Map<string, Set<DestState>>();
  const logical = new Map<string, LogicalState>();
  const intentsByCluster = new Map<string, Map<string, Intent>>();
  const EMPTY_INTENTS: ReadonlyMap<string, Intent> = new Map<string, Intent>();

  /**
   * Intent names of each backed logical service, built once: intent maps are looked up by
   * name in every batch, and a kept string hashes once.
   */
  const intentNames = new Map<string, { import: string; export: string; access: string }>();
  const intentNamesOf = (key: string, namespace: string, name: string) => {
    let names = intentNames.get(key);
    if (names === undefined) {
      names = {
        import: importName(namespace, name),
        export: exportName(namespace, name),
        access: accessName(namespace, name),
      };
      intentNames.set(key, names);
    }
    return names;
  };
  const namesOf = (rec: ServiceRecord) =>
    intentNamesOf(rec.logicalKey, rec.service.namespace, rec.service.name);

  const allowLocal = () => defaults.sameCluster === Decision.ALLOW;
  const crossAllow = () => defaults.crossCluster === Decision.ALLOW;
  const defaultAllows = (sameCluster: boolean) =>
    (sameCluster ? defaults.sameCluster : defaults.crossCluster) === Decision.ALLOW;

  // ---------------------------------------------------------------- transactions

  const newTx = (): Tx => ({
    fullDests: new Map(),
    decDests: new Set(),
    ids: new Map(),
    principals: new Map(),
    rebuild: new Set(),
    logical: new Map(),
    rebuildClusters: new Set(),
    touched: new Map(),
  });

  const setIntent = (tx: Tx, clusterId: string, name: string, next: Intent | null): void => {
    let map = intentsByCluster.get(clusterId);
    const prev = map?.get(name);
    // Unchanged: nothing to record (most calls of a recompute).
    if (next === null ? prev === undefined : prev?.version === next.version) return;
    let touched = tx.touched.get(clusterId);
    if (touched === undefined) {
      touched = new Map();
      tx.touched.set(clusterId, touched);
    }
    const touch = touched.get(name);
    if (touch === undefined) touched.set(name, { before: prev?.version ?? null, now: next });
    else touch.now = next;
    if (next === null) {
      if (map !== undefined) {
        map.delete(name);
        if (map.size === 0) intentsByCluster.delete(clusterId);
      }
      return;
    }
    if (map === undefined) {
      map = new Map();
      intentsByCluster.set(clusterId, map);
    }
    map.set(name, next);
  };

  const finishTx = (tx: Tx): Deltas => {
    const out: Deltas = new Map();
    for (const [clusterId, names] of [...tx.touched].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const upserted: Intent[] = [];
      const removed: string[] = [];
      // forEach: a for-of over entries allocates a pair per entry.
      names.forEach(({ before, now }, name) => {
        if ((now?.version ?? null) === before) return;
        if (now === null) removed.push(name);
        else upserted.push(now);
      });
      if (upserted.length === 0 && removed.length === 0) continue;
      out.set(clusterId, { upserted, removed });
    }
    return out;
  };

  const markIdentity = (tx: Tx, clusterId: string, namespace: string, serviceAccount: string) => {
    tx.ids.set(`${clusterId}/${namespace}/${serviceAccount}`, {
      clusterId,
      namespace,
      serviceAccount,
    });
  };

  const markPrincipal = (tx: Tx, principal: string, clusterId: string) => {
    let set = tx.principals.get(principal);
    if (set === undefined) {
      set = new Set();
      tx.principals.set(principal, set);
    }
    set.add(clusterId);
  };

  const markServiceAccounts = (tx: Tx, clusterId: string, s: Service) => {
    if (!sourcesByService) return;
    for (const sa of s.serviceAccounts) {
      if (
        catalog.identity(clusterId, s.namespace, sa) !== undefined ||
        idStates.has(`${clusterId}/${s.namespace}/${sa}`)
      ) {
        markIdentity(tx, clusterId, s.namespace, sa);
      }
    }
  };

  // ---------------------------------------------------------------- catalog changes

  const removeDest = (tx: Tx, key: string): void => {
    tx.fullDests.delete(key);
    const d = dests.get(key);
    if (d === undefined) return;
    for (const hit of d.rules) hit.rule.dests.delete(d);
    dests.delete(key);
    d.live = false;
    destsByCluster.get(d.rec.clusterId)?.delete(d);
    const backing = destsByLogical.get(d.rec.logicalKey);
    backing?.delete(d);
    if (backing?.size === 0) destsByLogical.delete(d.rec.logicalKey);
    tx.decDests.delete(d);
    tx.rebuild.delete(d);
    setIntent(tx, d.rec.clusterId, namesOf(d.rec).access, null);
  };

  const upsertService = (tx: Tx, clusterId: string, service: Service): void => {
    const prev = catalog.upsertService(clusterId, service);
    const rec = catalog.service(clusterId, service.namespace, service.name)!;
    const d = dests.get(rec.key);
    markService(tx, clusterId, rec.logicalKey, d);
    if (prev !== undefined && d !== undefined && !tx.fullDests.has(rec.key)) {
      d.rec = rec;
      if (serviceShapeKey(prev.service) === serviceShapeKey(service)) return;
    }
    tx.fullDests.set(rec.key, rec);
    if (prev !== undefined) markServiceAccounts(tx, clusterId, prev.service);
    markServiceAccounts(tx, clusterId, service);
  };

  const removeService = (tx: Tx, clusterId: string, namespace: string, name: string): void => {
    const prev = catalog.removeService(clusterId, namespace, name);
    if (prev === undefined) return;
    markService(tx, clusterId, prev.logicalKey, dests.get(prev.key));
    removeDest(tx, prev.key);
    markServiceAccounts(tx, clusterId, prev.service);
  };

  const upsertIdentity = (tx: Tx, clusterId: string, identity: WorkloadIdentity): void => {
    const prev = catalog.upsertIdentity(clusterId, identity);
    markIdentity(tx, clusterId, identity.namespace, identity.serviceAccount);
    if (prev === undefined) {
      markPrincipal(
        tx,
        catalog.identity(clusterId, identity.namespace, identity.serviceAccount)!.principal,
        clusterId,
      );
    }
  };

  const removeIdentity = (tx: Tx, clusterId: string, namespace: string, sa: string): void => {
    const prev = catalog.removeIdentity(clusterId, namespace, sa);
    if (prev === undefined) return;
    markIdentity(tx, clusterId, namespace, sa);
    markPrincipal(tx, prev.principal, clusterId);
  };

  const compileAllServices = (tx: Tx, trustDomain: string) => {
    for (const c of catalog.clustersWithTrustDomain(trustDomain)) {
      for (const rec of catalog.servicesIn(c).values()) {
        if (!dests.has(rec.key)) tx.fullDests.set(rec.key, rec);
      }
    }
  };

  const upsertCluster = (tx: Tx, facts: ClusterFacts): void => {
    const prev = catalog.upsertCluster(facts);
    const next = catalog.cluster(facts.id)!;
    if (prev === undefined || prev.trustDomain !== next.trustDomain) {
      compileAllServices(tx, next.trustDomain);
    }
    if (prev === undefined) return;
    const id = facts.id;
    if (!sameJson(prev.labels, next.labels)) {
      for (const rec of catalog.servicesIn(id).values()) tx.fullDests.set(rec.key, rec);
      for (const rec of catalog.identitiesIn(id).values()) {
        markIdentity(tx, id, rec.identity.namespace, rec.identity.serviceAccount);
      }
    }
    if (prev.trustDomain !== next.trustDomain) {
      for (const rec of catalog.identitiesIn(id).values()) {
        const { namespace, serviceAccount } = rec.identity;
        markIdentity(tx, id, namespace, serviceAccount);
        markPrincipal(tx, principalOf(prev.trustDomain, namespace, serviceAccount), id);
        markPrincipal(tx, rec.principal, id);
      }
      tx.rebuildClusters.add(id);
    }
    if (
      prev.network !== next.network ||
      prev.locality !== next.locality ||
      !sameJson(prev.gateways, next.gateways)
    ) {
      for (const rec of catalog.servicesIn(id).values()) tx.logical.set(rec.logicalKey, null);
    }
  };

  const removeCluster = (tx: Tx, clusterId: string): void => {
    const facts = catalog.cluster(clusterId);
    if (facts === undefined) return;
    for (const rec of [...catalog.servicesIn(clusterId).values()]) {
      removeService(tx, clusterId, rec.service.namespace, rec.service.name);
    }
    for (const rec of [...catalog.identitiesIn(clusterId).values()]) {
      removeIdentity(tx, clusterId, rec.identity.namespace, rec.identity.serviceAccount);
    }
    catalog.removeCluster(clusterId);
    destsByCluster.delete(clusterId);
    tx.rebuildClusters.delete(clusterId);
    for (const name of [...(intentsByCluster.get(clusterId)?.keys() ?? [])]) {
      setIntent(tx, clusterId, name, null);
    }
  };

  const replaceClusterServices = (
    tx: Tx,
    clusterId: string,
    services: readonly Service[],
    identities: readonly WorkloadIdentity[],
  ): void => {
    if (catalog.servicesIn(clusterId).size === 0 && catalog.identitiesIn(clusterId).size === 0) {
      // A first snapshot: nothing to compare with.
      for (const s of services) upsertService(tx, clusterId, s);
      for (const i of identities) upsertIdentity(tx, clusterId, i);
      return;
    }
    const wantServices = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
    for (const [nsName, rec] of [...catalog.servicesIn(clusterId)]) {
      if (!wantServices.has(nsName)) {
        removeService(tx, clusterId, rec.service.namespace, rec.service.name);
      }
    }
    const wantIds = new Map(identities.map((i) => [`${i.namespace}/${i.serviceAccount}`, i]));
    for (const [nsSa, rec] of [...catalog.identitiesIn(clusterId)]) {
      if (!wantIds.has(nsSa)) {
        removeIdentity(tx, clusterId, rec.identity.namespace, rec.identity.serviceAccount);
      }
    }
    for (const s of wantServices.values()) {
      const prev = catalog.service(clusterId, s.namespace, s.name);
      if (prev === undefined || !sameJson(prev.service, s)) upsertService(tx, clusterId, s);
    }
    for (const i of wantIds.values()) {
      const prev = catalog.identity(clusterId, i.namespace, i.serviceAccount);
      if (prev === undefined || !sameJson(prev.identity, i)) upsertIdentity(tx, clusterId, i);
    }
  };

  const checkChanges = (changes: readonly CatalogChange[]): void => {
    const known = new Set(catalog.clusterIds());
    changes.forEach((c, i) => {
      const at = `catalog change ${i} (${c.kind})`;
      switch (c.kind) {
        case "cluster":
          if (typeof c.cluster?.id !== "string" || c.cluster.id === "") {
            throw new PolicyError(`${at}: cluster id is empty`, "invalid-document");
          }
          known.add(c.cluster.id);
          return;
        case "cluster-removed":
          known.delete(c.clusterId);
          return;
        case "service-removed":
        case "identity-removed":
          return;
        default:
          if (!known.has(c.clusterId)) {
            throw new PolicyError(`${at}: unknown cluster "${c.clusterId}"`, "not-found");
          }
      }
      const check = (what: string, ns: string, name: string, field: string) => {
        if (typeof ns !== "string" || ns === "" || typeof name !== "string" || name === "") {
          throw new PolicyError(
            `${at}: ${what} in cluster "${c.clusterId}": namespace and ${field} are required`,
            "invalid-document",
          );
        }
      };
      if (c.kind === "service") check("service", c.service.namespace, c.service.name, "name");
      if (c.kind === "identity") {
        check("identity", c.identity.namespace, c.identity.serviceAccount, "serviceAccount");
      }
      if (c.kind === "cluster-services-replaced") {
        for (const s of c.services) check("service", s.namespace, s.name, "name");
        for (const id of c.identities) {
          check("identity", id.namespace, id.serviceAccount, "serviceAccount");
        }
      }
    });
  };

  // ---------------------------------------------------------------- evaluation

  /** State of a destination; unregistered ones serve explain and impact. */
  const newDest = (rec: ServiceRecord, register = true): DestState => {
    const ports = servicePorts(rec);
    const d: DestState = {
      key: rec.key,
      rec,
      ports,
      slotCount: Math.max(1, ports.length),
      rules: [],
      dec: NO_DECISIONS,
      decOwned: false,
      allowed: NO_CLUSTERS,
      allowGroups: null,
      denyGroups: null,
      enforceable: rec.service.inMesh && Object.keys(rec.service.selector).length > 0,
      exported: false,
      warnings: NO_WARNINGS,
      live: register,
    };
    if (!register) return d;
    dests.set(rec.key, d);
    let backing = destsByLogical.get(rec.logicalKey);
    if (backing === undefined) {
      backing = new Set();
      destsByLogical.set(rec.logicalKey, backing);
    }
    backing.add(d);
    let set = destsByCluster.get(rec.clusterId);
    if (set === undefined) {
      set = new Set();
      destsByCluster.set(rec.clusterId, set);
    }
    set.add(d);
    return d;
  };

  const hitOrder = (a: Hit, b: Hit) => compareRules(a.rule, b.rule);

  /** Decisions of every member of the destination's rules. */
  const evaluateDest = (d: DestState): void => {
    d.dec = NO_DECISIONS;
    for (const hit of d.rules) {
      for (const st of hit.rule.members) {
        if (d.dec === NO_DECISIONS) d.dec = new Map();
        let arr = d.dec.get(st);
        if (arr === undefined) {
          arr = new Array<Rule | null>(d.slotCount).fill(null);
          d.dec.set(st, arr);
        }
        for (const s of hit.slots) if (arr[s] === null) arr[s] = hit.rule;
      }
    }
  };

  /** Decisions of one identity at one destination (null: defaults on every slot). */
  const evaluateEntry = (d: DestState, st: IdState): (Rule | null)[] | null => {
    let arr: (Rule | null)[] | null = null;
    let filled = 0;
    for (const hit of d.rules) {
      if (!hit.rule.members.has(st)) continue;
      for (const s of hit.slots) {
        arr ??= new Array<Rule | null>(d.slotCount).fill(null);
        if (arr[s] === null) {
          arr[s] = hit.rule;
          filled++;
        }
      }
      if (filled === d.slotCount) break;
    }
    return arr;
  };

  const holderAllows = (d: DestState, rec: IdentityRecord, slot: number): boolean => {
    const st = idStates.get(rec.key);
    const rule = st === undefined ? null : (d.dec.get(st)?.[slot] ?? null);
    return rule === null ? defaultAllows(rec.clusterId === d.rec.clusterId) : !rule.deny;
  };

  /** Principals, allowed clusters and warnings of a destination from its decisions. */
  /**
   * Principal lists, allowed clusters and shared-principal warnings of a destination from
   * its decisions. Shareable when no principal is shared between clusters: then they depend
   * only on the decisions, the destination's cluster and its ports.
   */
  const principalsOf = (d: DestState, localTd: string, shared: SharedDecisions): Principals => {
    const rec = d.rec;
    const svc = rec.service;
    const allow = new PrincipalGroups();
    const deny = new PrincipalGroups();
    const allowed = new Set<string>();
    const warnings: Warning[] = [];
    const slotPorts = (slots: number[]) =>
      slots.length === d.slotCount ? [] : slots.map((s) => d.ports[s]!);
    /** The port list of principals allowed (or denied) on every slot: empty. */
    const everyPort: number[] = [];
    /** Ports of the slots an entry allows (or denies). */
    const portsWhere = (arr: (Rule | null)[], byDefault: boolean, allows: boolean) => {
      const out: number[] = [];
      for (let s = 0; s < arr.length; s++) {
        const r = arr[s]!;
        if ((r === null ? byDefault : !r.deny) === allows) out.push(d.ports[s]!);
      }
      return out;
    };
    const localAllowed = allowLocal();
    // Without a trust domain of several clusters, no principal is shared and a remote
    // identity is never in the local trust domain.
    const sharing = catalog.sharedTrustDomains > 0;
    const candidates = new Set<string>();
    const visit = (arr: (Rule | null)[], st: IdState) => {
      const principal = st.rec.principal;
      const same = st.rec.clusterId === rec.clusterId;
      if (
        crossAllow() ||
        (sharing &&
          (catalog.identitiesWithPrincipal(principal).length > 1 ||
            (!same && catalog.cluster(st.rec.clusterId)?.trustDomain === localTd)))
      ) {
        candidates.add(principal);
        return;
      }
      // The common case: the principal names one identity, decided here, and it is in the
      // local trust domain exactly when it is in this cluster.
      // Most entries decide every slot alike: count first, list ports only when they differ.
      const byDefault = defaultAllows(same);
      let allows = 0;
      for (const r of arr) if (r === null ? byDefault : !r.deny) allows++;
      if (allows > 0 && !same) allowed.add(st.rec.clusterId);
      if (localAllowed && same) {
        if (allows < arr.length) {
          const ports = allows === 0 ? everyPort : portsWhere(arr, byDefault, false);
          addToGroup(deny, ports, principal);
        }
      } else if (allows > 0) {
        const ports = allows === arr.length ? everyPort : portsWhere(arr, byDefault, true);
        addToGroup(allow, ports, principal);
      }
    };
    // Large maps are visited in principal order, sorted once per batch for the destinations
    // that share them (the backers of a service): their groups' lists are then in order
    // already, where each backer sorted its own long list. forEach: a for-of over entries
    // allocates a pair per entry.
    if (d.dec.size < SORTED_VISIT) d.dec.forEach(visit);
    else {
      shared.byPrincipal ??= [...d.dec.keys()].sort((a, b) =>
        a.rec.principal < b.rec.principal ? -1 : a.rec.principal > b.rec.principal ? 1 : 0,
      );
      for (const st of shared.byPrincipal) visit(d.dec.get(st)!, st);
    }
    if (crossAllow()) {
      for (const id of catalog.allIdentities()) {
        if (id.clusterId !== rec.clusterId) candidates.add(id.principal);
      }
    } else if (allowLocal()) {
      for (const c of catalog.clustersWithTrustDomain(localTd)) {
        if (c === rec.clusterId) continue;
        for (const id of catalog.identitiesIn(c).values()) candidates.add(id.principal);
      }
    }
    for (const principal of candidates) {
      const holders = catalog.identitiesWithPrincipal(principal);
      const allowSlots: number[] = [];
      const denySlots: number[] = [];
      let conflict = false;
      for (let s = 0; s < d.slotCount; s++) {
        let anyAllow = false;
        let anyDeny = false;
        for (const h of holders) {
          if (holderAllows(d, h, s)) anyAllow = true;
          else anyDeny = true;
        }
        if (anyDeny) denySlots.push(s);
        else allowSlots.push(s);
        if (anyAllow && anyDeny) conflict = true;
      }
      if (allowSlots.length > 0) {
        for (const h of holders) if (h.clusterId !== rec.clusterId) allowed.add(h.clusterId);
      }
      if (allowLocal() && trustDomainOf(principal) === localTd) {
        if (denySlots.length > 0) addToGroup(deny, slotPorts(denySlots), principal);
      } else if (allowSlots.length > 0) {
        addToGroup(allow, slotPorts(allowSlots), principal);
      }
      if (conflict) {
        const clusters = [...new Set([...holders].map((h) => h.clusterId))].sort();
        warnings.push(
          warning(
            "shared-principal",
            `service ${svc.namespace}/${svc.name}: principal ${principal} is shared by clusters ${clusters.join(", ")} (trust domain ${trustDomainOf(principal)}) and denied for some of them; DENY wins for all (give each cluster its own trust domain)`,
          ),
        );
      }
    }
    return { allow, deny, allowed, warnings, shareable: candidates.size === 0 };
  };

  const rebuildDest = (d: DestState, memo: PrincipalsMemo): void => {
    const rec = d.rec;
    const svc = rec.service;
    const facts = catalog.cluster(rec.clusterId)!;
    const localTd = facts.trustDomain;
    d.enforceable = svc.inMesh && Object.keys(svc.selector).length > 0;
    if (
      d.dec.size === 0 &&
      !crossAllow() &&
      (!allowLocal() || catalog.clustersWithTrustDomain(localTd).size === 1)
    ) {
      // Nothing decided by a rule and no remote principal in the local trust domain.
      d.allowed = NO_CLUSTERS;
      d.allowGroups = null;
      d.denyGroups = null;
      d.warnings = NO_WARNINGS;
      return;
    }
    // Destinations sharing decisions (and cluster and ports) share their principal lists.
    // When no decided identity is of the destination's cluster, and no other cluster is in
    // its trust domain, every identity is remote alike: the lists do not depend on the
    // cluster (the backers of a service in different clusters share them).
    let shared = memo.get(d.dec);
    if (shared === undefined) {
      const clusters = new Set<string>();
      for (const st of d.dec.keys()) clusters.add(st.rec.clusterId);
      shared = { clusters, byPlace: new Map() };
      memo.set(d.dec, shared);
    }
    const remoteOnly =
      !crossAllow() &&
      !shared.clusters.has(rec.clusterId) &&
      catalog.clustersWithTrustDomain(localTd).size === 1;
    const memoKey = `${remoteOnly ? "*" : rec.clusterId}|${d.ports.join(",")}`;
    let p = shared.byPlace.get(memoKey);
    if (p === undefined) {
      p = principalsOf(d, localTd, shared);
      if (p.shareable) shared.byPlace.set(memoKey, p);
    }
    const { allow, deny, allowed } = p;
    const warnings = [...p.warnings];
    if (!d.enforceable && (d.dec.size > 0 || allowed.size > 0)) {
      warnings.unshift(
        svc.inMesh
          ? warning(
              "service-without-selector",
              `service ${svc.namespace}/${svc.name} has no pod selector: policy cannot be enforced on it and it is not exported`,
            )
          : warning(
              "service-not-in-mesh",
              `service ${svc.namespace}/${svc.name}: namespace ${svc.namespace} is not in the mesh: policy cannot be enforced on it and it is not exported (enable sidecar injection or ambient for the namespace)`,
            ),
      );
    }
    // Unchanged groups stay the same objects: their sorted rule lists and hashes are kept.
    d.allowGroups = sameGroups(d.allowGroups, allow)
      ? d.allowGroups
      : allow.size > 0
        ? allow
        : null;
    d.denyGroups = sameGroups(d.denyGroups, deny) ? d.denyGroups : deny.size > 0 ? deny : null;
    d.warnings =
      warnings.length === 0
        ? NO_WARNINGS
        : warnings.sort((a, b) => (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
    d.allowed = d.enforceable && allowed.size > 0 ? allowed : NO_CLUSTERS;
  };

  /**
   * Whether a destination has an access intent: every enforceable one while a default denies
   * (the east-west gateway routes any `*.local` name, so an unnamed service is reachable from
   * other clusters and only authorization at the destination holds the default DENY).
   */
  const accessPresent = (d: DestState): boolean =>
    d.enforceable &&
    (d.exported ||
      d.dec.size > 0 ||
      defaults.sameCluster === Decision.DENY ||
      defaults.crossCluster === Decision.DENY);

  /** Whether its cluster holds a destination's access intent now. */
  const accessHeld = (d: DestState): boolean =>
    intentsByCluster.get(d.rec.clusterId)?.has(namesOf(d.rec).access) ?? false;

  const finalizeAccess = (tx: Tx, d: DestState): void => {
    const name = namesOf(d.rec).access;
    if (!accessPresent(d)) {
      if (accessHeld(d)) setIntent(tx, d.rec.clusterId, name, null);
      return;
    }
    const access = buildAccess(
      d.rec,
      d.allowGroups ?? NO_GROUPS,
      d.denyGroups ?? NO_GROUPS,
      allowLocal(),
    );
    setIntent(tx, d.rec.clusterId, name, access);
  };

  /** The backend intent of a destination, rebuilt only when its service or cluster changed. */
  const backendIntent = (d: DestState): Intent => {
    const facts = catalog.cluster(d.rec.clusterId)!;
    const b = d.backend;
    if (b !== undefined && b.rec === d.rec && b.facts === facts) return b.intent;
    const intent = buildImportBackend(d.rec, facts, b?.intent);
    d.backend = { rec: d.rec, facts, intent };
    return intent;
  };

  /** What of a logical service the batch recomputes (null: all of it). */
  const dirtyOf = (tx: Tx, key: string): LogicalDirty | null => {
    let dirty = tx.logical.get(key);
    if (dirty === undefined) {
      dirty = { importers: new Set(), backers: new Set() };
      tx.logical.set(key, dirty);
    }
    return dirty;
  };

  /**
   * A service of a cluster changed, came or left: the header of its own cluster (its local
   * copy), and when it backs the logical service (`d`), the intents of its importers and its
   * export. Importers it gains or loses in the batch are added by markAllowed.
   */
  const markService = (tx: Tx, clusterId: string, key: string, d: DestState | undefined): void => {
    const dirty = dirtyOf(tx, key);
    if (dirty === null) return;
    dirty.importers.add(clusterId);
    if (d === undefined) return;
    dirty.backers.add(d);
    for (const c of d.allowed) dirty.importers.add(c);
  };

  /** A destination's importing clusters changed from `before`: note what changed. */
  const markAllowed = (tx: Tx, d: DestState, before: ReadonlySet<string>): void => {
    const changed: string[] = [];
    for (const c of before) if (!d.allowed.has(c)) changed.push(c);
    for (const c of d.allowed) if (!before.has(c)) changed.push(c);
    if (changed.length === 0) return;
    const dirty = dirtyOf(tx, d.rec.logicalKey);
    if (dirty === null) return;
    dirty.backers.add(d);
    for (const c of changed) dirty.importers.add(c);
  };

  /** The importing cluster's own copy of a logical service, when it can serve locally. */
  const localBackend = (ns: string, name: string, c: string): ServiceRecord | undefined => {
    const rec = catalog.logicalService(ns, name).get(c);
    return rec?.service.inMesh === true && Object.keys(rec.service.selector).length > 0
      ? rec
      : undefined;
  };

  /**
   * Headers of one recompute: importers with the same backends (and no local copy) get the
   * same one.
   */
  const headerBuilder = (ns: string, name: string, backing: ReadonlySet<DestState>) => {
    const built = new Map<string, Intent>();
    const index = new Map<DestState, number>();
    // Lists are built in the order of `backing`: one as long as the enforceable backers is
    // all of them (most importers reach every backer).
    let every = 0;
    for (const d of backing) if (d.enforceable) every++;
    return (local: ServiceRecord | undefined, list: DestState[]): Intent => {
      let shape = local?.key ?? "";
      if (list.length === every) shape += "|*";
      else
        for (const d of list) {
          let i = index.get(d);
          if (i === undefined) {
            i = index.size;
            index.set(d, i);
          }
          shape += `|${i}`;
        }
      let header = built.get(shape);
      if (header === undefined) {
        header = buildImport(
          ns,
          name,
          local,
          list.map((d) => d.rec),
        );
        built.set(shape, header);
      }
      return header;
    };
  };

  /** Backend intents `c` held among `backers` and no longer gets (`now`: the ones it gets). */
  const dropBackends = (
    tx: Tx,
    c: string,
    backers: readonly string[],
    now: ReadonlySet<string> | undefined,
  ): void => {
    const held = intentsByCluster.get(c);
    if (held === undefined) return;
    for (const b of backers) if (!now?.has(b) && held.has(b)) setIntent(tx, c, b, null);
  };

  /** The export intent of a backer for the clusters importing it (none: removed). */
  const exportTo = (
    tx: Tx,
    d: DestState,
    by: string[] | undefined,
    exporters: Set<string>,
    finalize: Set<DestState>,
  ): void => {
    const exported = by !== undefined;
    const name = namesOf(d.rec).export;
    if (exported) {
      setIntent(tx, d.rec.clusterId, name, buildExport(d.rec, by));
      exporters.add(d.rec.clusterId);
    } else if (exporters.delete(d.rec.clusterId)) {
      setIntent(tx, d.rec.clusterId, name, null);
    }
    if (d.exported !== exported) {
      d.exported = exported;
      finalize.add(d);
    }
  };

  const recomputeLogical = (
    tx: Tx,
    key: string,
    dirty: LogicalDirty | null,
    finalize: Set<DestState>,
  ): void => {
    const slash = key.indexOf("/");
    const ns = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const prevState = logical.get(key);
    if (dirty !== null && prevState !== undefined) {
      recomputeImporters(tx, key, ns, name, prevState, dirty, finalize);
    } else {
      recomputeAll(tx, key, ns, name, prevState, finalize);
    }
    if (catalog.logicalService(ns, name).size === 0) intentNames.delete(key);
  };

  /** Every importer and exporter of a logical service. */
  const recomputeAll = (
    tx: Tx,
    key: string,
    ns: string,
    name: string,
    prevState: LogicalState | undefined,
    finalize: Set<DestState>,
  ): void => {
    const names = intentNamesOf(key, ns, name);
    const backing = destsByLogical.get(key) ?? NO_DESTS;
    const importers = new Map<string, DestState[]>();
    for (const d of backing) {
      if (!d.enforceable) continue;
      for (const c of d.allowed) {
        if (catalog.cluster(c) === undefined) continue;
        let list = importers.get(c);
        if (list === undefined) {
          list = [];
          importers.set(c, list);
        }
        list.push(d);
      }
    }
    if (importers.size === 0 && prevState === undefined) {
      for (const d of backing) {
        if (d.exported) {
          d.exported = false;
          finalize.add(d);
        }
      }
      return;
    }
    const prev = prevState ?? { importers: new Set<string>(), backers: [], exporters: new Set() };
    const next: LogicalState = { importers: new Set(), backers: [], exporters: new Set() };
    const backers = new Set<string>();
    const importedBy = new Map<DestState, string[]>();
    const header = headerBuilder(ns, name, backing);
    importers.forEach((list, c) => {
      for (const d of list) {
        const backend = backendIntent(d);
        setIntent(tx, c, backend.name, backend);
        backers.add(backend.name);
        const by = importedBy.get(d);
        if (by === undefined) importedBy.set(d, [c]);
        else by.push(c);
      }
      setIntent(tx, c, names.import, header(localBackend(ns, name, c), list));
      next.importers.add(c);
    });
    next.backers = [...backers];
    // Backend intents an importer held and holds no more: among the previous backers.
    for (const c of prev.importers) {
      const list = importers.get(c);
      if (list === undefined) setIntent(tx, c, names.import, null);
      // Most importers reach every backer: their list is the union, no set to build.
      const now =
        list === undefined
          ? undefined
          : list.length === backers.size
            ? backers
            : new Set(list.map((d) => backendIntent(d).name));
      dropBackends(tx, c, prev.backers, now);
    }
    for (const d of backing) exportTo(tx, d, importedBy.get(d), next.exporters, finalize);
    for (const c of prev.exporters) {
      if (!next.exporters.has(c)) setIntent(tx, c, names.export, null);
    }
    if (next.importers.size === 0 && next.exporters.size === 0) logical.delete(key);
    else logical.set(key, next);
  };

  /**
   * Only the importers that came or went, and the exports of the backers whose importers
   * changed: a rule change that reaches many logical services changes few importers of each.
   */
  const recomputeImporters = (
    tx: Tx,
    key: string,
    ns: string,
    name: string,
    state: LogicalState,
    dirty: LogicalDirty,
    finalize: Set<DestState>,
  ): void => {
    const names = intentNamesOf(key, ns, name);
    const backing = destsByLogical.get(key) ?? NO_DESTS;
    const backers = new Set(state.backers);
    const header = headerBuilder(ns, name, backing);
    for (const c of dirty.importers) {
      const list: DestState[] = [];
      if (catalog.cluster(c) !== undefined) {
        for (const d of backing) if (d.enforceable && d.allowed.has(c)) list.push(d);
      }
      if (list.length === 0) {
        if (!state.importers.delete(c)) continue;
        setIntent(tx, c, names.import, null);
        dropBackends(tx, c, state.backers, undefined);
        continue;
      }
      const now = new Set<string>();
      for (const d of list) {
        const backend = backendIntent(d);
        setIntent(tx, c, backend.name, backend);
        now.add(backend.name);
        backers.add(backend.name);
      }
      // A new importer holds no backend intents of this service yet.
      if (state.importers.has(c)) dropBackends(tx, c, state.backers, now);
      else state.importers.add(c);
      setIntent(tx, c, names.import, header(localBackend(ns, name, c), list));
    }
    state.backers = [...backers];
    // Backers that left first: one that came back in the same batch is a new one.
    for (const d of dirty.backers) {
      if (!d.live) exportTo(tx, d, undefined, state.exporters, finalize);
    }
    for (const d of dirty.backers) {
      if (!d.live) continue;
      const by: string[] = [];
      if (d.enforceable)
        for (const c of d.allowed) if (catalog.cluster(c) !== undefined) by.push(c);
      exportTo(tx, d, by.length > 0 ? by : undefined, state.exporters, finalize);
    }
    if (state.importers.size === 0 && state.exporters.size === 0) logical.delete(key);
  };

  const matchingRules = (st: IdState): Set<Rule> => {
    const subject = subjectOf(catalog, st.rec);
    const out = new Set<Rule>();
    if (subject === undefined) return out;
    for (const r of ordered) if (ruleMatchesSource(r, subject, catalog)) out.add(r);
    return out;
  };

  const settle = (tx: Tx): Deltas => {
    // 1. Destinations that are new or changed: their rules. Every service has compiled
    //    state: an enforceable one holds at least the access intent of the defaults.
    const full = new Set<DestState>();
    for (const rec of tx.fullDests.values()) {
      const d = dests.get(rec.key) ?? newDest(rec);
      d.rec = rec;
      for (const hit of d.rules) hit.rule.dests.delete(d);
      d.rules = [];
      d.ports = servicePorts(rec);
      d.slotCount = Math.max(1, d.ports.length);
      full.add(d);
    }
    if (full.size > bulk && full.size * 4 > ordered.length) {
      for (const r of ordered) {
        for (const rec of destinationCandidates(r, catalog)) {
          const d = dests.get(rec.key);
          if (d === undefined || !full.has(d)) continue;
          const slots = destinationSlots(r, rec, catalog.cluster(rec.clusterId)!, d.ports);
          if (slots !== null) d.rules.push({ rule: r, slots });
        }
      }
    } else {
      for (const d of full) {
        const facts = catalog.cluster(d.rec.clusterId)!;
        for (const r of ordered) {
          const slots = destinationSlots(r, d.rec, facts, d.ports);
          if (slots !== null) d.rules.push({ rule: r, slots });
        }
      }
    }
    for (const d of full) {
      d.rules.sort(hitOrder);
      for (const hit of d.rules) hit.rule.dests.add(d);
    }

    // 2. Identities: rule memberships.
    const changed = new Map<Rule, Set<IdState>>();
    const noteChange = (r: Rule, st: IdState) => {
      let set = changed.get(r);
      if (set === undefined) {
        set = new Set();
        changed.set(r, set);
      }
      set.add(st);
    };
    const present: IdState[] = [];
    const replaced = new Set<IdState>();
    for (const [key, ref] of tx.ids) {
      const rec = catalog.identity(ref.clusterId, ref.namespace, ref.serviceAccount);
      let st = idStates.get(key);
      if (rec === undefined) {
        if (st === undefined) continue;
        for (const r of st.rules) {
          r.members.delete(st);
          noteChange(r, st);
        }
        st.rules = NO_RULES;
        idStates.delete(key);
        continue;
      }
      if (st === undefined) {
        // The record's key: the same text, kept once (interned) for every index.
        st = { key: rec.key, rec, rules: NO_RULES };
        idStates.set(rec.key, st);
      } else if (st.rec !== rec && st.rec.principal !== rec.principal) {
        // The principal changed: every destination deciding it needs a rebuild.
        for (const r of st.rules) noteChange(r, st);
        replaced.add(st);
      }
      st.rec = rec;
      present.push(st);
    }
    let newRules: Map<IdState, Set<Rule>>;
    if (present.length > bulk && present.length * 4 > ordered.length) {
      newRules = new Map(present.map((st) => [st, new Set<Rule>()]));
      for (const r of ordered) {
        for (const rec of sourceCandidates(r, catalog)) {
          const st = idStates.get(rec.key);
          const set = st === undefined ? undefined : newRules.get(st);
          if (set === undefined) continue;
          const subject = subjectOf(catalog, rec);
          if (subject !== undefined && ruleMatchesSource(r, subject, catalog)) set.add(r);
        }
      }
    } else {
      newRules = new Map(present.map((st) => [st, matchingRules(st)]));
    }
    for (const [st, next] of newRules) {
      for (const r of st.rules) {
        if (!next.has(r)) {
          r.members.delete(st);
          noteChange(r, st);
        }
      }
      for (const r of next) {
        if (!st.rules.has(r)) {
          r.members.add(st);
          noteChange(r, st);
        }
      }
      st.rules = next.size === 0 ? NO_RULES : next;
    }

    // 3. Patch the decisions of changed identities where their rules apply.
    const patches = new Map<DestState, Set<IdState>>();
    for (const [r, members] of changed) {
      for (const d of r.dests) {
        if (full.has(d) || tx.decDests.has(d)) continue;
        let set = patches.get(d);
        if (set === undefined) {
          set = new Set();
          patches.set(d, set);
        }
        for (const st of members) set.add(st);
      }
    }
    const sameEntry = (a: (Rule | null)[] | undefined, b: (Rule | null)[] | null) => {
      if (a === undefined || b === null) return a === undefined && b === null;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
      return true;
    };
    for (const [d, members] of patches) {
      let changedHere = false;
      for (const st of members) {
        const arr = idStates.get(st.key) === st ? evaluateEntry(d, st) : null;
        const before = d.dec.get(st);
        // A new record (labels, principal) may change the principal lists even when the
        // deciding rules stay: rebuild whenever the identity's record was replaced.
        if (!sameEntry(before, arr) || replaced.has(st)) changedHere = true;
        if (arr === null && before === undefined) continue;
        if (!d.decOwned) {
          d.dec = new Map(d.dec);
          d.decOwned = true;
        }
        if (arr === null) d.dec.delete(st);
        else d.dec.set(st, arr);
      }
      if (changedHere) tx.rebuild.add(d);
    }

    // 4. Full decisions where rules changed. Destinations with the same rules on the same
    //    slots decide alike: the first one's decisions are shared with the others.
    const decisionsByHits = new Map<string, Map<IdState, (Rule | null)[]>>();
    const evaluate = (d: DestState) => {
      let key = String(d.slotCount);
      for (const hit of d.rules) key += `;${hit.rule.id}:${hit.slots.join(",")}`;
      const shared = decisionsByHits.get(key);
      if (shared === undefined) {
        evaluateDest(d);
        decisionsByHits.set(key, d.dec);
      } else d.dec = shared;
      d.decOwned = false;
    };
    for (const d of full) evaluate(d);
    for (const d of tx.decDests) {
      if (d.live) evaluate(d);
    }

    // 5. Principals whose holders changed: other holders' destinations, and trust-domain wide
    //    deny lists when the local trust domain is allowed by default.
    const done = new Set<Rule>(changed.keys());
    for (const [principal, clusters] of tx.principals) {
      for (const h of catalog.identitiesWithPrincipal(principal)) {
        const st = idStates.get(h.key);
        if (st === undefined) continue;
        for (const r of st.rules) {
          if (done.has(r)) continue;
          done.add(r);
          for (const d of r.dests) tx.rebuild.add(d);
        }
      }
      if (crossAllow()) {
        for (const c of catalog.clusterIds()) tx.rebuildClusters.add(c);
      } else if (allowLocal()) {
        // Remote holders in the local trust domain are candidates of every destination of
        // the trust domain's clusters (per-cluster trust domains: nothing to do).
        const sharing = new Set([
          ...catalog.clustersWithTrustDomain(trustDomainOf(principal)),
          ...clusters,
        ]);
        if (sharing.size > 1) for (const c of sharing) tx.rebuildClusters.add(c);
      }
    }
    for (const c of tx.rebuildClusters) {
      for (const d of destsByCluster.get(c) ?? []) tx.rebuild.add(d);
    }

    // 6. Rebuild destinations, then their logical services, then access intents.
    const finalize = new Set<DestState>();
    const memo: PrincipalsMemo = new Map();
    /**
     * `changed`: the destination's record changed. Otherwise its access intent is rebuilt
     * only when its principal groups, enforceability or presence changed (its record and
     * the defaults did not: the groups kept their objects when equal).
     */
    const rebuildOne = (d: DestState, changed: boolean) => {
      if (!d.live) return;
      const { allowed, allowGroups, denyGroups, enforceable } = d;
      rebuildDest(d, memo);
      if (
        changed ||
        d.allowGroups !== allowGroups ||
        d.denyGroups !== denyGroups ||
        d.enforceable !== enforceable ||
        accessPresent(d) !== accessHeld(d)
      ) {
        finalize.add(d);
      }
      if (allowed !== d.allowed) markAllowed(tx, d, allowed);
    };
    for (const d of full) {
      markService(tx, d.rec.clusterId, d.rec.logicalKey, d);
      rebuildOne(d, true);
    }
    for (const d of tx.decDests) if (!full.has(d)) rebuildOne(d, false);
    for (const d of tx.rebuild) if (!full.has(d) && !tx.decDests.has(d)) rebuildOne(d, false);
    for (const [key, dirty] of tx.logical) recomputeLogical(tx, key, dirty, finalize);
    for (const d of finalize) if (d.live) finalizeAccess(tx, d);
    return finishTx(tx);
  };

  // ---------------------------------------------------------------- policies

  interface RulePlan {
    /** Per given policy: equal to the one installed under its name. */
    same: boolean[];
    next: Rule[];
    removed: Rule[];
    added: Rule[];
    kept: Map<Rule, ConnectionPolicy>;
    /** Names installed now and absent from the given policies. */
    gone: string[];
  }

  const planRules = (policies: readonly ConnectionPolicy[]): RulePlan => {
    // Policies equal to what was last installed under their name keep their rule as is.
    // Installed names are marked on their rules (no map of every name per call).
    const plan = ++planCount;
    const fresh = new Map<string, number>();
    let seenInstalled = 0;
    const same = policies.map((p, i) => {
      const installed = rules.get(p.name);
      // A frozen policy given again as the same object cannot have changed.
      const last = installed?.raw;
      const unchanged = last !== undefined && (last === p || samePolicy(last, p));
      if (!unchanged) validatePolicy(p);
      if (installed === undefined) checkUniqueName(fresh, p.name, i);
      else if (installed.seenIn === plan) throw duplicatePolicy(p.name, installed.seenAt, i);
      else {
        installed.seenIn = plan;
        installed.seenAt = i;
        seenInstalled++;
      }
      return unchanged;
    });
    const removed: Rule[] = [];
    const added: Rule[] = [];
    const kept = new Map<Rule, ConnectionPolicy>();
    for (let i = 0; i < policies.length; i++) {
      if (same[i]) continue;
      const raw = policies[i]!;
      const p = normalizePolicy(raw);
      const compiled = compileRule(p);
      const old = rules.get(p.name);
      if (old !== undefined && old.signature === compiled.signature) {
        kept.set(old, p);
        continue;
      }
      if (old !== undefined) removed.push(old);
      added.push({
        ...compiled,
        id: nextRuleId++,
        members: new Set(),
        dests: new Set(),
        seenIn: 0,
        seenAt: -1,
        raw,
      });
    }
    const gone: string[] = [];
    if (seenInstalled < rules.size) {
      for (const old of rules.values()) {
        if (old.seenIn === plan) continue;
        removed.push(old);
        gone.push(old.name);
      }
    }
    return { same, next: nextOrder(removed, added), removed, added, kept, gone };
  };

  /**
   * The evaluation order less `removed`, plus `added`. Kept rules keep their place: their
   * signature, the same, holds their priority. A few added rules are put in place.
   */
  const nextOrder = (removed: Rule[], added: Rule[]): Rule[] => {
    if (removed.length === 0 && added.length === 0) return ordered;
    const removedSet = new Set(removed);
    const next = ordered.filter((r) => !removedSet.has(r));
    if (added.length > 16) return next.concat(added).sort(compareRules);
    for (const r of added) {
      let lo = 0;
      let hi = next.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareRules(next[mid]!, r) < 0) lo = mid + 1;
        else hi = mid;
      }
      next.splice(lo, 0, r);
    }
    return next;
  };

  /** Members and destination hits of a rule that is not installed yet. */
  const resolveRule = (r: Rule, register: boolean): Map<DestState, number[]> => {
    const members = new Set<IdState>();
    for (const rec of sourceCandidates(r, catalog)) {
      const subject = subjectOf(catalog, rec);
      if (subject === undefined || !ruleMatchesSource(r, subject, catalog)) continue;
      const st = idStates.get(rec.key);
      if (st !== undefined) members.add(st);
    }
    r.members = members;
    const hits = new Map<DestState, number[]>();
    for (const rec of destinationCandidates(r, catalog)) {
      const known = dests.get(rec.key);
      const slotPorts = known?.ports ?? servicePorts(rec);
      const slots = destinationSlots(r, rec, catalog.cluster(rec.clusterId)!, slotPorts);
      if (slots !== null) hits.set(known ?? newDest(rec, register), slots);
    }
    return hits;
  };

  const setPolicies = (policies: readonly ConnectionPolicy[]): Deltas => {
    const plan = planRules(policies);
    for (const [r, p] of plan.kept) r.policy = p;
    for (const r of plan.added) rules.set(r.name, r);
    for (const name of plan.gone) rules.delete(name);
    // What was given, where it changed (most stay: one edit among hundreds).
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      if (!plan.same[i]) rules.get(p.name)!.raw = isFrozenPolicy(p) ? p : copyPolicy(p);
    }
    const tx = newTx();
    const removedSet = new Set(plan.removed);
    const affected = new Set<DestState>();
    for (const r of plan.removed) {
      for (const d of r.dests) affected.add(d);
      for (const st of r.members) st.rules.delete(r);
    }
    const addedHits = new Map<DestState, Hit[]>();
    for (const r of plan.added) {
      for (const [d, slots] of resolveRule(r, true)) {
        affected.add(d);
        r.dests.add(d);
        const list = addedHits.get(d) ?? [];
        list.push({ rule: r, slots });
        addedHits.set(d, list);
      }
      for (const st of r.members) {
        if (st.rules === NO_RULES) st.rules = new Set();
        st.rules.add(r);
      }
    }
    ordered = plan.next;
    sourcesByService = ordered.some((r) => r.from.some((m) => m.services !== null));
    for (const d of affected) {
      d.rules = d.rules.filter((h) => !removedSet.has(h.rule)).concat(addedHits.get(d) ?? []);
      d.rules.sort(hitOrder);
      tx.decDests.add(d);
    }
    return settle(tx);
  };

  // ---------------------------------------------------------------- explain and impact

  const slotDecision = (rule: Rule | null, sameCluster: boolean): Decision =>
    rule === null
      ? sameCluster
        ? defaults.sameCluster
        : defaults.crossCluster
      : rule.deny
        ? Decision.DENY
        : Decision.ALLOW;

  /** The first rule of a destination that decides a port for a source (null: default). */
  const ruleOnPort = (d: DestState, q: number, matches: (r: Rule) => boolean): Rule | null => {
    for (const hit of d.rules) {
      const covers =
        q === 0
          ? true
          : d.ports.includes(q)
            ? hit.slots.includes(d.ports.indexOf(q))
            : ruleMatchesDestinationPort(hit.rule, d.rec, catalog.cluster(d.rec.clusterId)!, q);
      if (covers && matches(hit.rule)) return hit.rule;
    }
    return null;
  };

  /**
   * Istio authorizes per workload and port, not per Service: two Services of one namespace
   * that select the same pods and reach the same target port share every AuthorizationPolicy
   * there (DENY policies of either apply, ALLOW policies add up). When the other Service's
   * decision for this source differs on such a port, neither decision holds by itself.
   */
  const colocatedConflict = (
    d: DestState,
    perPort: readonly { port: number; decision: Decision }[],
    matches: (r: Rule) => boolean,
    same: boolean,
  ): Warning | undefined => {
    const svc = d.rec.service;
    if (Object.keys(svc.selector).length === 0) return undefined;
    const accounts = new Set(svc.serviceAccounts);
    const targetOf = (s: Service, port: number) =>
      s.ports.find((p) => p.port === port)?.targetPort || String(port);
    for (const other of catalog.servicesInNamespace(svc.namespace)) {
      if (other.clusterId !== d.rec.clusterId || other.key === d.rec.key) continue;
      if (Object.keys(other.service.selector).length === 0) continue;
      if (!other.service.serviceAccounts.some((sa) => accounts.has(sa))) continue;
      if (!sharePods(d.rec, other)) continue;
      const o = dests.get(other.key);
      if (o === undefined) continue;
      for (const { port, decision } of perPort) {
        const target = targetOf(svc, port);
        for (const op of other.service.ports) {
          // A named target port is resolved per pod, which the hub does not see: it may be
          // the same port.
          const theirTarget = op.targetPort || String(op.port);
          const named = !/^[0-9]+$/.test(target) || !/^[0-9]+$/.test(theirTarget);
          if (!named && theirTarget !== target) continue;
          const theirs = slotDecision(ruleOnPort(o, op.port, matches), same);
          if (theirs === decision) continue;
          return warning(
            "not-enforced",
            `service ${svc.namespace}/${svc.name} in cluster ${d.rec.clusterId} shares its pods and target port ${target} with service ${other.service.name}, which ${decisionName(theirs)}s this source there: Istio authorizes per pod and port, so this ${decisionName(decision)} does not hold by itself (name both services in the same rules)`,
          );
        }
      }
    }
    return undefined;
  };

  /** Whether some pod (a label set of an identity of the namespace) is selected by both. */
  const sharePods = (a: ServiceRecord, b: ServiceRecord): boolean => {
    const selects = (sel: Record<string, string>, labels: Record<string, string>) =>
      Object.entries(sel).every(([k, v]) => labels[k] === v);
    for (const id of catalog.identitiesIn(a.clusterId).values()) {
      if (id.identity.namespace !== a.service.namespace) continue;
      for (const set of id.identity.labelSets) {
        if (selects(a.service.selector, set.labels) && selects(b.service.selector, set.labels))
          return true;
      }
    }
    return false;
  };

  const explain = (source: SourceRefLike, destination: DestinationRefLike): ExplainResponse => {
    const facts = catalog.cluster(source.clusterId);
    if (facts === undefined) {
      throw new PolicyError(`explain: unknown source cluster "${source.clusterId}"`, "not-found");
    }
    const warnings: Warning[] = [];
    const rec = catalog.identity(source.clusterId, source.namespace, source.serviceAccount);
    const identity =
      rec?.identity ??
      create(WorkloadIdentitySchema, {
        namespace: source.namespace,
        serviceAccount: source.serviceAccount,
      });
    const sourceName = `${source.clusterId}/${source.namespace}/${source.serviceAccount}`;
    if (rec === undefined) {
      warnings.push(
        warning(
          "unknown-source",
          `workload identity ${sourceName} is not in the catalog: explained as one without pods, so selectors with workloadLabels do not match it`,
        ),
      );
    }
    if (rec?.identity.outsideMesh === true) {
      warnings.push(
        warning(
          "not-enforced",
          `workload identity ${sourceName} has pods without Istio (no sidecar): their calls carry no identity, so no decision about it is enforced for them (inject the sidecar and restart the pods)`,
        ),
      );
    }
    const principal = principalOf(facts.trustDomain, source.namespace, source.serviceAccount);
    const subject: SourceSubject = { clusterId: source.clusterId, facts, identity };
    const dstName = `${destination.namespace}/${destination.service}`;
    const backing = [...catalog.logicalService(destination.namespace, destination.service).values()]
      .filter((r) => !destination.clusterId || r.clusterId === destination.clusterId)
      .sort((a, b) => (a.clusterId < b.clusterId ? -1 : 1));
    if (backing.length === 0) {
      const where = destination.clusterId ? ` in cluster "${destination.clusterId}"` : "";
      throw new PolicyError(`explain: unknown destination service ${dstName}${where}`, "not-found");
    }
    const port = destination.port ?? 0;
    const matchCache = new Map<Rule, boolean>();
    const matches = (r: Rule) => {
      let m = matchCache.get(r);
      if (m === undefined) {
        m = ruleMatchesSource(r, subject, catalog);
        matchCache.set(r, m);
      }
      return m;
    };
    const splitWarned = new Set<Rule>();
    interface Outcome {
      clusterId: string;
      decision: Decision;
      rule: string;
      defaultReason: string;
    }
    const outcomes: Outcome[] = [];
    for (const b of backing) {
      const d = dests.get(b.key) ?? newDest(b, false);
      const bFacts = catalog.cluster(b.clusterId)!;
      const same = b.clusterId === source.clusterId;
      const svcName = `${dstName} in cluster ${b.clusterId}`;
      for (const hit of d.rules) {
        if (splitWarned.has(hit.rule) || sourceCoverage(hit.rule, subject, catalog) !== "some") {
          continue;
        }
        splitWarned.add(hit.rule);
        warnings.push(
          warning(
            "split-service-account",
            `rule "${hit.rule.name}" selects some pods of service account ${sourceName} but not all; policy is enforced per service account, so this ${hit.rule.deny ? "DENY rule applies to all of its pods" : "ALLOW rule does not apply to it"}`,
          ),
        );
      }
      // Decide per port: the asked port, or every port of the service.
      const ports = port !== 0 ? [port] : d.ports.length > 0 ? d.ports : [0];
      const perPort = ports.map((q) => {
        const decidedBy = ruleOnPort(d, q, matches);
        return { port: q, decision: slotDecision(decidedBy, same), rule: decidedBy };
      });
      const colocated = colocatedConflict(d, perPort, matches, same);
      if (colocated !== undefined) warnings.push(colocated);
      if (
        !same &&
        bFacts.gateways.length === 0 &&
        perPort.some((p) => p.decision === Decision.ALLOW)
      ) {
        warnings.push(
          warning(
            "not-enforced",
            `${svcName}: cluster ${b.clusterId} has no east-west gateway address, so no other cluster reaches it; a decision to ALLOW cannot take effect`,
          ),
        );
      }
      const denied = perPort.find((p) => p.decision === Decision.DENY);
      const chosen = denied ?? perPort[0]!;
      if (perPort.some((p) => p.decision !== chosen.decision)) {
        warnings.push(
          warning(
            "port-dependent",
            `${svcName}: the decision depends on the port (${perPort.map((p) => `${p.port}: ${decisionName(p.decision)}`).join(", ")}); the summary is DENY`,
          ),
        );
      }
      let decision = chosen.decision;
      let ruleName = chosen.rule?.name ?? "";
      // A principal shared through a trust domain: DENY wins.
      if (decision === Decision.ALLOW) {
        for (const h of catalog.identitiesWithPrincipal(principal)) {
          if (h.clusterId === source.clusterId) continue;
          const st = idStates.get(h.key);
          const entry = st === undefined ? undefined : d.dec.get(st);
          const slotsToCheck =
            port !== 0 && d.ports.includes(port)
              ? [d.ports.indexOf(port)]
              : [...Array(d.slotCount).keys()];
          for (const s of slotsToCheck) {
            const r = entry?.[s] ?? null;
            if (slotDecision(r, h.clusterId === b.clusterId) === Decision.DENY) {
              decision = Decision.DENY;
              ruleName = r?.name ?? "";
              warnings.push(
                warning(
                  "shared-principal",
                  `${svcName}: principal ${principal} is also held by workloads of cluster ${h.clusterId}, which ${r === null ? "the default denies" : `rule "${r.name}" denies`}; DENY wins for a shared principal`,
                ),
              );
              break;
            }
          }
          if (decision === Decision.DENY) break;
        }
      }
      if (!d.enforceable) {
        warnings.push(
          warning(
            "not-enforced",
            `${svcName} is not enforced: ${b.service.inMesh ? "it has no pod selector" : `namespace ${b.service.namespace} is not in the mesh`}`,
          ),
        );
      }
      outcomes.push({
        clusterId: b.clusterId,
        decision,
        rule: ruleName,
        defaultReason: ruleName === "" ? (same ? "same-cluster" : "cross-cluster") : "",
      });
    }
    const sharing = [...catalog.clustersWithTrustDomain(facts.trustDomain)].filter(
      (c) => c !== source.clusterId,
    );
    if (sharing.length > 0) {
      warnings.push(
        warning(
          "shared-trust-domain",
          `cluster ${source.clusterId} shares trust domain ${facts.trustDomain} with ${sharing.sort().join(", ")}: principal ${principal} may name workloads of several clusters, and DENY wins for it`,
        ),
      );
    }
    const held = intentsByCluster.get(source.clusterId);
    for (const o of outcomes) {
      const name = importBackendName(destination.namespace, destination.service, o.clusterId);
      if (o.decision === Decision.DENY && held?.has(name) === true) {
        warnings.push(
          warning(
            "unreachable-backend",
            `cluster ${source.clusterId} imports ${dstName} from cluster ${o.clusterId}, where ${principal} is denied (${o.rule === "" ? "cross-cluster default" : `rule "${o.rule}"`}); its calls balanced to ${o.clusterId} fail`,
          ),
        );
      }
    }
    const local = outcomes.find((o) => o.clusterId === source.clusterId);
    const preferred = [
      ...(local === undefined ? [] : [local]),
      ...outcomes.filter((o) => o !== local),
    ];
    const summary = preferred.find((o) => o.decision === Decision.ALLOW) ?? preferred[0]!;
    return create(ExplainResponseSchema, {
      decision: summary.decision,
      rule: summary.rule,
      defaultReason: summary.defaultReason,
      principal,
      warnings,
      backends: outcomes.map((o) => ({
        clusterId: o.clusterId,
        decision: o.decision,
        rule: o.rule,
      })),
    });
  };

  const impact = (next: readonly ConnectionPolicy[]): DecisionChange[] => {
    const plan = planRules(next);
    if (plan.removed.length === 0 && plan.added.length === 0) return [];
    const removedSet = new Set(plan.removed);
    const pairs = new Map<DestState, Set<IdState>>();
    const addPairs = (members: Iterable<IdState>, ds: Iterable<DestState>) => {
      const list = [...members];
      if (list.length === 0) return;
      for (const d of ds) {
        let set = pairs.get(d);
        if (set === undefined) {
          set = new Set();
          pairs.set(d, set);
        }
        for (const st of list) set.add(st);
      }
    };
    for (const r of plan.removed) addPairs(r.members, r.dests);
    const addedHits = new Map<DestState, Hit[]>();
    for (const r of plan.added) {
      const hits = resolveRule(r, false);
      for (const [d, slots] of hits) {
        const list = addedHits.get(d) ?? [];
        list.push({ rule: r, slots });
        addedHits.set(d, list);
      }
      addPairs(r.members, hits.keys());
    }
    // A principal shared through a trust domain is decided for all of its holders at once
    // (DENY wins, as explain says): a change for one holder is a change for the others.
    for (const members of pairs.values()) {
      for (const st of [...members]) {
        for (const h of catalog.identitiesWithPrincipal(st.rec.principal)) {
          const co = idStates.get(h.key);
          if (co !== undefined) members.add(co);
        }
      }
    }
    const out: DecisionChange[] = [];
    /** The first of the hits whose rule selects the identity on the slot (null: default). */
    const ruleAt = (hits: Hit[], st: IdState, slot: number): Rule | null => {
      for (const hit of hits) {
        if (hit.slots.includes(slot) && hit.rule.members.has(st)) return hit.rule;
      }
      return null;
    };
    /** The decision on one slot as explain makes it, shared principals included. */
    const decideAt = (hits: Hit[], d: DestState, st: IdState, slot: number) => {
      const own = ruleAt(hits, st, slot);
      let decision = slotDecision(own, st.rec.clusterId === d.rec.clusterId);
      let rule = own?.name ?? "";
      if (decision === Decision.ALLOW) {
        for (const h of catalog.identitiesWithPrincipal(st.rec.principal)) {
          if (h.clusterId === st.rec.clusterId) continue;
          const co = idStates.get(h.key);
          const r = co === undefined ? null : ruleAt(hits, co, slot);
          if (slotDecision(r, h.clusterId === d.rec.clusterId) === Decision.DENY) {
            decision = Decision.DENY;
            rule = r?.name ?? "";
            break;
          }
        }
      }
      return { decision, rule };
    };
    for (const [d, members] of pairs) {
      const before = d.rules;
      const after = d.rules
        .filter((h) => !removedSet.has(h.rule))
        .concat(addedHits.get(d) ?? [])
        .sort(hitOrder);
      for (const st of members) {
        if (idStates.get(st.key) !== st) continue;
        const changes: {
          port: number;
          before: Decision;
          after: Decision;
          rb: string;
          ra: string;
        }[] = [];
        for (let s = 0; s < d.slotCount; s++) {
          const b = decideAt(before, d, st, s);
          const a = decideAt(after, d, st, s);
          if (b.decision === a.decision) continue;
          changes.push({
            port: d.ports[s] ?? 0,
            before: b.decision,
            after: a.decision,
            rb: b.rule,
            ra: a.rule,
          });
        }
        if (changes.length === 0) continue;
        const first = changes[0]!;
        const uniform =
          changes.length === d.slotCount &&
          changes.every(
            (c) =>
              c.before === first.before &&
              c.after === first.after &&
              c.rb === first.rb &&
              c.ra === first.ra,
          );
        for (const c of uniform ? [{ ...first, port: 0 }] : changes) {
          out.push(
            create(DecisionChangeSchema, {
              source: {
                clusterId: st.rec.clusterId,
                namespace: st.rec.identity.namespace,
                serviceAccount: st.rec.identity.serviceAccount,
              },
              destination: {
                clusterId: d.rec.clusterId,
                namespace: d.rec.service.namespace,
                service: d.rec.service.name,
                port: c.port,
              },
              before: c.before,
              after: c.after,
              ruleBefore: c.rb,
              ruleAfter: c.ra,
            }),
          );
        }
      }
    }
    // Added rules are not installed: drop what resolveRule attached.
    for (const r of plan.added) r.members = new Set();
    const key = (c: DecisionChange) =>
      [
        c.source!.clusterId,
        c.source!.namespace,
        c.source!.serviceAccount,
        c.destination!.clusterId,
        c.destination!.namespace,
        c.destination!.service,
      ].join("\u0000");
    return out.sort((x, y) => {
      const kx = key(x);
      const ky = key(y);
      if (kx !== ky) return kx < ky ? -1 : 1;
      return x.destination!.port - y.destination!.port;
    });
  };

  // ---------------------------------------------------------------- the engine

  return {
    catalog,
    get defaults() {
      return { ...defaults };
    },

    applyCatalog(changes) {
      checkChanges(changes);
      const tx = newTx();
      for (const c of changes) {
        switch (c.kind) {
          case "cluster":
            upsertCluster(tx, c.cluster);
            break;
          case "cluster-removed":
            removeCluster(tx, c.clusterId);
            break;
          case "service":
            upsertService(tx, c.clusterId, c.service);
            break;
          case "service-removed":
            removeService(tx, c.clusterId, c.namespace, c.name);
            break;
          case "identity":
            upsertIdentity(tx, c.clusterId, c.identity);
            break;
          case "identity-removed":
            removeIdentity(tx, c.clusterId, c.namespace, c.serviceAccount);
            break;
          case "cluster-services-replaced":
            replaceClusterServices(tx, c.clusterId, c.services, c.identities);
            break;
        }
      }
      return settle(tx);
    },

    setPolicies,

    setDefaults(next) {
      const same = checkDefault(next.sameCluster ?? defaults.sameCluster, "sameCluster");
      const cross = checkDefault(next.crossCluster ?? defaults.crossCluster, "crossCluster");
      const tx = newTx();
      if (same === defaults.sameCluster && cross === defaults.crossCluster) return finishTx(tx);
      defaults.sameCluster = same;
      defaults.crossCluster = cross;
      for (const rec of catalog.allServices()) tx.fullDests.set(rec.key, rec);
      for (const key of catalog.logicalServiceKeys()) tx.logical.set(key, null);
      return settle(tx);
    },

    policies: () => sortPolicies(ordered.map((r) => r.policy)),
    intents: (clusterId) => intentsByCluster.get(clusterId) ?? EMPTY_INTENTS,
    clustersWithIntents: () => [...intentsByCluster.keys()].sort(),

    warnings(clusterId) {
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
      const ds = [...(destsByCluster.get(clusterId) ?? [])].sort((a, b) =>
        a.key < b.key ? -1 : 1,
      );
      const intents = intentsByCluster.get(clusterId);
      for (const d of ds) {
        // A shared principal matters only where an AccessIntent enforces decisions.
        const enforced = intents?.has(accessName(d.rec.service.namespace, d.rec.service.name));
        for (const w of d.warnings) if (enforced || w.code !== "shared-principal") out.push(w);
      }
      return out;
    },

    explain,
    impact,
  };
}
