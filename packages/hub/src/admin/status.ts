// AdminService calls on status: the hub's, each cluster's, and why a connection is allowed
// or denied (explain).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AdminService,
  type CallContext,
  type ClusterStatus,
  type ClusterStatusSchema,
  Code,
  GrpcError,
  type ServiceHandlers,
} from "@isthmus/proto";
import type { StatusContext } from "../context.js";
import { HUB_VERSION } from "../version.js";
import { policyError } from "./errors.js";

export function statusHandlers(
  ctx: StatusContext,
): Pick<
  ServiceHandlers<(typeof AdminService)["method"]>,
  "listClusters" | "getCluster" | "getStatus" | "explain"
> {
  const viewer = (call: CallContext) => ctx.authorizeAdmin(call, "viewer");

  function clusterStatus(id: string): MessageInitShape<typeof ClusterStatusSchema> {
    const record = ctx.registry.clusters.get(id);
    if (record === undefined) throw new GrpcError(Code.NOT_FOUND, `cluster "${id}" not found`);
    const cat = ctx.catalogs.get(id);
    const view = ctx.distributor.view(id);
    const warnings = [...(cat?.warnings ?? []), ...ctx.warnings(id)];
    return {
      cluster: record.cluster,
      connected: cat?.connected ?? false,
      ...(cat && cat.lastSeen > 0 ? { lastSeen: timestampFromMs(cat.lastSeen) } : {}),
      agentVersion: cat?.agentVersion ?? "",
      ...(cat?.mesh ? { mesh: cat.mesh } : {}),
      ackedVersion: view.ackedVersion,
      pendingNonce: view.pendingNonce,
      inSync: view.inSync && !ctx.catalogPending(),
      catalogRevision: cat?.connected ? cat.revision : 0n,
      nacks: view.nacks,
      refused: view.refused,
      driftRepairs: view.driftRepairs,
      driftRepairCount: BigInt(view.driftRepairCount),
      warnings,
      serviceCount: cat?.services.size ?? 0,
      identityCount: cat?.identities.size ?? 0,
      ...(cat?.staleUntil !== undefined ? { staleUntil: timestampFromMs(cat.staleUntil) } : {}),
      enrolled: record.certSerials.length > 0,
      ...(record.tokenHash !== ""
        ? { tokenExpiresAt: timestampFromMs(record.tokenExpiresAt) }
        : {}),
    };
  }

  return {
    async listClusters(_req, call) {
      viewer(call);
      return {
        clusters: [...ctx.registry.clusters.keys()].sort().map(clusterStatus) as ClusterStatus[],
      };
    },

    async getCluster(req, call) {
      viewer(call);
      return { status: clusterStatus(req.id) };
    },

    async explain(req, call) {
      viewer(call);
      try {
        return ctx.engine.explain(req.source!, req.destination!);
      } catch (err) {
        policyError(err);
      }
    },

    async getStatus(_req, call) {
      viewer(call);
      return {
        hubVersion: HUB_VERSION,
        systemVersion: ctx.systemVersion(),
        policyCount: ctx.registry.policies.size,
        clusters: [...ctx.registry.clusters.keys()].sort().map(clusterStatus) as ClusterStatus[],
        warmingUp: ctx.warmingUp(),
      };
    },
  };
}
