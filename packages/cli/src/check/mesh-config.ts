// Reading what Istio reads: certificates in PEM, the mesh config (`mesh` key of the `istio`
// ConfigMap), istiod's environment. Every value comes from a cluster and is checked for its
// type before use; a problem names the object and the field.
import { X509Certificate } from "node:crypto";
import type { KubeObject } from "@isthmus/agent";
import { parse } from "yaml";

/** Istio's trust domain when the mesh config sets none. */
export const ISTIO_DEFAULT_TRUST_DOMAIN = "cluster.local";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM text; throws (naming nothing: the caller knows the source). */
export function pemCertificates(text: string): X509Certificate[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error("no PEM certificate in it");
  return blocks.map((b) => new X509Certificate(b));
}

/** Whether the PEM text holds `root` ("invalid: …" when it is not PEM certificates). */
export function holdsRoot(
  text: string,
  root: X509Certificate,
): "yes" | "no" | `invalid: ${string}` {
  try {
    return pemCertificates(text).some((c) => c.raw.equals(root.raw)) ? "yes" : "no";
  } catch (err) {
    return `invalid: ${(err as Error).message.toLowerCase()}`;
  }
}

/** A short fingerprint for messages: the first 8 bytes of SHA-256. */
export const shortFingerprint = (c: X509Certificate): string =>
  `sha256 ${c.fingerprint256.slice(0, 23)}…`;

export interface TrustedRoot {
  pem: string;
  trustDomains: string[];
}

export interface MeshSettings {
  trustDomain: string;
  trustDomainAliases: string[];
  caCertificates: TrustedRoot[];
  /** Where mesh-wide policies live (`rootNamespace`, default the Istio namespace). */
  rootNamespace: string | undefined;
  /** `meshNetworks`: the registry service names given as network gateways. */
  gatewayServiceNames: string[];
}

function stringList(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    throw new Error(`${field}: expected a list of strings`);
  return value as string[];
}

function caCertificatesOf(value: unknown): TrustedRoot[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error("caCertificates: expected a list");
  return value.map((entry, i) => {
    if (typeof entry !== "object" || entry === null)
      throw new Error(`caCertificates[${i}]: expected a mapping`);
    const { pem, trustDomains } = entry as { pem?: unknown; trustDomains?: unknown };
    if (pem !== undefined && typeof pem !== "string")
      throw new Error(`caCertificates[${i}].pem: expected a string`);
    return {
      pem: pem ?? "",
      trustDomains: stringList(trustDomains, `caCertificates[${i}].trustDomains`),
    };
  });
}

function gatewayServiceNamesOf(text: string | undefined): string[] {
  if (text === undefined) return [];
  const doc = parse(text) as { networks?: Record<string, { gateways?: unknown }> } | null;
  const names: string[] = [];
  for (const network of Object.values(doc?.networks ?? {})) {
    const gateways = Array.isArray(network?.gateways) ? network.gateways : [];
    for (const g of gateways as { registryServiceName?: unknown }[])
      if (typeof g?.registryServiceName === "string") names.push(g.registryServiceName);
  }
  return names;
}

/**
 * The settings of the mesh ConfigMap that the checks need; throws with the key and field when
 * it is not what Istio would accept. A missing ConfigMap gives Istio's defaults.
 */
export function meshSettingsOf(configMap: KubeObject | undefined): MeshSettings {
  const data = (configMap?.data ?? {}) as Record<string, unknown>;
  let mesh: Record<string, unknown> = {};
  if (data.mesh !== undefined) {
    let doc: unknown;
    try {
      doc = parse(String(data.mesh));
    } catch (err) {
      throw new Error(`key mesh: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    if (doc !== null && (typeof doc !== "object" || Array.isArray(doc)))
      throw new Error("key mesh: expected a mapping");
    mesh = (doc ?? {}) as Record<string, unknown>;
  }
  const td = mesh.trustDomain;
  if (td !== undefined && td !== null && typeof td !== "string")
    throw new Error("key mesh: trustDomain: expected a string");
  const rootNamespace = mesh.rootNamespace;
  if (rootNamespace !== undefined && rootNamespace !== null && typeof rootNamespace !== "string")
    throw new Error("key mesh: rootNamespace: expected a string");
  let gatewayServiceNames: string[];
  try {
    gatewayServiceNames = gatewayServiceNamesOf(
      data.meshNetworks === undefined ? undefined : String(data.meshNetworks),
    );
  } catch (err) {
    throw new Error(`key meshNetworks: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  try {
    return {
      trustDomain: typeof td === "string" && td !== "" ? td : ISTIO_DEFAULT_TRUST_DOMAIN,
      trustDomainAliases: stringList(mesh.trustDomainAliases, "trustDomainAliases"),
      caCertificates: caCertificatesOf(mesh.caCertificates),
      rootNamespace:
        typeof rootNamespace === "string" && rootNamespace !== "" ? rootNamespace : undefined,
      gatewayServiceNames,
    };
  } catch (err) {
    throw new Error(`key mesh: ${(err as Error).message}`);
  }
}

/** Values Go's strconv.ParseBool reads as true, as istiod reads its boolean env vars. */
const GO_TRUE = new Set(["1", "t", "T", "true", "TRUE", "True"]);

/**
 * Whether every istiod pod runs with the env var set to true; "some" when only some do (a
 * rollout in progress), undefined when no istiod pod is seen.
 */
export function istiodFlag(
  pods: readonly KubeObject[],
  name: string,
): "all" | "some" | "none" | undefined {
  if (pods.length === 0) return undefined;
  const set = pods.filter((pod) => {
    const containers = ((pod.spec?.containers ?? []) as { env?: unknown }[]).filter(Boolean);
    return containers.some((c) =>
      (Array.isArray(c.env) ? (c.env as { name?: unknown; value?: unknown }[]) : []).some(
        (e) => e?.name === name && typeof e.value === "string" && GO_TRUE.has(e.value),
      ),
    );
  }).length;
  return set === pods.length ? "all" : set === 0 ? "none" : "some";
}
