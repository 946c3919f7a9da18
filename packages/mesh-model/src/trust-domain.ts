// Trust domains: which peers a server accepts (istiod's TrustDomainsForValidation,
// pilot/pkg/networking/plugin/authn/util.go) and how policy principals are expanded to the
// trust domain aliases (pilot/pkg/security/trustdomain/bundle.go; Trust Domain Migration task).
import type { ClusterView } from "./mesh.js";

/** Istio's placeholder for "the local trust domain" in policy principals. */
export const CLUSTER_LOCAL = "cluster.local";

export interface TrustDomainCheck {
  accepted: boolean;
  reason: string;
}

/**
 * Whether a server in `cluster` accepts a peer certificate of trust domain `peerTd` (the chain
 * being valid under the shared root). Istio's server side matches the peer's SPIFFE SAN against
 * the mesh trust domain, its `trustDomainAliases` and every `caCertificates[].trustDomains`
 * entry; istiod's PILOT_SKIP_VALIDATE_TRUST_DOMAIN=true turns the check off.
 */
export function validateTrustDomain(cluster: ClusterView, peerTd: string): TrustDomainCheck {
  const m = cluster.mesh;
  if (cluster.skipValidateTrustDomain)
    return {
      accepted: true,
      reason: `istiod of cluster ${cluster.id} skips trust domain validation`,
    };
  if (peerTd === m.trustDomain)
    return { accepted: true, reason: `${peerTd} is the local trust domain` };
  if (m.trustDomainAliases.includes(peerTd))
    return { accepted: true, reason: `${peerTd} is a trustDomainAlias of ${m.trustDomain}` };
  if (m.caTrustDomains.includes(peerTd))
    return { accepted: true, reason: `${peerTd} is listed in caCertificates[].trustDomains` };
  return {
    accepted: false,
    reason: `trust domain validation failed: peer trust domain ${peerTd} different from local trust domain ${m.trustDomain} (cluster ${cluster.id}: not an alias, not in caCertificates[].trustDomains)`,
  };
}

/** The trust domain of `td/ns/x/sa/y`; undefined for other shapes. */
function trustDomainOfPrincipal(principal: string): string | undefined {
  const parts = principal.split("/");
  return parts.length === 5 ? parts[0] : undefined;
}

function suffixPattern(pattern: string, value: string): boolean {
  return pattern.startsWith("*") && value.endsWith(pattern.slice(1));
}

function prefixPattern(pattern: string, value: string): boolean {
  return pattern.endsWith("*") && value.startsWith(pattern.slice(0, -1));
}

function inBundle(td: string, bundle: readonly string[]): boolean {
  return bundle.some(
    (s) =>
      s === td ||
      s === "*" ||
      prefixPattern(s, td) ||
      prefixPattern(td, s) ||
      suffixPattern(s, td) ||
      suffixPattern(td, s),
  );
}

/**
 * Policy principals as the sidecar enforces them: a `td/ns/x/sa/y` principal whose trust domain
 * is the local one, an alias, or `cluster.local` stands for the same path in every trust
 * domain of the bundle (local + aliases); others (`*`, prefixes like `td/*`, foreign trust
 * domains) stay as written.
 */
export function expandPrincipals(
  principals: readonly string[],
  bundle: readonly string[],
): string[] {
  const out: string[] = [];
  for (const p of principals) {
    const td = trustDomainOfPrincipal(p);
    if (td === undefined || td === "*" || !(inBundle(td, bundle) || td === CLUSTER_LOCAL)) {
      out.push(p);
      continue;
    }
    const rest = p.slice(td.length);
    for (const b of bundle) {
      // A principal trust domain `*x` already covers every bundle entry ending in x.
      const q = suffixPattern(td, b) ? p : `${b}${rest}`;
      if (!out.includes(q)) out.push(q);
    }
  }
  return out;
}

/** `<ns>` of `td/ns/<ns>/sa/<sa>` (Istio matches namespaces with a regex on the principal). */
export function namespaceOfPrincipal(principal: string): string | undefined {
  const m = /\/ns\/([^/]*)\//.exec(principal);
  return m?.[1];
}

/** The principal of a workload: `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export function principalOf(
  trustDomain: string,
  namespace: string,
  serviceAccount: string,
): string {
  return `${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}
