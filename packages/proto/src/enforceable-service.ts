import type { Service } from "./gen/isthmus/v1/catalog_pb.js";

/**
 * Whether Isthmus can enforce policy on a catalog Service: its namespace is in the mesh (a
 * proxy checks the AuthorizationPolicy) and it has a pod selector (the AuthorizationPolicy's
 * workload selector; an empty one would select the whole namespace). The hub's engine makes
 * AccessIntents and exports for these only, and an agent's DefaultAccessIntent covers these
 * local Services, so the two must decide alike: both call this.
 */
export function isEnforceableService(service: Pick<Service, "inMesh" | "selector">): boolean {
  return service.inMesh && Object.keys(service.selector).length > 0;
}
