// Where the certificates whose expiry the agent exports come from (cert-expiry.ts).
import type { CertificateSource } from "./cert-expiry.js";
import type { AgentIdentity, IdentityStore } from "./identity.js";
import type { KubeObject } from "./render/types.js";

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
 * Secret beside the CA key, which the agent is not allowed to read.
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
