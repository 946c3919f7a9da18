// Catalog intake: catalog changes are applied to the catalog, and what they affect is marked
// in the batch (destinations to recompile, identities to re-match, principals whose holders
// changed, logical services to recompute). Nothing is decided here; settle does that.
import { type CatalogChange, type ClusterFacts, principalOf } from "@isthmus/model";
import type { Service, WorkloadIdentity } from "@isthmus/proto";
import { contentJson } from "../content-hash.js";
import { PolicyError } from "../errors.js";
import { finalizeDefaultAccess } from "./access-intents.js";
import {
  type Batch,
  markIdentity,
  markPrincipal,
  markServiceAccounts,
  setIntent,
} from "./batch.js";
import { type EngineState, serviceIntentNames } from "./engine-state.js";
import { markService } from "./imports-exports.js";

function sameJson(a: unknown, b: unknown): boolean {
  return contentJson(a) === contentJson(b);
}

/** What of a service decides its compiled state (not its labels or annotations). */
function serviceShapeKey(s: Service): string {
  return contentJson({
    ports: s.ports,
    selector: s.selector,
    inMesh: s.inMesh,
    serviceAccounts: [...new Set(s.serviceAccounts)].sort(),
  });
}

/** Applies one catalog change to the catalog and marks what it affects. */
export function applyCatalogChange(state: EngineState, batch: Batch, c: CatalogChange): void {
  switch (c.kind) {
    case "cluster":
      upsertCluster(state, batch, c.cluster);
      break;
    case "cluster-removed":
      removeCluster(state, batch, c.clusterId);
      break;
    case "service":
      upsertService(state, batch, c.clusterId, c.service);
      break;
    case "service-removed":
      removeService(state, batch, c.clusterId, c.namespace, c.name);
      break;
    case "identity":
      upsertIdentity(state, batch, c.clusterId, c.identity);
      break;
    case "identity-removed":
      removeIdentity(state, batch, c.clusterId, c.namespace, c.serviceAccount);
      break;
    case "cluster-services-replaced":
      replaceClusterServices(state, batch, c.clusterId, c.services, c.identities);
      break;
  }
}

function unregisterDestination(state: EngineState, batch: Batch, key: string): void {
  batch.recompile.delete(key);
  const d = state.destinations.get(key);
  if (d === undefined) return;
  for (const hit of d.rules) hit.rule.destinations.delete(d);
  state.destinations.delete(key);
  d.live = false;
  state.destinationsByCluster.get(d.record.clusterId)?.delete(d);
  const backing = state.destinationsByLogical.get(d.record.logicalKey);
  backing?.delete(d);
  if (backing?.size === 0) state.destinationsByLogical.delete(d.record.logicalKey);
  batch.redecide.delete(d);
  batch.rebuild.delete(d);
  setIntent(state, batch, d.record.clusterId, serviceIntentNames(state, d.record).access, null);
}

function upsertService(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  service: Service,
): void {
  const { catalog } = state;
  const prev = catalog.upsertService(clusterId, service);
  const record = catalog.service(clusterId, service.namespace, service.name)!;
  const d = state.destinations.get(record.key);
  markService(batch, clusterId, record.logicalKey, d);
  if (prev !== undefined && d !== undefined && !batch.recompile.has(record.key)) {
    d.record = record;
    if (serviceShapeKey(prev.service) === serviceShapeKey(service)) return;
  }
  batch.recompile.set(record.key, record);
  if (prev !== undefined) markServiceAccounts(state, batch, clusterId, prev.service);
  markServiceAccounts(state, batch, clusterId, service);
}

function removeService(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  namespace: string,
  name: string,
): void {
  const prev = state.catalog.removeService(clusterId, namespace, name);
  if (prev === undefined) return;
  markService(batch, clusterId, prev.logicalKey, state.destinations.get(prev.key));
  unregisterDestination(state, batch, prev.key);
  markServiceAccounts(state, batch, clusterId, prev.service);
}

function upsertIdentity(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  identity: WorkloadIdentity,
): void {
  const { catalog } = state;
  const prev = catalog.upsertIdentity(clusterId, identity);
  markIdentity(batch, clusterId, identity.namespace, identity.serviceAccount);
  if (prev === undefined) {
    markPrincipal(
      batch,
      catalog.identity(clusterId, identity.namespace, identity.serviceAccount)!.principal,
      clusterId,
    );
  }
}

function removeIdentity(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  namespace: string,
  serviceAccount: string,
): void {
  const prev = state.catalog.removeIdentity(clusterId, namespace, serviceAccount);
  if (prev === undefined) return;
  markIdentity(batch, clusterId, namespace, serviceAccount);
  markPrincipal(batch, prev.principal, clusterId);
}

