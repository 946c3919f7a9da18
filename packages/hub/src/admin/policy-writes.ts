// The policy writes and batch reads of the AdminService: apply (with prune and selector
// warnings), delete, and explain of many connections in one call.

import { create } from "@bufbuild/protobuf";
import {
  compileGlob,
  formatPath,
  isGlob,
  isPolicyError,
  type KnownObjects,
  type LabelSelector,
  parseLabelSelector,
  policyViolations,
  samePolicy,
  selectorWarnings,
  validatePolicies,
} from "@isthmus/policy";
import {
  type ApplyPoliciesRequest,
  type ApplyPoliciesResponse,
  ApplyPoliciesResponseSchema,
  Code,
  type ConnectionPolicy,
  type DestinationRef,
  DestinationRefSchema,
  type ExplainBatchRequest,
  type ExplainBatchResponse,
  ExplainBatchResponseSchema,
  type ExplainResult,
  ExplainResultSchema,
  GrpcError,
  type SourceRef,
  SourceRefSchema,
} from "@isthmus/proto";
import type { PolicyAdminContext } from "../context.js";
import { expectedVersion, policyError, storeError } from "./errors.js";

/** At most this many connections per ExplainBatch (pairs and matrix together). */
export const MAX_EXPLAIN_BATCH = 10000;

/** Validates the next policy set, stores the change in one transaction, recompiles. */
export async function writePolicies(
  ctx: PolicyAdminContext,
  next: Map<string, ConnectionPolicy>,
  puts: ConnectionPolicy[],
  deletes: string[],
  expect: Map<string, number>,
): Promise<void> {
  try {
    validatePolicies([...next.values()]);
  } catch (err) {
    policyError(err);
  }
  if (puts.length === 0 && deletes.length === 0) return;
  try {
    await ctx.registry.writePolicies(puts, deletes, expect);
  } catch (err) {
    storeError(err, `policies ${[...puts.map((p) => p.name), ...deletes].join(", ")}`);
  }
  // The engine has them: the registry's change listener (registry-changes.ts) applied them.
  ctx.logger
    .child({ module: "admin" })
    .info("policies written", { put: puts.length, deleted: deletes.length });
}

/** The clusters, namespaces, services and service accounts the hub knows now. */
function knownObjects(ctx: PolicyAdminContext): KnownObjects {
  const namespaces = new Set<string>();
  const services = new Set<string>();
  const serviceAccounts = new Set<string>();
  for (const cat of ctx.catalogs.values()) {
    for (const s of cat.services.values()) {
      namespaces.add(s.namespace);
      services.add(s.name);
    }
    for (const i of cat.identities.values()) {
      namespaces.add(i.namespace);
      serviceAccounts.add(i.serviceAccount);
    }
  }
  const clusters = [...ctx.registry.clusters.values()].map((r) => ({
    id: r.cluster.id,
    labels: r.cluster.labels,
  }));
  // Before any agent reported a catalog (a new hub, or one restarted), names in the
  // catalog cannot be checked.
  return ctx.catalogs.size === 0
    ? { clusters }
    : { clusters, catalog: { namespaces, services, serviceAccounts } };
}

function pruneSelector(text: string): LabelSelector | undefined {
  if (text === "") return undefined;
  try {
    return parseLabelSelector(text);
  } catch (err) {
    policyError(err);
  }
}

/**
 * Applies a batch: policies equal to the stored ones are left alone (their version kept),
 * the others written, and with a prune selector the stored policies it selects that the
 * batch does not name deleted, all in one transaction.
 */
export async function applyPolicies(
  ctx: PolicyAdminContext,
  req: ApplyPoliciesRequest,
): Promise<ApplyPoliciesResponse> {
  const prune = pruneSelector(req.pruneSelector);
  // Every problem of every policy, one line each (the engine would stop at the first).
  const problems = req.policies.flatMap((p) =>
    policyViolations(p).map(
      (v) => `invalid policy ${JSON.stringify(p.name)}: ${formatPath(v.path)}: ${v.problem}`,
    ),
  );
  if (problems.length > 0) throw new GrpcError(Code.INVALID_ARGUMENT, problems.join("\n"));
  if (req.policies.length === 0 && prune === undefined)
    throw new GrpcError(Code.INVALID_ARGUMENT, "policies: at least one policy is required");
  const next = new Map(ctx.registry.policies);
  const expect = new Map<string, number>();
  const puts: ConnectionPolicy[] = [];
  const unchanged: string[] = [];
  const names = new Set<string>();
  for (const p of req.policies) {
    if (names.has(p.name))
      throw new GrpcError(Code.INVALID_ARGUMENT, `policy "${p.name}" appears twice in the batch`);
    names.add(p.name);
    const stored = ctx.registry.policies.get(p.name);
    const v = expectedVersion(p.resourceVersion, `policy "${p.name}"`);
    if (v !== undefined) {
      if (stored?.resourceVersion !== p.resourceVersion) {
        throw new GrpcError(
          Code.ABORTED,
          stored === undefined
            ? `policy "${p.name}": resource_version ${p.resourceVersion} given but the policy does not exist`
            : `policy "${p.name}": resource_version ${p.resourceVersion} is stale (stored ${stored.resourceVersion}); read it again and retry`,
        );
      }
      expect.set(p.name, v);
    }
    // Applying what is stored again changes nothing, not even the version (GitOps loops).
    if (
      stored !== undefined &&
      samePolicy(stored, { ...p, resourceVersion: stored.resourceVersion })
    ) {
      unchanged.push(p.name);
      continue;
    }
    puts.push(p);
    next.set(p.name, p);
  }
  const pruned =
    prune === undefined
      ? []
      : [...ctx.registry.policies.values()]
          .filter((p) => !names.has(p.name) && prune.matches(p.labels))
          .map((p) => p.name)
          .sort();
  for (const name of pruned) next.delete(name);
  let impact: ApplyPoliciesResponse["impact"];
  try {
    // Validates the next set too (every changed policy, unique names).
    impact = ctx.engine.impact([...next.values()]);
  } catch (err) {
    policyError(err);
  }
  // After validation: the selectors' globs compile.
  const warnings = selectorWarnings(req.policies, knownObjects(ctx));
  if (req.dryRun) {
    return create(ApplyPoliciesResponseSchema, {
      policies: req.policies,
      impact,
      pruned,
      warnings,
      unchanged,
    });
  }
  await writePolicies(ctx, next, puts, pruned, expect);
  return create(ApplyPoliciesResponseSchema, {
    policies: req.policies.map((p) => ctx.registry.policies.get(p.name)!),
    impact,
    pruned,
    warnings,
    unchanged,
  });
}

