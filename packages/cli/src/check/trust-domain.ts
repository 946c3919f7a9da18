// 5. The trust-domain setting Isthmus requires (docs/enforcement.md): each cluster keeps its
// own trust domain, and its mesh config trusts the shared root for the trust domains of
// every Isthmus cluster (`meshConfig.caCertificates[].trustDomains`). istiod's
// PILOT_SKIP_VALIDATE_TRUST_DOMAIN=true also lets mTLS pass (accepted, not recommended);
// `trustDomainAliases` naming another Isthmus cluster's trust domain is refused: it makes
// principals of different clusters equivalent.
import { type CheckContext, type CheckResult, fail, names, ok, valueOr } from "./checks.js";
import { holdsRoot, istiodFlag, type MeshSettings, meshSettingsOf } from "./mesh-config.js";
import { type ClusterSnapshot, MESH_CONFIG_MAP } from "./snapshot.js";

const NAME = "trust-domain";
export const SKIP_VALIDATION_ENV = "PILOT_SKIP_VALIDATE_TRUST_DOMAIN";

/** An Isthmus cluster's trust domain and where it was learnt. */
export interface KnownTrustDomain {
  clusterId: string;
  trustDomain: string;
  /** "cluster": read in this run; "hub": reported by the cluster's agent to the hub;
   * "assumed": registered at the hub, not reported yet: `<id>.local`, what install sets. */
  source: "cluster" | "hub" | "assumed";
}

/** The trust domains the shared root is trusted for (entries holding another pem don't count). */
function trustedFor(settings: MeshSettings, c: CheckContext): Set<string> {
  const out = new Set<string>();
  for (const entry of settings.caCertificates)
    if (holdsRoot(entry.pem, c.root) === "yes") for (const td of entry.trustDomains) out.add(td);
  return out;
}

const describe = (k: KnownTrustDomain) =>
  `${k.trustDomain} (${k.clusterId}${k.source === "assumed" ? ", assumed: not reported to the hub yet" : ""})`;

/** The istiod Helm values that fix it, on one line. */
function caCertificatesFix(own: string, all: readonly KnownTrustDomain[], c: CheckContext) {
  const tds = [...new Set([own, ...all.map((k) => k.trustDomain)])].sort();
  return (
    `set meshConfig.caCertificates: [{pem: <${c.certsDir}/root-cert.pem>, trustDomains: [${tds.join(", ")}]}] ` +
    "in istiod's Helm values (isthmus install writes them) and helm upgrade istiod"
  );
}

export function checkTrustDomain(
  s: ClusterSnapshot,
  c: CheckContext,
  known: readonly KnownTrustDomain[],
): CheckResult {
  const what = `ConfigMap ${s.istioNamespace}/${MESH_CONFIG_MAP}`;
  const read = valueOr(s.meshConfig, NAME, what);
  if ("result" in read) return read.result;
  if (read.value === undefined)
    return fail(
      NAME,
      `${what} not found: is istiod installed?`,
      "install istiod with the trust settings isthmus install writes (istio-<cluster>.yaml)",
    );
  let settings: MeshSettings;
  try {
    settings = meshSettingsOf(read.value);
  } catch (err) {
    return fail(NAME, `${what}: ${(err as Error).message}`, `correct ${what} (istiod reads it)`);
  }
  const own = settings.trustDomain;
  const others = known.filter((k) => k.clusterId !== c.clusterId);
  const ownKnown = others.filter((k) => k.trustDomain === own);
  const distinctOthers = others.filter((k) => k.trustDomain !== own);

  const aliased = distinctOthers.filter((k) => settings.trustDomainAliases.includes(k.trustDomain));
  if (aliased.length > 0)
    return fail(
      NAME,
      `${what}: trustDomainAliases lists ${names(aliased.map(describe))}: principals of those clusters become equivalent to this one's`,
      `remove them from meshConfig.trustDomainAliases and ${caCertificatesFix(own, others, c)}`,
    );

  const trusted = trustedFor(settings, c);
  const missing = distinctOthers.filter((k) => !trusted.has(k.trustDomain));
  const pods = "value" in s.istiodPods ? s.istiodPods.value : [];
  const skip = istiodFlag(pods, SKIP_VALIDATION_ENV) === "all";
  if (missing.length > 0 && !skip)
    return fail(
      NAME,
      `${what}: meshConfig.caCertificates does not trust the shared root for ${names(missing.map(describe))}: mTLS from there fails trust-domain validation`,
      caCertificatesFix(own, others, c),
    );
  if (skip)
    return {
      name: NAME,
      status: "warn",
      message: `istiod runs with ${SKIP_VALIDATION_ENV}=true: it accepts peers of any trust domain under the root (not recommended)`,
      fix: `${caCertificatesFix(own, others, c)}, and drop ${SKIP_VALIDATION_ENV}`,
    };
  if (ownKnown.length > 0)
    return {
      name: NAME,
      status: "warn",
      message: `trust domain ${own} is also that of ${names(ownKnown.map((k) => k.clusterId))}: principals cannot tell these clusters apart`,
      fix: `give each cluster its own meshConfig.trustDomain (isthmus install sets <cluster>.local), and ${caCertificatesFix(own, others, c)}`,
    };
  return ok(
    NAME,
    distinctOthers.length === 0
      ? `trust domain ${own}; no other Isthmus cluster to trust`
      : `trust domain ${own}; the shared root is trusted for ${names(distinctOthers.map((k) => k.trustDomain))}`,
  );
}
