// The catalog of every cluster's services and workload identities, with the indexes policy
// compilation reads (createCatalog); its types are in catalog-types.ts, its keys in
// catalog-keys.ts.
import type { WorkloadIdentity } from "@isthmus/proto";
import { identityKey, intern, logicalServiceKey, principalOf, serviceKey } from "./catalog-keys.js";
import {
  type ClusterFacts,
  DEFAULT_TRUST_DOMAIN,
  type GatewayAddressInit,
  type IdentityRecord,
  type MutableCatalog,
  type ServiceRecord,
} from "./catalog-types.js";
import { ModelError } from "./errors.js";
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
 * account of a cluster): the value itself while it is alone, an array from the second on.
 * There are as many such keys as identities and services, and a one-element array (56 B)
 * would cost more than the map's entry. Values are records (objects), never arrays.
 */
type OneOrMore<V> = V | readonly V[];

const NO_VALUES: readonly never[] = [];

function addToList<K, V extends object>(index: Map<K, OneOrMore<V>>, key: K, value: V): void {
  const held = index.get(key);
  if (held === undefined) index.set(key, value);
  else if (!Array.isArray(held)) {
    if (held !== value) index.set(key, [held as V, value]);
  } else if (!held.includes(value)) index.set(key, [...held, value]);
}

function removeFromList<K, V extends object>(index: Map<K, OneOrMore<V>>, key: K, value: V): void {
  const held = index.get(key);
  if (held === undefined) return;
  if (!Array.isArray(held)) {
    if (held === value) index.delete(key);
    return;
  }
  const list = held as readonly V[];
  if (!list.includes(value)) return;
  // Two or more: one left is held alone again.
  const rest = list.filter((v) => v !== value);
  index.set(key, rest.length === 1 ? rest[0]! : rest);
}

/** The values of a key of such an index, as a list. */
function listOf<V extends object>(held: OneOrMore<V> | undefined): readonly V[] {
  if (held === undefined) return NO_VALUES;
  return Array.isArray(held) ? (held as readonly V[]) : [held as V];
}

interface ClusterEntry {
  facts: ClusterFacts;
  services: Map<string, ServiceRecord>;
  identities: Map<string, IdentityRecord>;
  /** Services by `namespace/serviceAccount` (interned): per cluster, so that the keys are
   * the strings every cluster shares rather than one `cluster/namespace/sa` per service. */
  servicesBySa: Map<string, OneOrMore<ServiceRecord>>;
}

/** An empty catalog. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one closure over the catalog's indexes; to become explicit state as in the policy engine
export function createCatalog(): MutableCatalog {
  const clusters = new Map<string, ClusterEntry>();
  const byTrustDomain = new Map<string, Set<string>>();
  const logical = new Map<string, Map<string, ServiceRecord>>();
  const servicesByNamespace = new Map<string, Set<ServiceRecord>>();
  const servicesByName = new Map<string, Set<ServiceRecord>>();
  const identitiesByNamespace = new Map<string, Set<IdentityRecord>>();
  const identitiesBySa = new Map<string, Set<IdentityRecord>>();
  const identitiesByNsSa = new Map<string, Set<IdentityRecord>>();
  const identitiesByPrincipal = new Map<string, OneOrMore<IdentityRecord>>();
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
      listOf(clusters.get(clusterId)?.servicesBySa.get(`${namespace}/${sa}`)),

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
    identitiesWithPrincipal: (principal) => listOf(identitiesByPrincipal.get(principal)),

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
