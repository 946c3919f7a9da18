import { createHash, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { PkiError } from "./errors.js";
import type { CryptoKey } from "./keys.js";
import { decodePem, encodePem, toArrayBuffer } from "./pem.js";

/** pkijs engine bound to Node's WebCrypto, passed explicitly (no global `setEngine`). */
export const cryptoEngine = new pkijs.CryptoEngine({
  name: "isthmus-node",
  crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]["crypto"],
});

const OID = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  locality: "2.5.4.7",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

/** Key usage bits in RFC 5280 order (bit 0 first). */
const KEY_USAGE_BITS = [
  "digitalSignature",
  "nonRepudiation",
  "keyEncipherment",
  "dataEncipherment",
  "keyAgreement",
  "keyCertSign",
  "cRLSign",
  "encipherOnly",
  "decipherOnly",
] as const;
export type KeyUsage = (typeof KEY_USAGE_BITS)[number];

export interface NameSpec {
  organization?: string;
  commonName: string;
}

export interface SubjectAltNames {
  dns?: readonly string[];
  ip?: readonly string[];
  uri?: readonly string[];
}

export interface CertificateTemplate {
  subject: NameSpec;
  /** A WebCrypto key, or the SubjectPublicKeyInfo taken as is from a CSR. */
  publicKey: CryptoKey | pkijs.PublicKeyInfo;
  notBefore: Date;
  notAfter: Date;
  /** Present for a CA certificate; `pathLength` undefined means unlimited. */
  ca?: { pathLength?: number };
  keyUsage: readonly KeyUsage[];
  extendedKeyUsage?: readonly ("serverAuth" | "clientAuth")[];
  subjectAltNames?: SubjectAltNames;
}

/** Who signs: a CA certificate and its key, or the subject's own key (self-signed root). */
export type Signer =
  | { issuer: ParsedCertificate; signingKey: CryptoKey }
  | { selfSigned: CryptoKey };

/** Builds and signs an X.509 v3 certificate with pkijs; returns its DER. */
export async function createCertificate(
  template: CertificateTemplate,
  signer: Signer,
): Promise<Uint8Array> {
  const certificate = new pkijs.Certificate();
  certificate.version = 2;
  certificate.serialNumber = new asn1js.Integer({ valueHex: toArrayBuffer(randomSerial()) });
  certificate.subject = distinguishedName(template.subject);
  if ("selfSigned" in signer) {
    certificate.issuer = distinguishedName(template.subject);
  } else {
    certificate.issuer = signer.issuer.pkijs.subject;
  }
  certificate.notBefore = certificateTime(template.notBefore);
  certificate.notAfter = certificateTime(template.notAfter);
  if (template.publicKey instanceof pkijs.PublicKeyInfo) {
    certificate.subjectPublicKeyInfo = template.publicKey;
  } else {
    await certificate.subjectPublicKeyInfo.importKey(template.publicKey, cryptoEngine);
  }

  const subjectKeyId = keyIdentifier(certificate.subjectPublicKeyInfo);
  const extensions: pkijs.Extension[] = [];
  const basicConstraints = new pkijs.BasicConstraints(
    template.ca === undefined
      ? { cA: false }
      : template.ca.pathLength === undefined
        ? { cA: true }
        : { cA: true, pathLenConstraint: template.ca.pathLength },
  );
  extensions.push(extension(OID.basicConstraints, true, basicConstraints.toSchema()));
  extensions.push(extension(OID.keyUsage, true, keyUsageBitString(template.keyUsage)));
  if (template.extendedKeyUsage !== undefined && template.extendedKeyUsage.length > 0) {
    const purposes = template.extendedKeyUsage.map((usage) => OID[usage]);
    extensions.push(
      extension(
        OID.extKeyUsage,
        false,
        new pkijs.ExtKeyUsage({ keyPurposes: purposes }).toSchema(),
      ),
    );
  }
  extensions.push(
    extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: subjectKeyId })),
  );
  const authorityKeyId =
    "selfSigned" in signer ? subjectKeyId : keyIdentifier(signer.issuer.pkijs.subjectPublicKeyInfo);
  extensions.push(
    extension(
      OID.authorityKeyIdentifier,
      false,
      new pkijs.AuthorityKeyIdentifier({
        keyIdentifier: new asn1js.OctetString({ valueHex: authorityKeyId }),
      }).toSchema(),
    ),
  );
  const altNames = generalNames(template.subjectAltNames);
  if (altNames.length > 0) {
    extensions.push(
      extension(OID.subjectAltName, false, new pkijs.GeneralNames({ names: altNames }).toSchema()),
    );
  }
  certificate.extensions = extensions;

  const signingKey = "selfSigned" in signer ? signer.selfSigned : signer.signingKey;
  await certificate.sign(signingKey, "SHA-256", cryptoEngine);
  return new Uint8Array(certificate.toSchema(true).toBER(false));
}

