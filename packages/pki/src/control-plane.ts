import { createPublicKey, type KeyObject, type X509Certificate } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { assertClusterName, BACKDATE_MS } from "./ca-files.js";
import {
  createCertificate,
  cryptoEngine,
  type ParsedCertificate,
  parseCertificate,
  parseSingleCertificatePem,
  subjectAltUris,
} from "./certificate.js";
import { isPkiError, PkiError } from "./errors.js";
import { generateEcKeyPair, type LoadedPrivateKey, loadPrivateKeyPem } from "./keys.js";
import { decodePem, encodePem, toArrayBuffer } from "./pem.js";

/**
 * Control-plane PKI for hub <-> agent mTLS, separate from the mesh root. Keys are ECDSA
 * P-256: generated in about a millisecond (RSA 2048 takes ~100 ms), small handshakes, and
 * accepted by grpc-js/OpenSSL.
 */

/** URI SAN prefix naming a cluster in agent client certificates. */
export const CLUSTER_SPIFFE_PREFIX = "spiffe://isthmus/cluster/";

export const DEFAULT_HUB_CA_VALIDITY_DAYS = 5 * 365;
export const DEFAULT_SERVER_VALIDITY_DAYS = 365;
export const DEFAULT_CLIENT_VALIDITY_SECONDS = 24 * 60 * 60;

/** A certificate and its private key, both PEM. */
export interface CertifiedKey {
  certPem: string;
  keyPem: string;
}

export interface HubCaOptions {
  commonName?: string;
  organization?: string;
  validityDays?: number;
  now?: Date;
}

export interface ServerCertificateOptions {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  commonName?: string;
  validityDays?: number;
  now?: Date;
}

export interface AgentCsr {
  /** PKCS#8 private key; it stays with the agent. */
  keyPem: string;
  /** PKCS#10 request, `-----BEGIN CERTIFICATE REQUEST-----`. */
  csrPem: string;
}

export interface SignAgentCsrOptions {
  /** The cluster the hub enrolled; the certificate names it whatever the CSR asks for. */
  clusterId: string;
  /** Default 24 hours. */
  validitySeconds?: number;
  now?: Date;
}

export interface IssuedCertificate {
  certPem: string;
  serialNumber: string;
  fingerprint256: string;
  notBefore: Date;
  notAfter: Date;
}

/** `spiffe://isthmus/cluster/<id>` */
export function clusterSpiffeId(clusterId: string): string {
  assertClusterName(clusterId);
  return `${CLUSTER_SPIFFE_PREFIX}${clusterId}`;
}

/** Creates the hub's control-plane CA (self-signed, ECDSA P-256). */
export async function createHubCa(options: HubCaOptions = {}): Promise<CertifiedKey> {
  const now = options.now ?? new Date();
  const key = await generateEcKeyPair();
  const der = await createCertificate(
    {
      subject: {
        organization: options.organization ?? "Isthmus",
        commonName: options.commonName ?? "Isthmus Hub CA",
      },
      publicKey: key.publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: addDays(
        now,
        positive(options.validityDays ?? DEFAULT_HUB_CA_VALIDITY_DAYS, "hub ca validity days"),
      ),
      ca: { pathLength: 0 },
      keyUsage: ["digitalSignature", "keyCertSign", "cRLSign"],
    },
    { selfSigned: key.privateKey },
  );
  return { certPem: encodePem("CERTIFICATE", der), keyPem: key.privateKeyPem };
}

/** Issues the hub's TLS server certificate (DNS and IP SANs, serverAuth) from the hub CA. */
export async function issueServerCertificate(
  hubCa: CertifiedKey,
  options: ServerCertificateOptions,
): Promise<CertifiedKey> {
  const dnsNames = options.dnsNames ?? [];
  const ipAddresses = options.ipAddresses ?? [];
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw new PkiError(
      "server certificate: give at least one dns name or ip address",
      "invalid-option",
    );
  }
  const now = options.now ?? new Date();
  const ca = await loadHubCa(hubCa);
  const key = await generateEcKeyPair();
  const der = await createCertificate(
    {
      subject: {
        organization: "Isthmus",
        commonName: options.commonName ?? dnsNames[0] ?? ipAddresses[0]!,
      },
      publicKey: key.publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: capAt(
        addDays(
          now,
          positive(options.validityDays ?? DEFAULT_SERVER_VALIDITY_DAYS, "server validity days"),
        ),
        ca.certificate,
      ),
      keyUsage: ["digitalSignature"],
      extendedKeyUsage: ["serverAuth"],
      subjectAltNames: { dns: dnsNames, ip: ipAddresses },
    },
    { issuer: ca.certificate, signingKey: ca.key.signingKey },
  );
  return { certPem: encodePem("CERTIFICATE", der), keyPem: key.privateKeyPem };
}

