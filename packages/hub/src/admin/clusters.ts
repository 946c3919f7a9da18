// AdminService calls on clusters: create (with a bootstrap token), delete, rotate the token.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AdminService,
  type CallContext,
  Code,
  GrpcError,
  type ServiceHandlers,
} from "@isthmus/proto";
import type { ClusterAdminContext } from "../context.js";
import { type ClusterRecord, hashToken, newToken } from "../registry.js";
import { expectedVersion, storeError } from "./errors.js";

export function clusterHandlers(
  ctx: ClusterAdminContext,
): Pick<
  ServiceHandlers<(typeof AdminService)["method"]>,
  "createCluster" | "deleteCluster" | "rotateClusterToken"
> {
  const log = ctx.logger.child({ module: "admin" });
  const admin = (call: CallContext) => ctx.authorizeAdmin(call, "admin");

  return {
    async createCluster(req, call) {
      admin(call);
      const id = req.cluster!.id;
      if (ctx.registry.clusters.has(id))
        throw new GrpcError(Code.ALREADY_EXISTS, `cluster "${id}" already exists`);
      const token = newToken();
      const tokenExpiresAt = ctx.now() + ctx.config.bootstrapTokenTtlSeconds * 1000;
      let record: ClusterRecord;
      try {
        record = await ctx.registry.putCluster(
          {
            cluster: { ...req.cluster!, createdAt: timestampFromMs(ctx.now()) },
            tokenHash: hashToken(token),
            tokenExpiresAt,
            certSerials: [],
          },
          0,
        );
      } catch (err) {
        storeError(err, `cluster "${id}"`);
      }
      // The registry's change listener (registry-changes.ts) gave the engine its labels.
      log.info("cluster created", { cluster: id });
      return {
        cluster: record.cluster,
        bootstrapToken: token,
        tokenExpiresAt: timestampFromMs(tokenExpiresAt),
        hubCaPem: ctx.hubCa.certPem,
      };
    },

    async deleteCluster(req, call) {
      admin(call);
      if (!ctx.registry.clusters.has(req.id))
        throw new GrpcError(Code.NOT_FOUND, `cluster "${req.id}" not found`);
      try {
        await ctx.registry.deleteCluster(
          req.id,
          expectedVersion(req.resourceVersion, `cluster "${req.id}"`),
        );
      } catch (err) {
        storeError(err, `cluster "${req.id}"`);
      }
      // The registry's change listener (registry-changes.ts) cut its stream and dropped its
      // catalog, as at every replica.
      log.info("cluster deleted", { cluster: req.id });
      return {};
    },

    async rotateClusterToken(req, call) {
      admin(call);
      const record = ctx.registry.clusters.get(req.id);
      if (record === undefined)
        throw new GrpcError(Code.NOT_FOUND, `cluster "${req.id}" not found`);
      const token = newToken();
      const tokenExpiresAt = ctx.now() + ctx.config.bootstrapTokenTtlSeconds * 1000;
      try {
        await ctx.registry.putCluster(
          { ...record, tokenHash: hashToken(token), tokenExpiresAt },
          record.version,
        );
      } catch (err) {
        storeError(err, `cluster "${req.id}"`);
      }
      log.info("bootstrap token rotated", { cluster: req.id });
      return {
        bootstrapToken: token,
        tokenExpiresAt: timestampFromMs(tokenExpiresAt),
        hubCaPem: ctx.hubCa.certPem,
      };
    },
  };
}