/** A certificate parsed twice: by pkijs (names, extensions) and by Node (verify, key match, fingerprint). */
export interface ParsedCertificate {
  der: Uint8Array;
  pem: string;
  pkijs: pkijs.Certificate;
  x509: X509Certificate;
  /** `O=Isthmus, CN=Isthmus Root CA` */
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  /** null when the certificate has no key usage extension. */
  keyUsage: ReadonlySet<KeyUsage> | null;
  /** SHA-256 fingerprint, colon-separated upper-case hex (as OpenSSL prints it). */
  fingerprint256: string;
  serialNumber: string;
}

/** Parses one DER certificate; `source` names it in error messages. */
export function parseCertificate(der: Uint8Array, source: string): ParsedCertificate {
  let parsed: pkijs.Certificate;
  let x509: X509Certificate;
  try {
    parsed = pkijs.Certificate.fromBER(toArrayBuffer(der));
    x509 = new X509Certificate(der);
  } catch (reason) {
    throw new PkiError(`${source}: certificate could not be parsed`, "invalid-certificate", {
      cause: reason,
    });
  }
  return {
    der,
    pem: encodePem("CERTIFICATE", der),
    pkijs: parsed,
    x509,
    subject: x509.subject.split("\n").join(", "),
    issuer: x509.issuer.split("\n").join(", "),
    notBefore: parsed.notBefore.value,
    notAfter: parsed.notAfter.value,
    isCa: readBasicConstraints(parsed),
    keyUsage: readKeyUsage(parsed),
    fingerprint256: x509.fingerprint256,
    serialNumber: x509.serialNumber,
  };
}

/** Every `CERTIFICATE` block of a PEM text, parsed; throws when there is none. */
export function parseCertificatesPem(text: string, source: string): ParsedCertificate[] {
  const blocks = decodePem(text, source).filter((block) => block.label === "CERTIFICATE");
  if (blocks.length === 0) {
    throw new PkiError(
      `${source}: not PEM (no "-----BEGIN CERTIFICATE-----" block found)`,
      "invalid-pem",
    );
  }
  return blocks.map((block, index) =>
    parseCertificate(
      block.der,
      blocks.length === 1 ? source : `${source} (certificate ${index + 1})`,
    ),
  );
}

/** Exactly one certificate from a PEM text. */
export function parseSingleCertificatePem(text: string, source: string): ParsedCertificate {
  const certificates = parseCertificatesPem(text, source);
  if (certificates.length !== 1) {
    throw new PkiError(
      `${source}: holds ${certificates.length} certificates; expected exactly one`,
      "invalid-certificate",
    );
  }
  return certificates[0]!;
}

/** True when `child` names `parent` as issuer and its signature verifies with the parent's key. */
export function isIssuedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  return child.pkijs.issuer.isEqual(parent.pkijs.subject) && verifiesWith(child, parent);
}

/** True when `child`'s signature verifies with `parent`'s public key (names not compared). */
export function verifiesWith(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  try {
    return child.x509.verify(parent.x509.publicKey);
  } catch {
    return false;
  }
}

/** The URIs of the subject alternative name extension. */
export function subjectAltUris(certificate: ParsedCertificate): string[] {
  const extension = certificate.pkijs.extensions?.find((ext) => ext.extnID === OID.subjectAltName);
  if (extension === undefined) {
    return [];
  }
  const decoded = asn1js.fromBER(extension.extnValue.valueBlock.valueHexView);
  if (decoded.offset === -1) {
    return [];
  }
  const names = new pkijs.GeneralNames({ schema: decoded.result });
  return names.names.filter((name) => name.type === 6).map((name) => String(name.value));
}

/**
 * One attribute per RDN (`O=…, CN=…`). pkijs would put all attributes into one multi-valued
 * RDN (`O=… + CN=…`), so the Name is encoded here and handed to pkijs as a decoded schema.
 */