/**
 * Agent side of enrollment: generates a P-256 key locally and a PKCS#10 request for
 * `clusterId` (the key never leaves the agent; only the CSR is sent).
 */
export async function createAgentCsr(clusterId: string): Promise<AgentCsr> {
  const uri = clusterSpiffeId(clusterId);
  const key = await generateEcKeyPair();
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  csr.subject.typesAndValues.push(
    new pkijs.AttributeTypeAndValue({
      type: "2.5.4.3",
      value: new asn1js.Utf8String({ value: clusterId }),
    }),
  );
  await csr.subjectPublicKeyInfo.importKey(key.publicKey, cryptoEngine);
  const altNames = new pkijs.GeneralNames({
    names: [new pkijs.GeneralName({ type: 6, value: uri })],
  });
  csr.attributes = [
    new pkijs.Attribute({
      type: "1.2.840.113549.1.9.14", // extensionRequest
      values: [
        new pkijs.Extensions({
          extensions: [
            new pkijs.Extension({
              extnID: "2.5.29.17",
              critical: false,
              extnValue: altNames.toSchema().toBER(false),
            }),
          ],
        }).toSchema(),
      ],
    }),
  ];
  await csr.sign(key.privateKey, "SHA-256", cryptoEngine);
  const der = new Uint8Array(csr.toSchema(true).toBER(false));
  return { keyPem: key.privateKeyPem, csrPem: encodePem("CERTIFICATE REQUEST", der) };
}

/**
 * Hub side of enrollment: verifies the CSR's signature and signs a short-lived client
 * certificate whose only SAN is `spiffe://isthmus/cluster/<clusterId>` (subject and SANs
 * the CSR asked for are ignored).
 */
export async function signAgentCsr(
  hubCa: CertifiedKey,
  csrPem: string,
  options: SignAgentCsrOptions,
): Promise<IssuedCertificate> {
  const uri = clusterSpiffeId(options.clusterId);
  const source = `csr for cluster ${options.clusterId}`;
  const csr = parseCsr(csrPem, source);
  let valid: boolean;
  try {
    valid = await csr.verify(cryptoEngine);
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new PkiError(
      `${source}: signature does not verify (the request was altered or not signed by the key it carries)`,
      "invalid-csr",
    );
  }
  const publicKey = csrPublicKey(csr, source);
  const now = options.now ?? new Date();
  const seconds = positive(
    options.validitySeconds ?? DEFAULT_CLIENT_VALIDITY_SECONDS,
    "client validity seconds",
  );
  const ca = await loadHubCa(hubCa);
  const der = await createCertificate(
    {
      subject: { organization: "Isthmus Agents", commonName: options.clusterId },
      publicKey: csr.subjectPublicKeyInfo,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: capAt(new Date(now.getTime() + seconds * 1000), ca.certificate),
      keyUsage:
        publicKey.asymmetricKeyType === "rsa"
          ? ["digitalSignature", "keyEncipherment"]
          : ["digitalSignature"],
      extendedKeyUsage: ["clientAuth"],
      subjectAltNames: { uri: [uri] },
    },
    { issuer: ca.certificate, signingKey: ca.key.signingKey },
  );
  const issued = parseCertificate(der, "client certificate");
  return {
    certPem: issued.pem,
    serialNumber: issued.serialNumber,
    fingerprint256: issued.fingerprint256,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
  };
}

/**
 * The cluster id named by an agent client certificate (PEM, or DER such as
 * `tlsSocket.getPeerCertificate().raw`). It reads the identity only: the TLS layer must
 * already have verified the certificate against the hub CA.
 */
/**
 * The cluster id of a client certificate Node has already parsed: read from Node's own
 * rendering of the subject alternative names when that is plain (no entry quoted or escaped;
 * cluster ids are DNS labels), else by clusterIdFromCertificate's full parser. The hub checks
 * every agent call this way; the full parser costs milliseconds.
 */
