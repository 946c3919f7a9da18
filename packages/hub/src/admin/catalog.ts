// AdminService calls on the catalog: list it, or watch it (catalog-watch.ts).
import type { AdminService, CallContext, CatalogFilter, ServiceHandlers } from "@isthmus/proto";
import { watchCatalog } from "../catalog-watch.js";
import type { StatusContext } from "../context.js";

function matches(
  filter: CatalogFilter | undefined,
  clusterId: string,
  namespace: string,
  name: string,
): boolean {
  return (
    (!filter?.clusterId || filter.clusterId === clusterId) &&
    (!filter?.namespace || filter.namespace === namespace) &&
    (!filter?.service || filter.service === name)
  );
}

export function catalogHandlers(
  ctx: StatusContext,
): Pick<ServiceHandlers<(typeof AdminService)["method"]>, "listCatalog" | "watchCatalog"> {
  const viewer = (call: CallContext) => ctx.authorizeAdmin(call, "viewer");

  return {
    async listCatalog(req, call) {
      viewer(call);
      const services = [];
      const identities = [];
      for (const id of [...ctx.catalogs.keys()].sort()) {
        const cat = ctx.catalogs.get(id)!;
        const stale = !cat.connected;
        for (const s of [...cat.services.values()].sort((a, b) =>
          `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
        )) {
          if (matches(req.filter, id, s.namespace, s.name))
            services.push({ clusterId: id, service: s, stale });
        }
        const td = cat.mesh?.trustDomain || "cluster.local";
        // With a service filter, the identities listed are those behind the listed services.
        const behind = new Set(
          services
            .filter((s) => s.clusterId === id)
            .flatMap((s) => s.service.serviceAccounts.map((sa) => `${s.service.namespace}/${sa}`)),
        );
        const sorted = [...cat.identities.values()].sort((a, b) =>
          `${a.namespace}/${a.serviceAccount}`.localeCompare(`${b.namespace}/${b.serviceAccount}`),
        );
        for (const i of sorted) {
          const wanted = req.filter?.service
            ? behind.has(`${i.namespace}/${i.serviceAccount}`)
            : matches(req.filter, id, i.namespace, "");
          if (wanted)
            identities.push({
              clusterId: id,
              identity: i,
              principal: `${td}/ns/${i.namespace}/sa/${i.serviceAccount}`,
            });
        }
      }
      return { services, identities };
    },

    async watchCatalog(req, stream, call) {
      viewer(call);
      await watchCatalog(ctx, req.filter, stream, call.signal);
    },
  };
}