function distinguishedName(name: NameSpec): pkijs.RelativeDistinguishedNames {
  const attributes: [string, string][] = [];
  if (name.organization !== undefined && name.organization.length > 0) {
    attributes.push([OID.organization, name.organization]);
  }
  attributes.push([OID.commonName, name.commonName]);
  const sequence = new asn1js.Sequence({
    value: attributes.map(
      ([type, value]) =>
        new asn1js.Set({
          value: [
            new pkijs.AttributeTypeAndValue({
              type,
              value: new asn1js.Utf8String({ value }),
            }).toSchema(),
          ],
        }),
    ),
  });
  const decoded = asn1js.fromBER(sequence.toBER(false));
  return new pkijs.RelativeDistinguishedNames({ schema: decoded.result });
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050; whole seconds. */
function certificateTime(date: Date): pkijs.Time {
  const value = new Date(Math.floor(date.getTime() / 1000) * 1000);
  return new pkijs.Time({ type: value.getUTCFullYear() < 2050 ? 0 : 1, value });
}

function randomSerial(): Uint8Array {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40; // positive, 16 bytes, no leading zero
  return bytes;
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(info: pkijs.PublicKeyInfo): ArrayBuffer {
  const digest = createHash("sha1").update(info.subjectPublicKey.valueBlock.valueHexView).digest();
  return toArrayBuffer(digest);
}

function extension(id: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID: id, critical, extnValue: value.toBER(false) });
}

/** DER BIT STRING with the unused trailing bits counted, as DER requires. */
function keyUsageBitString(usages: readonly KeyUsage[]): asn1js.BitString {
  let bits = 0;
  for (const usage of usages) {
    bits |= 1 << KEY_USAGE_BITS.indexOf(usage);
  }
  const highest = 31 - Math.clz32(bits);
  const byteCount = Math.floor(highest / 8) + 1;
  const bytes = new Uint8Array(byteCount);
  for (let bit = 0; bit <= highest; bit += 1) {
    if ((bits & (1 << bit)) !== 0) {
      bytes[bit >> 3]! |= 0x80 >> (bit & 7);
    }
  }
  const unusedBits = byteCount * 8 - 1 - highest;
  return new asn1js.BitString({ valueHex: toArrayBuffer(bytes), unusedBits });
}

function generalNames(names: SubjectAltNames | undefined): pkijs.GeneralName[] {
  if (names === undefined) {
    return [];
  }
  const result: pkijs.GeneralName[] = [];
  for (const dns of names.dns ?? []) {
    result.push(new pkijs.GeneralName({ type: 2, value: dns }));
  }
  for (const ip of names.ip ?? []) {
    result.push(
      new pkijs.GeneralName({
        type: 7,
        value: new asn1js.OctetString({ valueHex: toArrayBuffer(ipBytes(ip)) }),
      }),
    );
  }
  for (const uri of names.uri ?? []) {
    result.push(new pkijs.GeneralName({ type: 6, value: uri }));
  }
  return result;
}

function ipBytes(ip: string): Uint8Array {
  const family = isIP(ip);
  if (family === 4) {
    return new Uint8Array(ip.split(".").map(Number));
  }
  if (family === 6) {
    const [head = "", tail] = ip.split("::");
    const groups = (part: string) => (part.length === 0 ? [] : part.split(":"));
    const left = groups(head);
    const right = tail === undefined ? [] : groups(tail);
    const fill = new Array<string>(8 - left.length - right.length).fill("0");
    const all = tail === undefined ? left : [...left, ...fill, ...right];
    const bytes = new Uint8Array(16);
    all.forEach((group, index) => {
      const value = Number.parseInt(group, 16);
      bytes[index * 2] = value >> 8;
      bytes[index * 2 + 1] = value & 0xff;
    });
    return bytes;
  }
  throw new PkiError(`invalid ip address "${ip}" for a subject alternative name`, "invalid-option");
}

function readBasicConstraints(certificate: pkijs.Certificate): boolean {
  const ext = certificate.extensions?.find((item) => item.extnID === OID.basicConstraints);
  if (ext === undefined) {
    return false;
  }
  const decoded = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (decoded.offset === -1) {
    return false;
  }
  try {
    return new pkijs.BasicConstraints({ schema: decoded.result }).cA === true;
  } catch {
    return false;
  }
}

function readKeyUsage(certificate: pkijs.Certificate): ReadonlySet<KeyUsage> | null {
  const ext = certificate.extensions?.find((item) => item.extnID === OID.keyUsage);
  if (ext === undefined) {
    return null;
  }
  const decoded = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (decoded.offset === -1 || !(decoded.result instanceof asn1js.BitString)) {
    return new Set();
  }
  const bytes = decoded.result.valueBlock.valueHexView;
  const usages = new Set<KeyUsage>();
  KEY_USAGE_BITS.forEach((usage, bit) => {
    const byte = bytes[bit >> 3];
    if (byte !== undefined && (byte & (0x80 >> (bit & 7))) !== 0) {
      usages.add(usage);
    }
  });
  return usages;
}
