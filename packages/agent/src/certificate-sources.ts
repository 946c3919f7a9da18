// Where the certificates whose expiry the agent exports come from (cert-expiry.ts).
import { errorField } from "@isthmus/logging";
import type { CertificateSource, UnreadableSource } from "./cert-expiry.js";
import type { AgentIdentity, IdentityStore } from "./identity.js";
import type { KubeClient } from "./kube/client.js";
import { SECRETS } from "./kube/resources.js";
import type { KubeObject } from "./kube-object.js";

/** The ConfigMap istiod writes into every namespace with the mesh's root certificate(s). */
export const MESH_ROOT_CONFIG_MAP = "istio-ca-root-cert";

/** An identity store that remembers the identity it last loaded or saved. */
export function observedIdentity(
  store: IdentityStore,
): IdentityStore & { current(): AgentIdentity | undefined } {
  let current: AgentIdentity | undefined;
  return {
    current: () => current,
    async load() {
      const identity = await store.load();
      if (identity !== undefined) current = identity;
      return identity;
    },
    async save(identity) {
      await store.save(identity);
      current = identity;
    },
  };
}

/** The agent's client certificate chain and the hub CA it trusts. */
export function identitySources(identity: AgentIdentity | undefined): CertificateSource[] {
  if (identity === undefined) return [];
  return [
    { certificate: "client", pem: identity.certChainPem, source: "agent identity tls.crt" },
    { certificate: "hub-ca", pem: identity.caPem, source: "agent identity ca.crt" },
  ];
}

/**
 * The mesh roots of `istio-ca-root-cert` (its `root-cert.pem`; several during a root
 * rotation). Intermediates are not there: Istio keeps its CA certificate in the `cacerts`
 * Secret beside the CA key (meshCaSources, opt-in).
 */
export function meshRootSources(
  configMap: KubeObject | undefined,
  istioNamespace: string,
): CertificateSource[] {
  const pem = (configMap?.data as Record<string, unknown> | undefined)?.["root-cert.pem"];
  if (typeof pem !== "string") return [];
  return [
    {
      certificate: "mesh-root",
      pem,
      source: `ConfigMap ${istioNamespace}/${MESH_ROOT_CONFIG_MAP} root-cert.pem`,
    },
  ];
}

/**
 * The intermediates (and root) of Istio's plug-in CA Secret, read when the agent is given its
 * name (`--mesh-ca-secret`; the chart then grants `get` on that Secret alone). The Secret also
 * holds the CA's private key: only its certificates are kept, and only by this read. Keys:
 * `ca-cert.pem`, `cert-chain.pem`, `root-cert.pem`, or the TLS form `tls.crt`, `ca.crt`.
 */
export async function meshCaSources(
  client: KubeClient,
  istioNamespace: string,
  name: string,
): Promise<(CertificateSource | UnreadableSource)[]> {
  let secret: KubeObject | undefined;
  try {
    secret = await client.get(SECRETS, name, istioNamespace);
  } catch (err) {
    return [{ certificate: "mesh-intermediate", error: errorField(err) }];
  }
  const where = (key: string) => `Secret ${istioNamespace}/${name} ${key}`.trimEnd();
  if (secret === undefined)
    return [{ certificate: "mesh-intermediate", error: `${where("")}: not found` }];
  const data = (secret.data ?? {}) as Record<string, unknown>;
  const pem = (key: string) =>
    typeof data[key] === "string" ? Buffer.from(data[key], "base64").toString("utf8") : undefined;
  const out: CertificateSource[] = [];
  for (const key of ["ca-cert.pem", "tls.crt", "cert-chain.pem"]) {
    const text = pem(key);
    if (text !== undefined)
      out.push({
        certificate: "mesh-intermediate",
        pem: text,
        source: where(key),
        issuedOnly: true,
      });
  }
  for (const key of ["root-cert.pem", "ca.crt"]) {
    const text = pem(key);
    if (text !== undefined) out.push({ certificate: "mesh-root", pem: text, source: where(key) });
  }
  return out;
}
