// Test fixture: a CA with a server and a client certificate, made with the openssl CLI so that
// the gRPC glue is tested independently of @isthmus/pki.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TlsFixture {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  otherCaClientCertPem: string;
  otherCaClientKeyPem: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, [
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-subj",
    `/CN=${name}`,
    "-days",
    "2",
    "-out",
    `${name}.pem`,
  ]);
}

function issue(dir: string, ca: string, name: string, san: string): void {
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
  openssl(dir, [
    "req",
    "-new",
    "-key",
    `${name}.key`,
    "-subj",
    `/CN=${name}`,
    "-out",
    `${name}.csr`,
  ]);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  ]);
}

export function makeTlsFixture(): TlsFixture {
  const dir = mkdtempSync(join(tmpdir(), "isthmus-tls-"));
  try {
    makeCa(dir, "ca");
    makeCa(dir, "other-ca");
    issue(dir, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    issue(dir, "ca", "client", "URI:spiffe://isthmus/cluster/test");
    issue(dir, "other-ca", "intruder", "URI:spiffe://isthmus/cluster/test");
    const read = (f: string) => readFileSync(join(dir, f), "utf8");
    return {
      caPem: read("ca.pem"),
      serverCertPem: read("server.pem"),
      serverKeyPem: read("server.key"),
      clientCertPem: read("client.pem"),
      clientKeyPem: read("client.key"),
      otherCaClientCertPem: read("intruder.pem"),
      otherCaClientKeyPem: read("intruder.key"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
