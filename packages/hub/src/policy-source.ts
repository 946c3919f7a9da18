// Policies forwarded from the policy source cluster (docs/policy-source.md). Only the cluster
// the hub's config names (policySource.cluster) may forward; its set is authoritative for the
// policies it owns: each report replaces them (new ones stored, missing ones deleted). A
// forwarded policy carries `source = <cluster>`; the admin API changes or deletes it only with
// force. A forwarded policy whose name a CLI-applied policy holds takes it over (Git wins).
// A report is all or nothing: one bad document refuses the whole report, nothing is stored.
import { equals } from "@bufbuild/protobuf";
import { isPolicyError, parsePolicyYaml, validatePolicies } from "@isthmus/policy";
import {
  Code,
  type ConnectionPolicy,
  ConnectionPolicySchema,
  GrpcError,
  type PolicySourceReport,
} from "@isthmus/proto";
import type { HubContext } from "./context.js";

/** What taking a report uses. */
type SourceContext = Pick<HubContext, "config" | "registry" | "engine" | "deliver">;

/** What a report did, or why it was refused. */
export type SourceOutcome =
  | { ok: true; put: string[]; deleted: string[]; takenOver: string[] }
  | { ok: false; reason: string };

/** The report's documents as policies owned by `clusterId`, or the first problem. */
function readReport(clusterId: string, report: PolicySourceReport): ConnectionPolicy[] | string {
  const out: ConnectionPolicy[] = [];
  const names = new Set<string>();
  for (let i = 0; i < report.documentsJson.length; i++) {
    const where = `policy_source_report.documents_json[${i}]`;
    let parsed: ConnectionPolicy[];
    try {
      // JSON is YAML: the same reader as `isthmus policy apply -f`, with its field paths.
      parsed = parsePolicyYaml(report.documentsJson[i]!, where);
    } catch (err) {
      return isPolicyError(err) ? err.message : `${where}: ${(err as Error).message}`;
    }
    if (parsed.length !== 1) return `${where}: expected one ConnectionPolicy`;
    const p = parsed[0]!;
    if (names.has(p.name)) return `${where}: policy "${p.name}" appears twice`;
    names.add(p.name);
    p.resourceVersion = "";
    p.source = clusterId;
    out.push(p);
  }
  return out;
}

const sameContent = (a: ConnectionPolicy, b: ConnectionPolicy) =>
  equals(ConnectionPolicySchema, { ...a, resourceVersion: "" }, { ...b, resourceVersion: "" });

/** Applies a PolicySourceReport from `clusterId`, if that cluster is the policy source. */
export async function acceptPolicySource(
  ctx: SourceContext,
  clusterId: string,
  report: PolicySourceReport,
): Promise<SourceOutcome> {
  const source = ctx.config.policySource.cluster;
  if (source !== clusterId)
    return {
      ok: false,
      reason:
        source === ""
          ? `ConnectionPolicy objects refused: the hub takes them from no cluster (policySource.cluster is not set)`
          : `ConnectionPolicy objects refused: the hub takes them only from cluster "${source}" (policySource.cluster)`,
    };
  const wanted = readReport(clusterId, report);
  if (typeof wanted === "string")
    return { ok: false, reason: `ConnectionPolicy objects refused: ${wanted}` };
  const stored = ctx.registry.policies;
  const next = new Map(stored);
  const put: ConnectionPolicy[] = [];
  const takenOver: string[] = [];
  const keep = new Set(wanted.map((p) => p.name));
  const deleted = [...stored.values()]
    .filter((p) => p.source === clusterId && !keep.has(p.name))
    .map((p) => p.name);
  for (const name of deleted) next.delete(name);
  for (const p of wanted) {
    const old = stored.get(p.name);
    if (old !== undefined && sameContent(old, p)) continue;
    if (old !== undefined && old.source !== clusterId) takenOver.push(p.name);
    put.push(p);
    next.set(p.name, p);
  }
  if (put.length === 0 && deleted.length === 0) return { ok: true, put: [], deleted, takenOver };
  try {
    validatePolicies([...next.values()]);
  } catch (err) {
    return { ok: false, reason: `ConnectionPolicy objects refused: ${(err as Error).message}` };
  }
  await ctx.registry.writePolicies(put, deleted, new Map());
  ctx.deliver(ctx.engine.setPolicies([...ctx.registry.policies.values()]));
  return { ok: true, put: put.map((p) => p.name), deleted, takenOver };
}

/** The policies of a batch that a source cluster owns (the admin API needs force for them). */
export function ownedBySource(
  ctx: Pick<HubContext, "registry">,
  names: readonly string[],
): ConnectionPolicy[] {
  return names.flatMap((n) => {
    const p = ctx.registry.policies.get(n);
    return p !== undefined && p.source !== "" ? [p] : [];
  });
}

/** A batch that would change or delete policies a source cluster owns, without force. */
export function refuseSourced(owned: readonly ConnectionPolicy[], what: "change" | "delete"): void {
  const first = owned[0];
  if (first === undefined) return;
  throw new GrpcError(
    Code.FAILED_PRECONDITION,
    `policy "${first.name}" comes from the ConnectionPolicy objects of cluster "${first.source}" (policy source); ${what} it there, or use --force (that cluster's next report restores it)` +
      (owned.length > 1 ? ` (and ${owned.length - 1} more)` : ""),
  );
}
