// AdminService: clusters, policies, catalog and status for operators.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { isPolicyError, sortPolicies, validatePolicies } from "@isthmus/policy";
import type { ClusterStatusSchema } from "@isthmus/proto";
import {
  type AdminService,
  type CatalogFilter,
  type ClusterStatus,
  Code,
  type ConnectionPolicy,
  GrpcError,
  type ServiceHandlers,
} from "@isthmus/proto";
import { watchCatalog } from "./catalog-watch.js";
import type { HubContext } from "./hub.js";
import { type ClusterRecord, hashToken, newToken } from "./registry.js";
import { StoreError } from "./store.js";
import { HUB_VERSION } from "./version.js";

function storeError(err: unknown, what: string): never {
  if (err instanceof StoreError && err.code === "conflict") {
    throw new GrpcError(Code.ABORTED, `${what}: ${err.message}; read it again and retry`);
  }
  if (err instanceof StoreError && err.code === "not-found")
    throw new GrpcError(Code.NOT_FOUND, `${what}: not found`);
  if (err instanceof StoreError && err.code === "too-large")
    throw new GrpcError(Code.FAILED_PRECONDITION, `${what}: not written: ${err.message}`);
  if (err instanceof StoreError && err.code === "unavailable")
    throw new GrpcError(Code.UNAVAILABLE, `${what}: not written: ${err.message}`);
  throw err;
}

function policyError(err: unknown): never {
  if (isPolicyError(err)) {
    throw new GrpcError(
      err.code === "not-found" ? Code.NOT_FOUND : Code.INVALID_ARGUMENT,
      err.message,
    );
  }
  throw err;
}

function expectedVersion(resourceVersion: string, what: string): number | undefined {
  if (resourceVersion === "") return undefined;
  const v = Number(resourceVersion);
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new GrpcError(
      Code.INVALID_ARGUMENT,
      `${what}: invalid resource_version "${resourceVersion}"`,
    );
  return v;
}

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

export function createAdminHandlers(
  ctx: HubContext,
): ServiceHandlers<(typeof AdminService)["method"]> {
  const log = ctx.logger.child({ module: "admin" });
  const viewer = (call: Parameters<HubContext["authorizeAdmin"]>[0]) =>
    ctx.authorizeAdmin(call, "viewer");
  const admin = (call: Parameters<HubContext["authorizeAdmin"]>[0]) =>
    ctx.authorizeAdmin(call, "admin");

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
    // The engine has them: the registry's change listener (hub.ts) applied them.
    log.info("policies written", { put: puts.length, deleted: deletes.length });
  }

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
      log.info("cluster created", { cluster: id });
      return {
        cluster: record.cluster,
        bootstrapToken: token,
        tokenExpiresAt: timestampFromMs(tokenExpiresAt),
        hubCaPem: ctx.hubCa.certPem,
      };
    },

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
      // The registry's change listener (hub.ts) cut its stream and dropped its catalog.
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

    async applyPolicies(req, call) {
      admin(call);
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

    async explain(req, call) {
      viewer(call);
      try {
        return ctx.engine.explain(req.source!, req.destination!);
      } catch (err) {
        policyError(err);
      }
    },

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
