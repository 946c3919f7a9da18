import { createPrivateKey, generateKeyPair, type KeyObject, webcrypto } from "node:crypto";
import { promisify } from "node:util";
import { PkiError } from "./errors.js";
import { encodePem, toArrayBuffer } from "./pem.js";

const generateKeyPairAsync = promisify(generateKeyPair);
const subtle = webcrypto.subtle;

export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** RSA sizes accepted for mesh root and CA keys. */
export const RSA_KEY_SIZES = [2048, 3072, 4096] as const;
export type RsaKeySize = (typeof RSA_KEY_SIZES)[number];

/** A key pair usable both by pkijs (WebCrypto keys) and by files (PKCS#8 PEM). */
export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** PKCS#8 `-----BEGIN PRIVATE KEY-----`. */
  privateKeyPem: string;
}

const RSA_ALGORITHM = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;

/**
 * Generates an RSA key pair with Node's native `crypto.generateKeyPair` (OpenSSL on the
 * libuv thread pool, so several keys are generated in parallel) and imports it into
 * WebCrypto for pkijs. bench/pki.ts compares it with `subtle.generateKey`.
 */
export async function generateRsaKeyPair(bits: number): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPairAsync("rsa", {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: "spki", format: "der" },
    privateKeyEncoding: { type: "pkcs8", format: "der" },
  });
  const pkcs8 = new Uint8Array(privateKey);
  const [signingKey, verifyingKey] = await Promise.all([
    subtle.importKey("pkcs8", toArrayBuffer(pkcs8), RSA_ALGORITHM, true, ["sign"]),
    subtle.importKey("spki", toArrayBuffer(new Uint8Array(publicKey)), RSA_ALGORITHM, true, [
      "verify",
    ]),
  ]);
  return {
    privateKey: signingKey,
    publicKey: verifyingKey,
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/** Generates an RSA key pair with `webcrypto.subtle.generateKey` (measured against the native one). */
export async function generateRsaKeyPairWebCrypto(bits: number): Promise<KeyPair> {
  const pair = (await subtle.generateKey(
    { ...RSA_ALGORITHM, modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/** Generates an ECDSA P-256 key pair (control-plane keys). */
export async function generateEcKeyPair(): Promise<KeyPair> {
  const pair = (await subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
  return {
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    privateKeyPem: encodePem("PRIVATE KEY", pkcs8),
  };
}

/** A private key read from PEM: Node's KeyObject plus the WebCrypto signing key. */
export interface LoadedPrivateKey {
  keyObject: KeyObject;
  signingKey: CryptoKey;
}

/**
 * Reads an unencrypted RSA or EC (P-256/P-384) private key in PKCS#1, SEC1 or PKCS#8 PEM.
 * `source` names the file in error messages.
 */
export async function loadPrivateKeyPem(pem: string, source: string): Promise<LoadedPrivateKey> {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new PkiError(`${source}: not PEM (no private key block found)`, "invalid-pem");
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new PkiError(
      `${source}: private key is encrypted; provide it unencrypted (istiod reads it as is)`,
      "invalid-key",
    );
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: pem, format: "pem" });
  } catch (reason) {
    throw new PkiError(`${source}: private key could not be parsed`, "invalid-key", {
      cause: reason,
    });
  }
  const pkcs8 = new Uint8Array(keyObject.export({ type: "pkcs8", format: "der" }));
  const type = keyObject.asymmetricKeyType;
  if (type === "rsa") {
    const signingKey = await subtle.importKey("pkcs8", toArrayBuffer(pkcs8), RSA_ALGORITHM, false, [
      "sign",
    ]);
    return { keyObject, signingKey };
  }
  if (type === "ec") {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === "prime256v1" ? "P-256" : curve === "secp384r1" ? "P-384" : null;
    if (namedCurve !== null) {
      const signingKey = await subtle.importKey(
        "pkcs8",
        toArrayBuffer(pkcs8),
        { name: "ECDSA", namedCurve },
        false,
        ["sign"],
      );
      return { keyObject, signingKey };
    }
  }
  throw new PkiError(
    `${source}: unsupported private key type ${type ?? "unknown"}${keyObject.asymmetricKeyDetails?.namedCurve ? ` (${keyObject.asymmetricKeyDetails.namedCurve})` : ""}; use RSA or EC P-256`,
    "invalid-key",
  );
}
