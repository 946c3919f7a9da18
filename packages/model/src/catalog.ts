import type { Service, WorkloadIdentity } from "@isthmus/proto";
import { ModelError } from "./errors.js";

/** Istio's trust domain when a mesh does not set one. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

/** An east-west gateway address (the proto `GatewayAddress` init shape). */
export interface GatewayAddressInit {
  address: string;
  port: number;
}

/** What the hub knows about one cluster: its registered labels and its agent's mesh facts. */
export interface ClusterFacts {
  /** Cluster id (DNS-1123 label). */
  id: string;
  /** Labels used by policy selectors (env, region...). */
  labels: Record<string, string>;
  /** Istio network of the cluster. */
  network: string;
  /** Trust domain of the cluster's mesh; empty means cluster.local. */
  trustDomain: string;
  /** East-west gateway addresses. */
  gateways: GatewayAddressInit[];
  /** Locality as region/zone, may be empty. */
  locality: string;
}

/** One change of the catalog, as the hub learns it from agents and registrations. */
export type CatalogChange =
  | { kind: "cluster"; cluster: ClusterFacts }
  | { kind: "cluster-removed"; clusterId: string }
  | { kind: "service"; clusterId: string; service: Service }
  | { kind: "service-removed"; clusterId: string; namespace: string; name: string }
  | { kind: "identity"; clusterId: string; identity: WorkloadIdentity }
  | { kind: "identity-removed"; clusterId: string; namespace: string; serviceAccount: string }
  | {
      kind: "cluster-services-replaced";
      clusterId: string;
      services: Service[];
      identities: WorkloadIdentity[];
    };

/** A service of one cluster. Records are immutable: an update replaces the record. */
export interface ServiceRecord {
  /** `cluster/namespace/name`. */
  readonly key: string;
  readonly clusterId: string;
  /** `namespace/name`: the logical service across clusters. */
  readonly logicalKey: string;
  readonly service: Service;
}

