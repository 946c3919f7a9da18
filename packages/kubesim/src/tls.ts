import type { KeyObject } from "node:crypto";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";

/** PEM material for an HTTPS simulator: a CA and a server certificate it signed. */
export interface ServingCertificate {
  caPem: string;
  certPem: string;
  keyPem: string;
}

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);

function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : tlv(0x18, Buffer.from(`${iso}Z`));
}

function name(cn: string): Buffer {
  return seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x0c, Buffer.from(cn)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

function keyId(spki: Buffer): Buffer {
  return createHash("sha1").update(spki).digest();
}

const ecdsaWithSha256 = seq(oid("1.2.840.10045.4.3.2"));

function certificate(opts: {
  subject: string;
  issuer: string;
  spki: Buffer;
  signer: KeyObject;
  issuerSpki: Buffer;
  ca: boolean;
  hosts: string[];
  now: Date;
}): Buffer {
  // A positive DER INTEGER in its minimal form: the first byte 0x01..0x7f (a zero first byte
  // before one below 0x80 is "illegal padding" to OpenSSL, 1 certificate in 256).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! % 0x7f) + 1;
  const exts: Buffer[] = [
    extension(
      "2.5.29.15",
      true,
      opts.ca ? tlv(0x03, Buffer.from([0x01, 0x86])) : tlv(0x03, Buffer.from([0x05, 0xa0])),
    ),
    extension("2.5.29.19", true, opts.ca ? seq(tlv(0x01, Buffer.from([0xff]))) : seq()),
    extension("2.5.29.14", false, tlv(0x04, keyId(opts.spki))),
  ];
  if (!opts.ca) {
    exts.push(
      extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))),
    );
    exts.push(extension("2.5.29.35", false, seq(tlv(0x80, keyId(opts.issuerSpki)))));
    const names = opts.hosts.map((h) => {
      const family = isIP(h);
      if (family === 4) return tlv(0x87, Buffer.from(h.split(".").map(Number)));
      if (family === 6) return tlv(0x87, ipv6Bytes(h));
      return tlv(0x82, Buffer.from(h));
    });
    exts.push(extension("2.5.29.17", false, seq(...names)));
  }
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    tlv(0x02, serial),
    ecdsaWithSha256,
    name(opts.issuer),
    seq(
      time(new Date(opts.now.getTime() - 3600_000)),
      time(new Date(opts.now.getTime() + 10 * 365 * 86400_000)),
    ),
    name(opts.subject),
    opts.spki,
    tlv(0xa3, seq(...exts)),
  );
  const signature = sign("sha256", tbs, opts.signer);
  return seq(tbs, ecdsaWithSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

function ipv6Bytes(ip: string): Buffer {
  const [head = "", tail = ""] = ip.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === "" ? [] : tail.split(":");
  const groups = ip.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

function pem(label: string, der: Buffer): string {
  const b64 = der
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Generates a throwaway CA (ECDSA P-256) and a server certificate for `hosts` (DNS names or
 * IP addresses), valid for ten years. Enough for kubectl (Go) and Node to verify the server.
 */
export function generateServingCertificate(
  hosts: string[] = ["127.0.0.1", "localhost"],
  now = new Date(),
): ServingCertificate {
  const ca = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const leaf = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const caSpki = ca.publicKey.export({ type: "spki", format: "der" });
  const leafSpki = leaf.publicKey.export({ type: "spki", format: "der" });
  const caDer = certificate({
    subject: "kubesim-ca",
    issuer: "kubesim-ca",
    spki: caSpki,
    signer: ca.privateKey,
    issuerSpki: caSpki,
    ca: true,
    hosts: [],
    now,
  });
  const leafDer = certificate({
    subject: "kubesim",
    issuer: "kubesim-ca",
    spki: leafSpki,
    signer: ca.privateKey,
    issuerSpki: caSpki,
    ca: false,
    hosts,
    now,
  });
  return {
    caPem: pem("CERTIFICATE", caDer),
    certPem: pem("CERTIFICATE", leafDer),
    keyPem: leaf.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  };
}
