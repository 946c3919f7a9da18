// What an agent finds in its cluster beside the catalog, each kind of report handled here
// for agent-session.ts: conflicts with foreign policies (docs/conflicts.md), its objects
// asked for by `isthmus verify` (object-requests.ts) and the policy source's ConnectionPolicy
// objects (policy-source.ts). Each is untrusted input, checked before it is kept.
import type { Logger } from "@isthmus/logging";
import {
  Code,
  type ConflictReport,
  GrpcError,
  type ObjectsReport,
  type PolicySourceReport,
} from "@isthmus/proto";
import { conflictProblems, rejected } from "./agent-reports.js";
import type { ClusterCatalog, SessionContext } from "./context.js";
import { acceptPolicySource } from "./policy-source.js";

interface Stream {
  clusterId: string;
  log: Logger;
}

/** Replaces the cluster's conflicts; a report that contradicts itself ends the stream. */
export function onConflictReport(
  ctx: SessionContext,
  s: Stream,
  cat: ClusterCatalog,
  r: ConflictReport,
): void {
  const problems = conflictProblems(r);
  if (problems.length > 0)
    throw rejected(
      ctx,
      s.clusterId,
      "conflicts",
      new GrpcError(Code.INVALID_ARGUMENT, `conflict report refused: ${problems.join("; ")}`),
    );
  cat.lastSeen = ctx.now();
  cat.conflicts = r.conflicts;
}

/** Hands the objects to the waiting request; a refused report fails the request only. */
export function onObjectsReport(
  ctx: SessionContext,
  s: Stream,
  cat: ClusterCatalog,
  r: ObjectsReport,
): void {
  cat.lastSeen = ctx.now();
  const problem = ctx.objectRequests.answered(s.clusterId, r);
  if (problem !== undefined) {
    ctx.metrics.agentReportsRejected.inc({ cluster: s.clusterId, reason: "objects" });
    s.log.warn("objects report refused", { problem });
  }
}

/** Stores the policy source's policies, or records why not (shown in status). */
export async function onPolicySourceReport(
  ctx: SessionContext,
  s: Stream,
  cat: ClusterCatalog,
  r: PolicySourceReport,
): Promise<void> {
  cat.lastSeen = ctx.now();
  const outcome = await acceptPolicySource(ctx, s.clusterId, r);
  if (outcome.ok) {
    cat.policySourceRefusal = "";
    if (outcome.put.length + outcome.deleted.length > 0)
      s.log.info("policies from the policy source", outcome);
    return;
  }
  cat.policySourceRefusal = outcome.reason;
  ctx.metrics.agentReportsRejected.inc({ cluster: s.clusterId, reason: "policy-source" });
  s.log.warn("policy source report refused", { reason: outcome.reason });
}
