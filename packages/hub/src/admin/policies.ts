// AdminService calls on policies: apply (with its impact, or a dry run), list, get, delete,
// and explain of many connections; the writes and the batch explain are in policy-writes.ts.

import { sortPolicies } from "@isthmus/policy";
import {
  type AdminService,
  type CallContext,
  Code,
  GrpcError,
  type ServiceHandlers,
} from "@isthmus/proto";
import type { PolicyAdminContext } from "../context.js";
import { expectedVersion } from "./errors.js";
import { applyPolicies, explainBatch, writePolicies } from "./policy-writes.js";

export function policyHandlers(
  ctx: PolicyAdminContext,
): Pick<
  ServiceHandlers<(typeof AdminService)["method"]>,
  "applyPolicies" | "explainBatch" | "listPolicies" | "getPolicy" | "deletePolicy"
> {
  const viewer = (call: CallContext) => ctx.authorizeAdmin(call, "viewer");
  const admin = (call: CallContext) => ctx.authorizeAdmin(call, "admin");

  return {
    async applyPolicies(req, call) {
      admin(call);
      return applyPolicies(ctx, req);
    },

    async explainBatch(req, call) {
      viewer(call);
      return explainBatch(ctx, req);
    },

    async listPolicies(_req, call) {
      viewer(call);
      return { policies: sortPolicies([...ctx.registry.policies.values()]) };
    },

    async getPolicy(req, call) {
      viewer(call);
      const policy = ctx.registry.policies.get(req.name);
      if (policy === undefined)
        throw new GrpcError(Code.NOT_FOUND, `policy "${req.name}" not found`);
      return { policy };
    },

    async deletePolicy(req, call) {
      admin(call);
      const stored = ctx.registry.policies.get(req.name);
      if (stored === undefined)
        throw new GrpcError(Code.NOT_FOUND, `policy "${req.name}" not found`);
      const expect = new Map<string, number>();
      const v = expectedVersion(req.resourceVersion, `policy "${req.name}"`);
      if (v !== undefined) {
        if (stored.resourceVersion !== req.resourceVersion) {
          throw new GrpcError(
            Code.ABORTED,
            `policy "${req.name}": resource_version ${req.resourceVersion} is stale (stored ${stored.resourceVersion})`,
          );
        }
        expect.set(req.name, v);
      }
      const next = new Map(ctx.registry.policies);
      next.delete(req.name);
      const impact = ctx.engine.impact([...next.values()]);
      if (!req.dryRun) await writePolicies(ctx, next, [], [req.name], expect);
      return { impact };
    },
  };
}
