// Which reported conflicts concern one explained decision. The agents judge conflicts with
// the mesh model in their clusters (packages/agent/src/conflicts); the hub only picks, per
// backing cluster, those of the destination service and port whose kind goes against the
// decision and whose callers include the explained principal.
import { type Conflict, Decision, type ExplainRequest, type ExplainResponse } from "@isthmus/proto";
import type { ClusterCatalog } from "./context.js";

/** `td/ns/x/sa/y` against a reported caller, where `*` stands for a whole segment. */
export function principalMatches(pattern: string, principal: string): boolean {
  const want = pattern.split("/");
  const got = principal.split("/");
  return want.length === got.length && want.every((w, i) => w === "*" || w === got[i]);
}

/** Whether a conflict goes against a decision for a principal. */
export function concerns(c: Conflict, decision: Decision, principal: string): boolean {
  switch (c.kind) {
    case "widens-access":
      return decision === Decision.DENY && c.principals.some((p) => principalMatches(p, principal));
    case "breaks-allow":
      return (
        decision === Decision.ALLOW && c.principals.some((p) => principalMatches(p, principal))
      );
    case "permissive-mtls":
      // Plaintext callers pass where Isthmus denies: it weakens every DENY on that port.
      return decision === Decision.DENY;
    default:
      return false;
  }
}

/** The explain answer with each backend's conflicts filled in from its agent's last report. */
export function withConflicts(
  ex: ExplainResponse,
  req: Pick<ExplainRequest, "destination">,
  catalogs: ReadonlyMap<string, ClusterCatalog>,
): ExplainResponse {
  const dst = req.destination;
  if (dst === undefined) return ex;
  const service = `${dst.namespace}/${dst.service}`;
  for (const b of ex.backends) {
    const reported = catalogs.get(b.clusterId)?.conflicts ?? [];
    b.conflicts = reported.filter(
      (c) =>
        c.service === service &&
        (dst.port === 0 || c.ports.includes(dst.port)) &&
        concerns(c, b.decision, ex.principal),
    );
  }
  return ex;
}
