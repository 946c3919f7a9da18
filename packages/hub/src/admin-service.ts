// AdminService: clusters, policies, catalog and status for operators; each resource's calls
// in admin/.
import type { AdminService, ServiceHandlers } from "@isthmus/proto";
import { catalogHandlers } from "./admin/catalog.js";
import { clusterHandlers } from "./admin/clusters.js";
import { policyHandlers } from "./admin/policies.js";
import { statusHandlers } from "./admin/status.js";
import type { ClusterAdminContext, PolicyAdminContext, StatusContext } from "./context.js";

export function createAdminHandlers(
  ctx: ClusterAdminContext & PolicyAdminContext & StatusContext,
): ServiceHandlers<(typeof AdminService)["method"]> {
  return {
    ...clusterHandlers(ctx),
    ...policyHandlers(ctx),
    ...statusHandlers(ctx),
    ...catalogHandlers(ctx),
  };
}