function globOrName(pattern: string): (name: string) => boolean {
  if (pattern === "" || pattern === "*") return () => true;
  if (!isGlob(pattern)) return (name) => name === pattern;
  try {
    const glob = compileGlob(pattern);
    return (name) => glob.test(name);
  } catch (err) {
    throw new GrpcError(
      Code.INVALID_ARGUMENT,
      `invalid glob ${JSON.stringify(pattern)}: ${err instanceof Error ? err.message : err}`,
    );
  }
}

/** Sources x destinations of the catalog that match the two selectors, in catalog order. */
function matrix(
  ctx: PolicyAdminContext,
  from: SourceRef,
  to: DestinationRef,
): { source: SourceRef; destination: DestinationRef }[] {
  const [fc, fns, fsa] = [from.clusterId, from.namespace, from.serviceAccount].map(globOrName);
  const [tc, tns, tsvc] = [to.clusterId, to.namespace, to.service].map(globOrName);
  const sources: SourceRef[] = [];
  const destinations = new Map<string, DestinationRef>();
  for (const id of [...ctx.catalogs.keys()].sort()) {
    const cat = ctx.catalogs.get(id)!;
    for (const i of cat.identities.values()) {
      if (fc!(id) && fns!(i.namespace) && fsa!(i.serviceAccount))
        sources.push(
          create(SourceRefSchema, {
            clusterId: id,
            namespace: i.namespace,
            serviceAccount: i.serviceAccount,
          }),
        );
    }
    for (const s of cat.services.values()) {
      if (!(tc!(id) && tns!(s.namespace) && tsvc!(s.name))) continue;
      // No cluster in the selector: each logical service once, whichever cluster backs it.
      const clusterId = to.clusterId === "" ? "" : id;
      destinations.set(
        `${clusterId}/${s.namespace}/${s.name}`,
        create(DestinationRefSchema, {
          clusterId,
          namespace: s.namespace,
          service: s.name,
          port: to.port,
        }),
      );
    }
  }
  const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  sources.sort((a, b) =>
    byKey(
      `${a.clusterId}/${a.namespace}/${a.serviceAccount}`,
      `${b.clusterId}/${b.namespace}/${b.serviceAccount}`,
    ),
  );
  const dests = [...destinations.entries()].sort(([a], [b]) => byKey(a, b)).map(([, d]) => d);
  const count = sources.length * dests.length;
  if (count > MAX_EXPLAIN_BATCH) {
    throw new GrpcError(
      Code.INVALID_ARGUMENT,
      `the selectors match ${sources.length} sources and ${dests.length} destinations (${count} connections), at most ${MAX_EXPLAIN_BATCH}: narrow them`,
    );
  }
  return sources.flatMap((source) => dests.map((destination) => ({ source, destination })));
}

/** Explains every given pair, then every connection of the matrix; one result each. */
export function explainBatch(
  ctx: PolicyAdminContext,
  req: ExplainBatchRequest,
): ExplainBatchResponse {
  if ((req.fromSelector === undefined) !== (req.toSelector === undefined))
    throw new GrpcError(Code.INVALID_ARGUMENT, "from_selector and to_selector go together");
  const pairs = req.pairs.map((p) => ({ source: p.source!, destination: p.destination! }));
  if (req.fromSelector !== undefined && req.toSelector !== undefined) {
    const m = matrix(ctx, req.fromSelector, req.toSelector);
    if (pairs.length + m.length > MAX_EXPLAIN_BATCH)
      throw new GrpcError(
        Code.INVALID_ARGUMENT,
        `${pairs.length + m.length} connections, at most ${MAX_EXPLAIN_BATCH}`,
      );
    pairs.push(...m);
  }
  const results: ExplainResult[] = pairs.map(({ source, destination }) => {
    try {
      const explanation = ctx.engine.explain(source, destination);
      return create(ExplainResultSchema, { source, destination, explanation });
    } catch (err) {
      if (!isPolicyError(err)) throw err;
      return create(ExplainResultSchema, { source, destination, error: err.message });
    }
  });
  return create(ExplainBatchResponseSchema, { results });
}
