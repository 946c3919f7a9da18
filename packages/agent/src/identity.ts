import type { KubeClient } from "./kube/client.js";
import { SECRETS } from "./kube/resources.js";
import type { KubeObject } from "./kube-object.js";

export const IDENTITY_SECRET = "isthmus-agent-identity";

/** The agent's hub credentials: its key (generated here, never sent) and certificate. */
export interface AgentIdentity {
  keyPem: string;
  certChainPem: string;
  /** The hub's control-plane CA, to verify the hub. */
  caPem: string;
  notAfter: Date;
  /** When the certificate was issued (received); renewal is due after 2/3 of the lifetime. */
  issuedAt: Date;
}

export interface IdentityStore {
  load(): Promise<AgentIdentity | undefined>;
  save(identity: AgentIdentity): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) =>
  s === undefined ? undefined : Buffer.from(s, "base64").toString("utf8");

/**
 * Keeps the identity in a Secret (`isthmus-agent-identity` in the agent's namespace) so that
 * a restarted agent does not need a new bootstrap token.
 */
export function createSecretIdentityStore(
  client: KubeClient,
  namespace: string,
  name = IDENTITY_SECRET,
): IdentityStore {
  return {
    async load() {
      const secret = await client.get(SECRETS, name, namespace);
      if (secret === undefined) return undefined;
      const data = (secret.data ?? {}) as Record<string, string>;
      const keyPem = unb64(data["tls.key"]);
      const certChainPem = unb64(data["tls.crt"]);
      const caPem = unb64(data["ca.crt"]);
      const notAfter = unb64(data["not-after"]);
      const issuedAt = unb64(data["issued-at"]);
      if (
        keyPem === undefined ||
        certChainPem === undefined ||
        caPem === undefined ||
        notAfter === undefined
      ) {
        return undefined;
      }
      return {
        keyPem,
        certChainPem,
        caPem,
        notAfter: new Date(notAfter),
        issuedAt: new Date(issuedAt ?? notAfter),
      };
    },
    // get, then create or update: the chart grants exactly these verbs on this one Secret
    // (a create cannot be restricted by name, a patch is not needed).
    async save(identity) {
      const secret: KubeObject = {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace, labels: { "app.kubernetes.io/managed-by": "isthmus" } },
        type: "Opaque",
        data: {
          "tls.key": b64(identity.keyPem),
          "tls.crt": b64(identity.certChainPem),
          "ca.crt": b64(identity.caPem),
          "not-after": b64(identity.notAfter.toISOString()),
          "issued-at": b64(identity.issuedAt.toISOString()),
        },
      };
      const existing = await client.get(SECRETS, name, namespace);
      if (existing === undefined) {
        await client.create(SECRETS, secret);
        return;
      }
      const metadata = {
        ...existing.metadata,
        labels: { ...existing.metadata.labels, ...secret.metadata.labels },
      };
      await client.replace(SECRETS, {
        ...existing,
        metadata,
        type: existing.type ?? "Opaque",
        data: secret.data,
      });
    },
  };
}

/** An identity store in memory (tests, or an agent run without a cluster namespace). */
export function createMemoryIdentityStore(initial?: AgentIdentity): IdentityStore {
  let current = initial;
  return {
    load: async () => current,
    save: async (identity) => {
      current = identity;
    },
  };
}

/** When renewal is due: after two thirds of the certificate's lifetime. */
export function renewalDue(identity: AgentIdentity): Date {
  const lifetime = identity.notAfter.getTime() - identity.issuedAt.getTime();
  return new Date(identity.issuedAt.getTime() + Math.max(0, (lifetime * 2) / 3));
}
