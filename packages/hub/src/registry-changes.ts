// Every registry change reaches the policy engine here, whether this hub wrote it or another
// replica on the same store did (through the store's watch): policies, new or relabelled
// clusters, and deleted clusters.
import type { HubContext } from "./context.js";
import type { ClusterRecord } from "./registry.js";

export function followRegistry(ctx: HubContext): void {
  const { registry, engine } = ctx;
  registry.follow((change) => {
    if (change.policies) ctx.deliver(engine.setPolicies([...registry.policies.values()]));
    for (const { id, previous, current } of change.clusters) {
      if (current === undefined) forgetCluster(ctx, id);
      else if (previous === undefined || !sameLabels(previous, current)) {
        const facts = ctx.clusterFacts(id);
        if (facts !== undefined) ctx.applyCatalog([facts]);
      }
    }
  });
}

const sameLabels = (a: ClusterRecord, b: ClusterRecord) =>
  JSON.stringify(Object.entries(a.cluster.labels).sort()) ===
  JSON.stringify(Object.entries(b.cluster.labels).sort());

/** A deleted cluster leaves at once: its stream is cut (its certificates are revoked with the
 * record), its catalog dropped, and the engine forgets it. */
function forgetCluster(ctx: HubContext, id: string): void {
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