/** A workload identity of one cluster. Records are immutable: an update replaces the record. */
export interface IdentityRecord {
  /** `cluster/namespace/serviceAccount`. */
  readonly key: string;
  readonly clusterId: string;
  readonly identity: WorkloadIdentity;
  /** Istio principal `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
  readonly principal: string;
}

/** The Istio principal of a service account (a flat string: see `serviceKey`). */
export function principalOf(
  trustDomain: string,
  namespace: string,
  serviceAccount: string,
): string {
  return [trustDomain || DEFAULT_TRUST_DOMAIN, "ns", namespace, "sa", serviceAccount].join("/");
}

/** The trust domain part of a principal. */
export function trustDomainOf(principal: string): string {
  const at = principal.indexOf("/ns/");
  return at < 0 ? principal : principal.slice(0, at);
}

const INTERNED_MAX = 100_000;
const interned = new Map<string, string>();

/**
 * One shared copy of a string that repeats. A catalog repeats the same strings in every
 * cluster (`namespace/name` keys, label values, protocols, port names, namespaces), and each
 * decoded message carries its own copy. The pool holds up to 100k strings and starts over
 * when full: strings in use keep their copy, only later ones are not shared with them. Only
 * for strings that repeat: a string seen once costs a pool entry for nothing.
 */
export function intern(s: string): string {
  const known = interned.get(s);
  if (known !== undefined) return known;
  if (interned.size >= INTERNED_MAX) interned.clear();
  interned.set(s, s);
  return s;
}

/**
 * Catalog key of a service: `cluster/namespace/name`. The keys the catalog keeps are built
 * with `join`, which makes one flat string: a template literal or `+` whose result has 13
 * characters or more makes a rope (V8's cons string: 32 B per joint, holding on to its
 * pieces until it is flattened, by a hash for instance). The catalog keeps hundreds of
 * thousands of such keys, so a flat string roughly halves what each one costs.
 */
export function serviceKey(clusterId: string, namespace: string, name: string): string {
  return [clusterId, namespace, name].join("/");
}

/** Catalog key of a workload identity: `cluster/namespace/serviceAccount` (flat). */
export function identityKey(clusterId: string, namespace: string, serviceAccount: string): string {
  return [clusterId, namespace, serviceAccount].join("/");
}

/** Key of a logical service: `namespace/name` (flat). */
export function logicalServiceKey(namespace: string, name: string): string {
  return [namespace, name].join("/");
}

/** Copies cluster facts into their normal form: trust domain defaulted, gateways sorted. */
export function normalizeClusterFacts(facts: ClusterFacts): ClusterFacts {
  const labels: Record<string, string> = {};
  for (const k of Object.keys(facts.labels).sort()) labels[k] = facts.labels[k]!;
  const seen = new Set<string>();
  const gateways: GatewayAddressInit[] = [];
  for (const g of facts.gateways) {
    const key = `${g.address}:${g.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    gateways.push({ address: g.address, port: g.port });
  }
  gateways.sort((a, b) =>
    a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port,
  );
  return {
    id: facts.id,
    labels,
    network: facts.network,
    trustDomain: facts.trustDomain || DEFAULT_TRUST_DOMAIN,
    gateways,
    locality: facts.locality,
  };
}

const EMPTY_SET: ReadonlySet<never> = new Set();
const EMPTY_MAP: ReadonlyMap<string, never> = new Map<string, never>();

/** Read access to the catalog, with the indexes policy compilation needs. */
export interface Catalog {
  cluster(id: string): ClusterFacts | undefined;
  /** Cluster ids, sorted. */
  clusterIds(): string[];
  /** Ids of the clusters whose mesh uses this trust domain. */
  clustersWithTrustDomain(trustDomain: string): ReadonlySet<string>;
  /**
   * Number of trust domains used by more than one cluster. While it is 0, every principal
   * names the identity of one cluster only.
   */
  readonly sharedTrustDomains: number;

  service(clusterId: string, namespace: string, name: string): ServiceRecord | undefined;
  /** Services of one cluster by `namespace/name`. */
  servicesIn(clusterId: string): ReadonlyMap<string, ServiceRecord>;
  allServices(): IterableIterator<ServiceRecord>;
  /** Backing services of a logical service, by cluster id. */
  logicalService(namespace: string, name: string): ReadonlyMap<string, ServiceRecord>;
  /** Ids of the clusters backing a logical service, sorted. */
  backingClusters(namespace: string, name: string): string[];
  /** Keys (`namespace/name`) of every logical service. */
  logicalServiceKeys(): IterableIterator<string>;
  servicesInNamespace(namespace: string): ReadonlySet<ServiceRecord>;
  servicesNamed(name: string): ReadonlySet<ServiceRecord>;
  serviceNamespaces(): IterableIterator<string>;
  serviceNames(): IterableIterator<string>;
  /** Services of a cluster and namespace whose pods run as this service account. */
  servicesWithServiceAccount(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): readonly ServiceRecord[];

  identity(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): IdentityRecord | undefined;
  /** Identities of one cluster by `namespace/serviceAccount`. */
  identitiesIn(clusterId: string): ReadonlyMap<string, IdentityRecord>;
  allIdentities(): IterableIterator<IdentityRecord>;
  identitiesInNamespace(namespace: string): ReadonlySet<IdentityRecord>;
  identitiesWithServiceAccount(serviceAccount: string): ReadonlySet<IdentityRecord>;
  /** Identities of one namespace and service account, in every cluster. */
  identitiesWithNamespaceAndAccount(
    namespace: string,
    serviceAccount: string,
  ): ReadonlySet<IdentityRecord>;
  identityNamespaces(): IterableIterator<string>;
  serviceAccountNames(): IterableIterator<string>;
  /** Identities holding a principal: more than one only when clusters share a trust domain. */
  identitiesWithPrincipal(principal: string): readonly IdentityRecord[];

  readonly serviceCount: number;
  readonly identityCount: number;
}

/** The catalog with its mutations; the policy engine owns the only mutable instance. */
export interface MutableCatalog extends Catalog {
  /** Inserts or replaces a cluster's facts; returns the previous facts. */
  upsertCluster(facts: ClusterFacts): ClusterFacts | undefined;
  /** Removes a cluster with its services and identities; returns its facts. */
  removeCluster(id: string): ClusterFacts | undefined;
  upsertService(clusterId: string, service: Service): ServiceRecord | undefined;
  removeService(clusterId: string, namespace: string, name: string): ServiceRecord | undefined;
  upsertIdentity(clusterId: string, identity: WorkloadIdentity): IdentityRecord | undefined;
  removeIdentity(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): IdentityRecord | undefined;
}

function addTo<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (set === undefined) {
    set = new Set();
    index.set(key, set);
  }
  set.add(value);
}

function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}

/**
 * The same for indexes whose keys almost always hold one value (a principal, a service
 * account of a cluster): a one-element array costs a third of a Set, and there are as many of
 * them as identities.
 */
function addToList<K, V>(index: Map<K, V[]>, key: K, value: V): void {
  const list = index.get(key);
  if (list === undefined) index.set(key, [value]);
  else if (!list.includes(value)) index.set(key, [...list, value]);
}

function removeFromList<K, V>(index: Map<K, V[]>, key: K, value: V): void {
  const list = index.get(key);
  if (list === undefined || !list.includes(value)) return;
  if (list.length === 1) index.delete(key);
  else
    index.set(
      key,
      list.filter((v) => v !== value),
    );
}

const NO_VALUES: readonly never[] = [];

interface ClusterEntry {
  facts: ClusterFacts;
  services: Map<string, ServiceRecord>;
  identities: Map<string, IdentityRecord>;
  /** Services by `namespace/serviceAccount` (interned): per cluster, so that the keys are
   * the strings every cluster shares rather than one `cluster/namespace/sa` per service. */
  servicesBySa: Map<string, ServiceRecord[]>;
}

/** An empty catalog. */
export function createCatalog(): MutableCatalog {
  const clusters = new Map<string, ClusterEntry>();
  const byTrustDomain = new Map<string, Set<string>>();
  const logical = new Map<string, Map<string, ServiceRecord>>();
  const servicesByNamespace = new Map<string, Set<ServiceRecord>>();
  const servicesByName = new Map<string, Set<ServiceRecord>>();
  const identitiesByNamespace = new Map<string, Set<IdentityRecord>>();
  const identitiesBySa = new Map<string, Set<IdentityRecord>>();
  const identitiesByNsSa = new Map<string, Set<IdentityRecord>>();
  const identitiesByPrincipal = new Map<string, IdentityRecord[]>();
  let serviceCount = 0;
  let identityCount = 0;
  let sharedTrustDomains = 0;

  const addTrustDomain = (td: string, clusterId: string): void => {
    if (byTrustDomain.get(td)?.size === 1) sharedTrustDomains++;
    addTo(byTrustDomain, td, clusterId);
  };
  const removeTrustDomain = (td: string, clusterId: string): void => {
    if (byTrustDomain.get(td)?.size === 2) sharedTrustDomains--;
    removeFrom(byTrustDomain, td, clusterId);
  };

  /**
   * An identity's principal. Clusters that share a trust domain hold the same principals (a
   * service account deployed in each of them), so theirs are shared copies; with a trust
   * domain per cluster every principal is unique and pooling it would cost for nothing.
   */
  const principal = (trustDomain: string, identity: WorkloadIdentity): string => {
    const p = principalOf(trustDomain, identity.namespace, identity.serviceAccount);
    return (byTrustDomain.get(trustDomain)?.size ?? 0) > 1 ? intern(p) : p;
  };

  /** `what` names the entry in errors; built only when one is thrown. */
  const entry = (clusterId: string, what: () => string): ClusterEntry => {
    const e = clusters.get(clusterId);
    if (e === undefined) {
      throw new ModelError(`${what()}: unknown cluster "${clusterId}"`, "unknown-cluster");
    }
    return e;
  };

  const indexService = (e: ClusterEntry, rec: ServiceRecord, add: boolean): void => {
    const s = rec.service;
    const op = add ? addTo : removeFrom;
    op(servicesByNamespace, s.namespace, rec);
    op(servicesByName, s.name, rec);
    // Adding and removing are idempotent: repeated accounts need no dedupe.
    const listOp = add ? addToList : removeFromList;
    for (const sa of s.serviceAccounts) {
      listOp(e.servicesBySa, intern(logicalServiceKey(s.namespace, sa)), rec);
    }
    if (add) {
      let backing = logical.get(rec.logicalKey);
      if (backing === undefined) {
        backing = new Map();
        logical.set(rec.logicalKey, backing);
      }
      backing.set(rec.clusterId, rec);
    } else {
      const backing = logical.get(rec.logicalKey);
      backing?.delete(rec.clusterId);
      if (backing?.size === 0) logical.delete(rec.logicalKey);
    }
  };

  const indexIdentity = (rec: IdentityRecord, add: boolean): void => {
    const op = add ? addTo : removeFrom;
    op(identitiesByNamespace, rec.identity.namespace, rec);
    op(identitiesBySa, rec.identity.serviceAccount, rec);
    op(
      identitiesByNsSa,
      intern(logicalServiceKey(rec.identity.namespace, rec.identity.serviceAccount)),
      rec,
    );
    (add ? addToList : removeFromList)(identitiesByPrincipal, rec.principal, rec);
  };

  const removeServiceRecord = (e: ClusterEntry, nsName: string): ServiceRecord | undefined => {
    const prev = e.services.get(nsName);
    if (prev === undefined) return undefined;
    e.services.delete(nsName);
    indexService(e, prev, false);
    serviceCount--;
    return prev;
  };

  const removeIdentityRecord = (e: ClusterEntry, nsSa: string): IdentityRecord | undefined => {
    const prev = e.identities.get(nsSa);
    if (prev === undefined) return undefined;
    e.identities.delete(nsSa);
    indexIdentity(prev, false);
    identityCount--;
    return prev;
  };

  const checkName = (what: () => string, field: string, value: string): void => {
    if (typeof value !== "string" || value === "") {
      throw new ModelError(`${what()}: ${field} is empty`, "invalid-entry");
    }
  };

  const catalog: MutableCatalog = {
    cluster: (id) => clusters.get(id)?.facts,
    clusterIds: () => [...clusters.keys()].sort(),
    clustersWithTrustDomain: (td) => byTrustDomain.get(td) ?? EMPTY_SET,

    service: (clusterId, namespace, name) =>
      clusters.get(clusterId)?.services.get(`${namespace}/${name}`),
    servicesIn: (clusterId) => clusters.get(clusterId)?.services ?? EMPTY_MAP,
    *allServices() {
      for (const e of clusters.values()) yield* e.services.values();
    },
    logicalService: (namespace, name) =>
      logical.get(logicalServiceKey(namespace, name)) ?? EMPTY_MAP,
    backingClusters: (namespace, name) =>
      [...(logical.get(logicalServiceKey(namespace, name))?.keys() ?? [])].sort(),
    logicalServiceKeys: () => logical.keys(),
    servicesInNamespace: (namespace) => servicesByNamespace.get(namespace) ?? EMPTY_SET,
    servicesNamed: (name) => servicesByName.get(name) ?? EMPTY_SET,
    serviceNamespaces: () => servicesByNamespace.keys(),
    serviceNames: () => servicesByName.keys(),
    servicesWithServiceAccount: (clusterId, namespace, sa) =>
      clusters.get(clusterId)?.servicesBySa.get(`${namespace}/${sa}`) ?? NO_VALUES,

    identity: (clusterId, namespace, sa) =>
      clusters.get(clusterId)?.identities.get(`${namespace}/${sa}`),
    identitiesIn: (clusterId) => clusters.get(clusterId)?.identities ?? EMPTY_MAP,
    *allIdentities() {
      for (const e of clusters.values()) yield* e.identities.values();
    },
    identitiesInNamespace: (namespace) => identitiesByNamespace.get(namespace) ?? EMPTY_SET,
    identitiesWithServiceAccount: (sa) => identitiesBySa.get(sa) ?? EMPTY_SET,
    identitiesWithNamespaceAndAccount: (namespace, sa) =>
      identitiesByNsSa.get(`${namespace}/${sa}`) ?? EMPTY_SET,
    identityNamespaces: () => identitiesByNamespace.keys(),
    serviceAccountNames: () => identitiesBySa.keys(),
    identitiesWithPrincipal: (principal) => identitiesByPrincipal.get(principal) ?? NO_VALUES,

    get serviceCount() {
      return serviceCount;
    },
    get sharedTrustDomains() {
      return sharedTrustDomains;
    },
    get identityCount() {
      return identityCount;
    },

    upsertCluster(input) {
      checkName(() => "cluster", "id", input.id);
      const facts = normalizeClusterFacts(input);
      const e = clusters.get(facts.id);
      if (e === undefined) {
        clusters.set(facts.id, {
          facts,
          services: new Map(),
          identities: new Map(),
          servicesBySa: new Map(),
        });
        addTrustDomain(facts.trustDomain, facts.id);
        return undefined;
      }
      const prev = e.facts;
      e.facts = facts;
      if (prev.trustDomain !== facts.trustDomain) {
        removeTrustDomain(prev.trustDomain, facts.id);
        addTrustDomain(facts.trustDomain, facts.id);
        // Principals name the trust domain: re-create the identity records.
        for (const [nsSa, rec] of e.identities) {
          indexIdentity(rec, false);
          const next: IdentityRecord = {
            key: rec.key,
            clusterId: rec.clusterId,
            identity: rec.identity,
            principal: principal(facts.trustDomain, rec.identity),
          };
          e.identities.set(nsSa, next);
          indexIdentity(next, true);
        }
      }
      return prev;
    },

    removeCluster(id) {
      const e = clusters.get(id);
      if (e === undefined) return undefined;
      for (const nsName of [...e.services.keys()]) removeServiceRecord(e, nsName);
      for (const nsSa of [...e.identities.keys()]) removeIdentityRecord(e, nsSa);
      clusters.delete(id);
      removeTrustDomain(e.facts.trustDomain, id);
      return e.facts;
    },

    upsertService(clusterId, service) {
      const what = () => `service ${clusterId}/${service.namespace}/${service.name}`;
      const e = entry(clusterId, what);
      checkName(what, "namespace", service.namespace);
      checkName(what, "name", service.name);
      const nsName = intern(logicalServiceKey(service.namespace, service.name));
      const prev = removeServiceRecord(e, nsName);
      const rec: ServiceRecord = {
        key: serviceKey(clusterId, service.namespace, service.name),
        clusterId,
        logicalKey: nsName,
        service,
      };
      e.services.set(nsName, rec);
      indexService(e, rec, true);
      serviceCount++;
      return prev;
    },

    removeService(clusterId, namespace, name) {
      const e = clusters.get(clusterId);
      return e === undefined ? undefined : removeServiceRecord(e, `${namespace}/${name}`);
    },

    upsertIdentity(clusterId, identity) {
      const what = () =>
        `workload identity ${clusterId}/${identity.namespace}/${identity.serviceAccount}`;
      const e = entry(clusterId, what);
      checkName(what, "namespace", identity.namespace);
      checkName(what, "serviceAccount", identity.serviceAccount);
      const nsSa = intern(logicalServiceKey(identity.namespace, identity.serviceAccount));
      const prev = removeIdentityRecord(e, nsSa);
      const rec: IdentityRecord = {
        key: identityKey(clusterId, identity.namespace, identity.serviceAccount),
        clusterId,
        identity,
        principal: principal(e.facts.trustDomain, identity),
      };
      e.identities.set(nsSa, rec);
      indexIdentity(rec, true);
      identityCount++;
      return prev;
    },

    removeIdentity(clusterId, namespace, serviceAccount) {
      const e = clusters.get(clusterId);
      return e === undefined
        ? undefined
        : removeIdentityRecord(e, `${namespace}/${serviceAccount}`);
    },
  };
  return catalog;
}
