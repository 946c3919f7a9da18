// Bringing a replica's engine and soft state up to the registry: after writes of other
// replicas (seen through the store watch), on a takeover, and when a replica stops leading.
import type { GrpcError } from "@isthmus/proto";
import type { HubContext } from "./hub.js";
import type { RegistryChanges } from "./registry.js";

/** Forgets a deleted cluster at once: its stream, catalog, deliveries and engine entries. */
export function forgetCluster(ctx: HubContext, id: string): void {
  ctx.streams.get(id)?.abort();
  const cat = ctx.catalogs.get(id);
  if (cat?.graceTimer !== undefined) clearTimeout(cat.graceTimer);
  for (const k of cat?.services.keys() ?? [])
    for (const l of ctx.catalogEvents) l(id, undefined, k);
  ctx.catalogs.delete(id);
  ctx.distributor.forget(id);
  ctx.metrics.catalogServices.remove({ cluster: id });
  ctx.applyCatalog([{ kind: "cluster-removed", clusterId: id }]);
}

/** Applies registry changes (policies, clusters added, changed or deleted) to the engine;
 * the leader then delivers what they change. */
export function applyRegistryChanges(ctx: HubContext, changes: RegistryChanges): void {
  if (changes.policies) ctx.deliver(ctx.engine.setPolicies([...ctx.registry.policies.values()]));
  for (const id of changes.clusters) {
    if (!ctx.registry.clusters.has(id)) {
      forgetCluster(ctx, id);
      continue;
    }
    const facts = ctx.clusterFacts(id);
    if (facts !== undefined) ctx.applyCatalog([facts]);
  }
}

/**
 * What a replica that stops leading does: ends every agent stream with `reason` (the leader
 * hint) and forgets the catalogs the agents sent, which they send again to the next leader,
 * so that no stale service stays in its engine for a later term.
 */
export function dropAgents(ctx: HubContext, reason: GrpcError): void {
  for (const s of ctx.streams.values()) s.abort(reason);
  for (const [id, cat] of ctx.catalogs) {
    if (cat.graceTimer !== undefined) clearTimeout(cat.graceTimer);
    for (const k of cat.services.keys()) for (const l of ctx.catalogEvents) l(id, undefined, k);
    ctx.metrics.catalogServices.remove({ cluster: id });
    ctx.applyCatalog([
      { kind: "cluster-services-replaced", clusterId: id, services: [], identities: [] },
    ]);
  }
  ctx.catalogs.clear();
}