export function clusterIdFromX509(certificate: X509Certificate): string {
  const san = certificate.subjectAltName;
  if (san !== undefined && !/["\\]/.test(san)) {
    const ids = san
      .split(", ")
      .filter((entry) => entry.startsWith(`URI:${CLUSTER_SPIFFE_PREFIX}`))
      .map((entry) => entry.slice(`URI:${CLUSTER_SPIFFE_PREFIX}`.length));
    if (ids.length === 1 && isClusterName(ids[0]!)) return ids[0]!;
  }
  return clusterIdFromCertificate(new Uint8Array(certificate.raw));
}

function isClusterName(id: string): boolean {
  try {
    assertClusterName(id);
    return true;
  } catch {
    return false;
  }
}

export function clusterIdFromCertificate(certificate: string | Uint8Array): string {
  const source = "client certificate";
  const parsed =
    typeof certificate === "string"
      ? parseSingleCertificatePem(certificate, source)
      : parseCertificate(certificate, source);
  const ids = subjectAltUris(parsed)
    .filter((uri) => uri.startsWith(CLUSTER_SPIFFE_PREFIX))
    .map((uri) => uri.slice(CLUSTER_SPIFFE_PREFIX.length));
  if (ids.length !== 1) {
    throw new PkiError(
      `${source}: expected one ${CLUSTER_SPIFFE_PREFIX}<id> uri in the subject alternative names, found ${ids.length}`,
      "invalid-identity",
    );
  }
  const id = ids[0]!;
  try {
    assertClusterName(id);
  } catch (reason) {
    throw new PkiError(
      `${source}: ${isPkiError(reason) ? reason.message : String(reason)}`,
      "invalid-identity",
      {
        cause: reason,
      },
    );
  }
  return id;
}

interface LoadedHubCa {
  certificate: ParsedCertificate;
  key: LoadedPrivateKey;
}

async function loadHubCa(hubCa: CertifiedKey): Promise<LoadedHubCa> {
  const certificate = parseSingleCertificatePem(hubCa.certPem, "hub ca certificate");
  const key = await loadPrivateKeyPem(hubCa.keyPem, "hub ca key");
  if (!certificate.isCa || certificate.keyUsage?.has("keyCertSign") !== true) {
    throw new PkiError("hub ca certificate: not a CA certificate with keyCertSign", "not-ca");
  }
  if (!certificate.x509.checkPrivateKey(key.keyObject)) {
    throw new PkiError(
      "hub ca key: private key does not match the hub ca certificate",
      "key-mismatch",
    );
  }
  return { certificate, key };
}

function parseCsr(csrPem: string, source: string): pkijs.CertificationRequest {
  const block = decodePem(csrPem, source).find(
    (item) => item.label === "CERTIFICATE REQUEST" || item.label === "NEW CERTIFICATE REQUEST",
  );
  if (block === undefined) {
    throw new PkiError(
      `${source}: not PEM (no "-----BEGIN CERTIFICATE REQUEST-----" block found)`,
      "invalid-csr",
    );
  }
  try {
    return pkijs.CertificationRequest.fromBER(toArrayBuffer(block.der));
  } catch (reason) {
    throw new PkiError(`${source}: request could not be parsed`, "invalid-csr", { cause: reason });
  }
}

function csrPublicKey(csr: pkijs.CertificationRequest, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: Buffer.from(csr.subjectPublicKeyInfo.toSchema().toBER(false)),
      format: "der",
      type: "spki",
    });
  } catch (reason) {
    throw new PkiError(`${source}: public key could not be parsed`, "invalid-csr", {
      cause: reason,
    });
  }
  const details = key.asymmetricKeyDetails ?? {};
  const acceptable =
    (key.asymmetricKeyType === "ec" &&
      (details.namedCurve === "prime256v1" || details.namedCurve === "secp384r1")) ||
    (key.asymmetricKeyType === "rsa" && (details.modulusLength ?? 0) >= 2048);
  if (!acceptable) {
    const described =
      key.asymmetricKeyType === "rsa"
        ? `RSA ${details.modulusLength}`
        : `${key.asymmetricKeyType ?? "unknown"}${details.namedCurve ? ` ${details.namedCurve}` : ""}`;
    throw new PkiError(
      `${source}: unsupported key ${described}; use ECDSA P-256 or RSA of at least 2048 bits`,
      "invalid-csr",
    );
  }
  return key;
}

function addDays(date: Date, days: number): Date {
  return new Date(date.getTime() + days * 24 * 60 * 60 * 1000);
}

/** A certificate must not outlive its issuer. */
function capAt(notAfter: Date, issuer: ParsedCertificate): Date {
  return new Date(Math.min(notAfter.getTime(), issuer.notAfter.getTime()));
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new PkiError(`invalid ${name} ${value}: must be a positive number`, "invalid-option");
  }
  return value;
}
