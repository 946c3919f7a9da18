// Who may call: admins by bearer token (role viewer or admin), agents by the client
// certificate this hub issued them (not revoked, cluster still registered).
import { X509Certificate } from "node:crypto";
import { errorField } from "@isthmus/logging";
import { type CertifiedKey, clusterIdFromCertificate } from "@isthmus/pki";
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

export function createAuth(options: {
  config: HubConfig;
  registry: Registry;
  hubCa: CertifiedKey;
  now(): number;
}): HubAuth {
  const { config, registry, hubCa, now } = options;
  const adminDigests = config.adminTokens.map((t) => ({ ...t, hash: hashAdminToken(t.token) }));
  const caCert = new X509Certificate(hubCa.certPem);
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
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(raw);
      } catch (err) {
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          `unreadable client certificate: ${errorField(err)}`,
        );
      }
      if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate not issued by this hub");
      }
      const t = now();
      if (t < Date.parse(cert.validFrom) || t > Date.parse(cert.validTo)) {
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          `client certificate expired or not yet valid (valid ${cert.validFrom} to ${cert.validTo})`,
        );
      }
      let clusterId: string;
      try {
        clusterId = clusterIdFromCertificate(raw);
      } catch (err) {
        throw new GrpcError(Code.UNAUTHENTICATED, errorField(err));
      }
      const record = registry.clusters.get(clusterId);
      if (record === undefined)
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `cluster "${clusterId}" is not registered (deleted?)`,
        );
      if (!record.certSerials.includes(cert.serialNumber.toLowerCase())) {
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `client certificate of cluster "${clusterId}" was revoked`,
        );
      }
      return clusterId;
    },
  };
}