/** Every service of the clusters of a trust domain that has no compiled state yet. */
function compileAllServices(state: EngineState, batch: Batch, trustDomain: string): void {
  for (const c of state.catalog.clustersWithTrustDomain(trustDomain)) {
    for (const record of state.catalog.servicesIn(c).values()) {
      if (!state.destinations.has(record.key)) batch.recompile.set(record.key, record);
    }
  }
}

function upsertCluster(state: EngineState, batch: Batch, facts: ClusterFacts): void {
  const { catalog } = state;
  const prev = catalog.upsertCluster(facts);
  const next = catalog.cluster(facts.id)!;
  if (prev === undefined) finalizeDefaultAccess(state, batch, facts.id);
  if (prev === undefined || prev.trustDomain !== next.trustDomain) {
    compileAllServices(state, batch, next.trustDomain);
  }
  if (prev === undefined) return;
  const id = facts.id;
  if (!sameJson(prev.labels, next.labels)) {
    for (const record of catalog.servicesIn(id).values()) batch.recompile.set(record.key, record);
    for (const record of catalog.identitiesIn(id).values()) {
      markIdentity(batch, id, record.identity.namespace, record.identity.serviceAccount);
    }
  }
  if (prev.trustDomain !== next.trustDomain) {
    for (const record of catalog.identitiesIn(id).values()) {
      const { namespace, serviceAccount } = record.identity;
      markIdentity(batch, id, namespace, serviceAccount);
      markPrincipal(batch, principalOf(prev.trustDomain, namespace, serviceAccount), id);
      markPrincipal(batch, record.principal, id);
    }
    batch.rebuildClusters.add(id);
  }
  if (
    prev.network !== next.network ||
    prev.locality !== next.locality ||
    !sameJson(prev.gateways, next.gateways)
  ) {
    for (const record of catalog.servicesIn(id).values()) {
      batch.logicalServices.set(record.logicalKey, null);
    }
  }
}

function removeCluster(state: EngineState, batch: Batch, clusterId: string): void {
  const { catalog } = state;
  const facts = catalog.cluster(clusterId);
  if (facts === undefined) return;
  for (const record of [...catalog.servicesIn(clusterId).values()]) {
    removeService(state, batch, clusterId, record.service.namespace, record.service.name);
  }
  for (const record of [...catalog.identitiesIn(clusterId).values()]) {
    const { namespace, serviceAccount } = record.identity;
    removeIdentity(state, batch, clusterId, namespace, serviceAccount);
  }
  catalog.removeCluster(clusterId);
  state.destinationsByCluster.delete(clusterId);
  batch.rebuildClusters.delete(clusterId);
  for (const name of [...(state.intentsByCluster.get(clusterId)?.keys() ?? [])]) {
    setIntent(state, batch, clusterId, name, null);
  }
}

/** A cluster's full snapshot: what is absent leaves, what differs is upserted. */
function replaceClusterServices(
  state: EngineState,
  batch: Batch,
  clusterId: string,
  services: readonly Service[],
  identities: readonly WorkloadIdentity[],
): void {
  const { catalog } = state;
  if (catalog.servicesIn(clusterId).size === 0 && catalog.identitiesIn(clusterId).size === 0) {
    // A first snapshot: nothing to compare with.
    for (const s of services) upsertService(state, batch, clusterId, s);
    for (const i of identities) upsertIdentity(state, batch, clusterId, i);
    return;
  }
  const wantServices = new Map(services.map((s) => [`${s.namespace}/${s.name}`, s]));
  for (const [nsName, record] of [...catalog.servicesIn(clusterId)]) {
    if (!wantServices.has(nsName)) {
      removeService(state, batch, clusterId, record.service.namespace, record.service.name);
    }
  }
  const wantIds = new Map(identities.map((i) => [`${i.namespace}/${i.serviceAccount}`, i]));
  for (const [nsSa, record] of [...catalog.identitiesIn(clusterId)]) {
    if (!wantIds.has(nsSa)) {
      const { namespace, serviceAccount } = record.identity;
      removeIdentity(state, batch, clusterId, namespace, serviceAccount);
    }
  }
  for (const s of wantServices.values()) {
    const prev = catalog.service(clusterId, s.namespace, s.name);
    if (prev === undefined || !sameJson(prev.service, s)) upsertService(state, batch, clusterId, s);
  }
  for (const i of wantIds.values()) {
    const prev = catalog.identity(clusterId, i.namespace, i.serviceAccount);
    if (prev === undefined || !sameJson(prev.identity, i))
      upsertIdentity(state, batch, clusterId, i);
  }
}

/** Refuses a change set naming an unknown cluster or an empty name, before any change. */
export function checkCatalogChanges(state: EngineState, changes: readonly CatalogChange[]): void {
  const known = new Set(state.catalog.clusterIds());
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
}
