// The hub's copy of one cluster's catalog: created when its agent says hello, merged from
// its catalog updates (each turned into the engine's catalog changes), kept (stale) for the
// grace period after its agent disconnects.
import type { CatalogChange } from "@isthmus/policy";
import type { CatalogUpdate, MeshFacts } from "@isthmus/proto";
import { catalogKey, compact } from "./catalog-sharing.js";
import type { ClusterCatalog, ClusterFactsInput, HubContext } from "./context.js";

export const meshFacts = (m: MeshFacts): ClusterFactsInput => ({
  network: m.network,
  trustDomain: m.trustDomain,
  eastWestGateways: m.eastWestGateways.map((g) => ({ address: g.address, port: g.port })),
  locality: m.locality,
});

export function emptyCatalog(): ClusterCatalog {
  return {
    services: new Map(),
    identities: new Map(),
    revision: 0n,
    connected: false,
    lastSeen: 0,
    staleUntil: undefined,
    agentVersion: "",
    mesh: undefined,
    warnings: [],
    graceTimer: undefined,
  };
}

/** Turns a CatalogUpdate into engine changes and merges it into the hub's copy. */
export function mergeCatalog(
  ctx: Pick<HubContext, "catalogEvents">,
  clusterId: string,
  cat: ClusterCatalog,
  u: CatalogUpdate,
): CatalogChange[] {
  compact(u);
  const emit = (service: { namespace: string; name: string }, present: boolean) => {
    const k = catalogKey(service.namespace, service.name);
    for (const listener of ctx.catalogEvents)
      listener(clusterId, present ? cat.services.get(k) : undefined, k);
  };
  if (u.fullSnapshot) {
    const previous = [...cat.services.values()];
    cat.services = new Map(u.upsertedServices.map((s) => [catalogKey(s.namespace, s.name), s]));
    cat.identities = new Map(
      u.upsertedIdentities.map((i) => [catalogKey(i.namespace, i.serviceAccount), i]),
    );
    for (const s of previous)
      if (!cat.services.has(catalogKey(s.namespace, s.name))) emit(s, false);
    for (const s of u.upsertedServices) emit(s, true);
    return [
      {
        kind: "cluster-services-replaced",
        clusterId,
        services: u.upsertedServices,
        identities: u.upsertedIdentities,
      },
    ];
  }
  const changes: CatalogChange[] = [];
  for (const s of u.upsertedServices) {
    cat.services.set(catalogKey(s.namespace, s.name), s);
    changes.push({ kind: "service", clusterId, service: s });
    emit(s, true);
  }
  for (const r of u.removedServices) {
    if (!cat.services.delete(catalogKey(r.namespace, r.name))) continue;
    changes.push({ kind: "service-removed", clusterId, namespace: r.namespace, name: r.name });
    emit(r, false);
  }
  for (const i of u.upsertedIdentities) {
    cat.identities.set(catalogKey(i.namespace, i.serviceAccount), i);
    changes.push({ kind: "identity", clusterId, identity: i });
  }
  for (const r of u.removedIdentities) {
    if (!cat.identities.delete(catalogKey(r.namespace, r.name))) continue;
    changes.push({
      kind: "identity-removed",
      clusterId,
      namespace: r.namespace,
      serviceAccount: r.name,
    });
  }
  return changes;
}

/** Keeps a disconnected cluster's services (stale) for the grace period, then drops them. */
export function startGrace(
  ctx: Pick<
    HubContext,
    "config" | "logger" | "now" | "catalogs" | "catalogEvents" | "metrics" | "applyCatalog"
  >,
  clusterId: string,
  cat: ClusterCatalog,
): void {
  const graceMs = ctx.config.graceSeconds * 1000;
  cat.staleUntil = ctx.now() + graceMs;
  cat.graceTimer = setTimeout(() => {
    if (ctx.catalogs.get(clusterId) !== cat || cat.connected) return;
    ctx.logger.info("grace period over, dropping services", {
      cluster: clusterId,
      services: cat.services.size,
    });
    for (const k of cat.services.keys())
      for (const l of ctx.catalogEvents) l(clusterId, undefined, k);
    cat.services.clear();
    cat.identities.clear();
    cat.staleUntil = undefined;
    ctx.metrics.catalogServices.set({ cluster: clusterId }, 0);
    ctx.applyCatalog([
      { kind: "cluster-services-replaced", clusterId, services: [], identities: [] },
    ]);
  }, graceMs);
  cat.graceTimer.unref();
}
