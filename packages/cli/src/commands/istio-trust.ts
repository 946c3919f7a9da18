import { stringify } from "yaml";

/**
 * The Istio settings that let clusters of different trust domains talk mTLS while every
 * AuthorizationPolicy principal keeps naming exactly one cluster (docs/enforcement.md):
 * each cluster keeps its own trust domain, and its mesh config trusts the shared root for
 * the trust domains of every Isthmus cluster (`caCertificates[].trustDomains`, which joins
 * Istio's server-side trust-domain validation without aliasing principals, as
 * `trustDomainAliases` would).
 */
export interface IstioTrustSettings {
  /** This cluster's trust domain (`meshConfig.trustDomain`). */
  trustDomain: string;
  /** Every Isthmus cluster's trust domain, this one included, sorted. */
  trustDomains: string[];
  /** The shared root certificate (PEM). */
  rootPem: string;
}

/** Trust domains as Istio accepts them: DNS names (SPIFFE trust domain syntax). */
const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9._]{0,251}[a-z0-9])?$/;

export function checkTrustDomain(td: string, what: string): string {
  if (!TRUST_DOMAIN.test(td)) {
    throw new Error(
      `${what}: invalid trust domain "${td}": expected lowercase letters, digits, '.', '-' and '_'`,
    );
  }
  return td;
}

/** The default trust domain of an Isthmus cluster: `<cluster id>.local`. */
export const defaultTrustDomain = (clusterId: string) => `${clusterId}.local`;

/**
 * Values for Istio's `istiod` Helm chart (the same `meshConfig` block goes under
 * `spec.meshConfig` of an IstioOperator for `istioctl install`).
 */
export function istiodValues(s: IstioTrustSettings): string {
  const values = {
    meshConfig: {
      trustDomain: s.trustDomain,
      caCertificates: [{ pem: s.rootPem, trustDomains: s.trustDomains }],
    },
  };
  return [
    "# Istio settings for Isthmus (docs/enforcement.md): this cluster keeps its own trust",
    "# domain; the shared root is trusted for every Isthmus cluster's trust domain, so that",
    "# cross-cluster mTLS passes Istio's trust-domain validation while AuthorizationPolicy",
    "# principals stay exact. Never use meshConfig.trustDomainAliases for this: it makes the",
    "# principals of aliased trust domains equivalent.",
    "# helm upgrade istiod istio/istiod -n istio-system --reuse-values -f <this file>",
    stringify(values, { lineWidth: 0 }),
  ].join("\n");
}

/** The trust domains to list: this cluster's and every cluster's known at the hub. */
export function trustDomainsOf(
  self: { id: string; trustDomain: string },
  clusters: readonly { id: string; trustDomain: string }[],
): string[] {
  const out = new Set([self.trustDomain]);
  for (const c of clusters) {
    if (c.id === self.id) continue;
    out.add(c.trustDomain === "" ? defaultTrustDomain(c.id) : c.trustDomain);
  }
  return [...out].sort();
}
