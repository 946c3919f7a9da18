// What a replica that stops leading forgets: the soft state its agents brought.
import type { GrpcError } from "@isthmus/proto";
import type { HubContext } from "./context.js";

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
