import { PkiError } from "./errors.js";

/** One `-----BEGIN <label>-----` block. */
export interface PemBlock {
  label: string;
  der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Encodes DER as PEM with 64-character lines and a final newline. */
export function encodePem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * Decodes every PEM block of `text` (text between blocks is ignored, as OpenSSL does).
 * `source` names the input in error messages.
 */
export function decodePem(text: string, source: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const label = match[1]!;
    const body = match[2]!
      .split(/\r?\n/)
      .filter((line) => line.length > 0 && !line.includes(":"))
      .join("");
    if (!BASE64.test(body) || body.length % 4 !== 0) {
      throw new PkiError(`${source}: PEM block "${label}" is not valid base64`, "invalid-pem");
    }
    blocks.push({ label, der: new Uint8Array(Buffer.from(body, "base64")) });
  }
  return blocks;
}

/** Copies a Uint8Array view into a standalone ArrayBuffer (what WebCrypto and asn1js take). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(copy).set(bytes);
  return copy;
}
