// What an agent reports, checked by meaning before any of it reaches the hub's catalog or the
// policy engine. The contract (protovalidate rules in catalog.proto) already holds every field
// to its Kubernetes syntax; here: the trust domain is the cluster's own, and a catalog update
// is consistent in itself. A refused message ends the stream with a status naming the field
// and value, and is counted in isthmus_hub_agent_reports_rejected_total{cluster,reason}.
import { type CatalogUpdate, Code, GrpcError } from "@isthmus/proto";
import type { ReportContext } from "./context.js";
import { isStoreError } from "./store.js";

export type RejectReason = "contract" | "trust-domain" | "catalog" | "engine";

/** Counts a refused agent message; returns the error to end the stream with. */
export function rejected(
  ctx: ReportContext,
  clusterId: string,
  reason: RejectReason,
  err: GrpcError,
): GrpcError {
  ctx.metrics.agentReportsRejected.inc({ cluster: clusterId, reason });
  return err;
}

/**
 * Accepts the trust domain an agent reports (`field`: where, for the error) when it is the
 * cluster's configured one or, without one, the one recorded since the agent enrolled; the
 * first report after enrolling is recorded. Principals are `<trustDomain>/ns/<ns>/sa/<sa>`:
 * another trust domain (or a wildcard) would let a cluster speak for identities not its own.
 */
export async function acceptTrustDomain(
  ctx: ReportContext,
  clusterId: string,
  reported: string,
  field: string,
): Promise<void> {
  const record = ctx.registry.clusters.get(clusterId);
  if (record === undefined)
    throw new GrpcError(Code.PERMISSION_DENIED, `cluster "${clusterId}" is not registered`);
  const configured = record.cluster.trustDomain;
  const own = configured !== "" ? configured : (record.trustDomain ?? "");
  if (own === reported) return;
  if (own !== "") {
    throw rejected(
      ctx,
      clusterId,
      "trust-domain",
      new GrpcError(
        Code.PERMISSION_DENIED,
        `${field}: ${JSON.stringify(reported)} is not the trust domain of cluster "${clusterId}" ` +
          `(${JSON.stringify(own)}, ${configured !== "" ? "configured at the hub" : "reported first after enrolling"})`,
      ),
    );
  }
  try {
    await ctx.registry.putCluster({ ...record, trustDomain: reported }, record.version);
  } catch (err) {
    if (!isStoreError(err)) throw err;
    // The record changed meanwhile (deleted, re-enrolled): the agent reconnects and retries.
    throw new GrpcError(
      Code.UNAVAILABLE,
      `cannot record the trust domain of cluster "${clusterId}" now; retry`,
    );
  }
  ctx.logger.info("trust domain recorded", { cluster: clusterId, trustDomain: reported });
}

const MAX_PROBLEMS = 5;

/**
 * What makes a catalog update inconsistent in itself (beyond the contract's field rules): the
 * same service or identity twice, a port number (per protocol) or port name twice in one
 * service, label sets that count more pods than their identity. The first problems, as
 * `field: problem`, or an empty list.
 */
export function catalogProblems(u: CatalogUpdate): string[] {
  const out: string[] = [];
  const services = new Map<string, number>();
  u.upsertedServices.forEach((s, i) => {
    const at = `catalog_update.upserted_services[${i}]`;
    const key = `${s.namespace}/${s.name}`;
    const first = services.get(key);
    if (first !== undefined) out.push(`${at}: service ${key} is also upserted_services[${first}]`);
    else services.set(key, i);
    const ports = new Map<string, number>();
    const names = new Map<string, number>();
    s.ports.forEach((p, j) => {
      const byNumber = `${p.port}/${p.protocol || "TCP"}`;
      const sameNumber = ports.get(byNumber);
      if (sameNumber !== undefined)
        out.push(`${at}.ports[${j}]: port ${byNumber} is also ports[${sameNumber}]`);
      else ports.set(byNumber, j);
      const sameName = p.name === "" ? undefined : names.get(p.name);
      if (sameName !== undefined)
        out.push(`${at}.ports[${j}]: name "${p.name}" is also ports[${sameName}]`);
      else if (p.name !== "") names.set(p.name, j);
    });
  });
  const identities = new Map<string, number>();
  u.upsertedIdentities.forEach((id, i) => {
    const at = `catalog_update.upserted_identities[${i}]`;
    const key = `${id.namespace}/${id.serviceAccount}`;
    const first = identities.get(key);
    if (first !== undefined)
      out.push(`${at}: identity ${key} is also upserted_identities[${first}]`);
    else identities.set(key, i);
    const counted = id.labelSets.reduce((sum, set) => sum + set.podCount, 0);
    if (counted > id.podCount)
      out.push(`${at}.pod_count: ${id.podCount}, but its label sets count ${counted} pods`);
  });
  return out.slice(0, MAX_PROBLEMS);
}
