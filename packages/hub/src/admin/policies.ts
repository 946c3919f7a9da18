// AdminService calls on policies: apply (with its impact, or a dry run), list, get, delete.

import { sortPolicies, validatePolicies } from "@isthmus/policy";
import {
  type AdminService,
  type CallContext,
  Code,
  type ConnectionPolicy,
  GrpcError,
  type ServiceHandlers,
} from "@isthmus/proto";
import type { PolicyAdminContext } from "../context.js";
import { ownedBySource } from "../policy-source.js";
import { expectedVersion, policyError, storeError } from "./errors.js";

/**
 * Long as a closure, not as one job: the four calls share the context and the write of a
 * policy set (writePolicies); none is over about 80 lines.
 */
/** A batch that would change or delete policies a source cluster owns, without force. */
function refuseSourced(owned: readonly ConnectionPolicy[], what: "change" | "delete"): void {
  const first = owned[0];
  if (first === undefined) return;
  throw new GrpcError(
    Code.FAILED_PRECONDITION,
    `policy "${first.name}" comes from the ConnectionPolicy objects of cluster "${first.source}" (policy source); ${what} it there, or use --force (that cluster's next report restores it)` +
      (owned.length > 1 ? ` (and ${owned.length - 1} more)` : ""),
  );
}

export function policyHandlers(
  ctx: PolicyAdminContext,
): Pick<
  ServiceHandlers<(typeof AdminService)["method"]>,
  "applyPolicies" | "listPolicies" | "getPolicy" | "deletePolicy"
> {
  const log = ctx.logger.child({ module: "admin" });
  const viewer = (call: CallContext) => ctx.authorizeAdmin(call, "viewer");
  const admin = (call: CallContext) => ctx.authorizeAdmin(call, "admin");

  async function writePolicies(
    next: Map<string, ConnectionPolicy>,
    puts: ConnectionPolicy[],
    deletes: string[],
    expect: Map<string, number>,
  ) {
    const nextSet = [...next.values()];
    try {
      validatePolicies(nextSet);
    } catch (err) {
      policyError(err);
    }
    try {
      await ctx.registry.writePolicies(puts, deletes, expect);
    } catch (err) {
      storeError(err, `policies ${[...puts.map((p) => p.name), ...deletes].join(", ")}`);
    }
    ctx.deliver(ctx.engine.setPolicies([...ctx.registry.policies.values()]));
    log.info("policies written", { put: puts.length, deleted: deletes.length });
  }

  return {
    async applyPolicies(req, call) {
      admin(call);
      // Only the hub sets where a policy comes from; through the admin API it comes from here.
      for (const p of req.policies) p.source = "";
      if (!req.force)
        refuseSourced(
          ownedBySource(
            ctx,
            req.policies.map((p) => p.name),
          ),
          "change",
        );
      const next = new Map(ctx.registry.policies);
      const expect = new Map<string, number>();
      const names = new Set<string>();
      for (const p of req.policies) {
        if (names.has(p.name))
          throw new GrpcError(
            Code.INVALID_ARGUMENT,
            `policy "${p.name}" appears twice in the batch`,
          );
        names.add(p.name);
        const v = expectedVersion(p.resourceVersion, `policy "${p.name}"`);
        if (v !== undefined) {
          const stored = ctx.registry.policies.get(p.name)?.resourceVersion;
          if (stored !== p.resourceVersion) {
            throw new GrpcError(
              Code.ABORTED,
              stored === undefined
                ? `policy "${p.name}": resource_version ${p.resourceVersion} given but the policy does not exist`
                : `policy "${p.name}": resource_version ${p.resourceVersion} is stale (stored ${stored}); read it again and retry`,
            );
          }
          expect.set(p.name, v);
        }
        next.set(p.name, p);
      }
      if (req.dryRun) {
        const nextSet = [...next.values()];
        try {
          validatePolicies(nextSet);
          return { policies: req.policies, impact: ctx.engine.impact(nextSet) };
        } catch (err) {
          policyError(err);
        }
      }
      const impact = (() => {
        try {
          return ctx.engine.impact([...next.values()]);
        } catch (err) {
          policyError(err);
        }
      })();
      await writePolicies(next, req.policies, [], expect);
      return { policies: req.policies.map((p) => ctx.registry.policies.get(p.name)!), impact };
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
      if (!req.force) refuseSourced(ownedBySource(ctx, [req.name]), "delete");
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
      if (!req.dryRun) await writePolicies(next, [], [req.name], expect);
      return { impact };
    },
  };
}
