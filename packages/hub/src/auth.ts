// Who may call: admins by bearer token (role viewer or admin), agents by the client
// certificate this hub issued them (not revoked, cluster still registered).
import { createHash, X509Certificate } from "node:crypto";
import { errorField } from "@isthmus/logging";
import { type CertifiedKey, clusterIdFromX509 } from "@isthmus/pki";
import { type CallContext, Code, GrpcError } from "@isthmus/proto";
import type { HubConfig, Role } from "./config.js";
import type { HubContext } from "./context.js";
import { hashToken as hashAdminToken, type Registry, tokenMatches } from "./registry.js";

function bearer(ctx: CallContext): string | undefined {
  const value = ctx.metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(value);
  return m?.[1];
}

export interface HubAuth extends Pick<HubContext, "authorizeAdmin" | "verifyAgent"> {
  /** The admin token that `token` is, if any. */
  adminToken(token: string): { name: string; role: Role } | undefined;
}

interface IssuedFacts {
  clusterId: string;
  /** Lowercase hex, as the registry keeps them. */
  serial: string;
  validFrom: number;
  validTo: number;
}

const ISSUED_CACHE_SIZE = 10_000;

/** Checks that `raw` was issued by `caCert` and reads its cluster, serial and validity. */
function readIssued(raw: Buffer, caCert: X509Certificate): IssuedFacts {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(raw);
  } catch (err) {
    throw new GrpcError(Code.UNAUTHENTICATED, `unreadable client certificate: ${errorField(err)}`);
  }
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
    throw new GrpcError(Code.UNAUTHENTICATED, "client certificate not issued by this hub");
  }
  let clusterId: string;
  try {
    clusterId = clusterIdFromX509(cert);
  } catch (err) {
    throw new GrpcError(Code.UNAUTHENTICATED, errorField(err));
  }
  return {
    clusterId,
    serial: cert.serialNumber.toLowerCase(),
    validFrom: Date.parse(cert.validFrom),
    validTo: Date.parse(cert.validTo),
  };
}

export function createAuth(options: {
  config: HubConfig;
  registry: Registry;
  hubCa: CertifiedKey;
  now(): number;
}): HubAuth {
  const { config, registry, hubCa, now } = options;
  const adminDigests = config.adminTokens.map((t) => ({ ...t, hash: hashAdminToken(t.token) }));
  const caCert = new X509Certificate(hubCa.certPem);
  // What a certificate this hub issued says, by its DER bytes: parsing and checking it costs
  // milliseconds (its SAN is read with a full X.509 parser), and each agent presents the same
  // one on every call and every reconnection, 200 at once after a failover. Bounded: the
  // oldest entry goes first. Only certificates that pass are kept.
  const issued = new Map<string, IssuedFacts>();
  const issuedFacts = (raw: Buffer): IssuedFacts => {
    const key = createHash("sha256").update(raw).digest("base64");
    const known = issued.get(key);
    if (known !== undefined) return known;
    const facts = readIssued(raw, caCert);
    if (issued.size >= ISSUED_CACHE_SIZE) issued.delete(issued.keys().next().value!);
    issued.set(key, facts);
    return facts;
  };
  return {
    adminToken: (token) => adminDigests.find((t) => tokenMatches(token, t.hash)),
    authorizeAdmin(call, role) {
      const token = bearer(call);
      if (token === undefined)
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          "missing bearer token (metadata authorization: Bearer <token>)",
        );
      const match = adminDigests.find((t) => tokenMatches(token, t.hash));
      if (match === undefined) throw new GrpcError(Code.UNAUTHENTICATED, "unknown bearer token");
      if (role === "admin" && match.role !== "admin") {
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `token "${match.name}" has role viewer; this call needs admin`,
        );
      }
    },
    verifyAgent(call) {
      if (config.insecure)
        throw new GrpcError(
          Code.FAILED_PRECONDITION,
          "the hub runs without TLS (insecure); agents need TLS",
        );
      const raw = call.peerCertificate?.raw;
      if (raw === undefined || raw.length === 0)
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate required: enroll first");
      const { clusterId, serial, validFrom, validTo } = issuedFacts(raw);
      const t = now();
      if (t < validFrom || t > validTo) {
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          `client certificate expired or not yet valid (valid ${new Date(validFrom).toISOString()} to ${new Date(validTo).toISOString()})`,
        );
      }
      const record = registry.clusters.get(clusterId);
      if (record === undefined)
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `cluster "${clusterId}" is not registered (deleted?)`,
        );
      if (!record.certSerials.includes(serial)) {
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `client certificate of cluster "${clusterId}" was revoked`,
        );
      }
      return clusterId;
    },
  };
}
