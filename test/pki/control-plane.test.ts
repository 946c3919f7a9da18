import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import {
  type CertifiedKey,
  clusterIdFromCertificate,
  clusterIdFromX509,
  createAgentCsr,
  createHubCa,
  isPkiError,
  issueServerCertificate,
  signAgentCsr,
} from "@isthmus/pki";
import { cleanup, openssl, tempFolder } from "./fixtures.js";

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
}

function derToPem(label: string, der: Buffer): string {
  const body = der
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

describe("pki: control-plane certificates", () => {
  let hubCa: CertifiedKey;
  let otherCa: CertifiedKey;
  let server: CertifiedKey;

  before(async () => {
    [hubCa, otherCa] = await Promise.all([createHubCa(), createHubCa({ commonName: "Other CA" })]);
    server = await issueServerCertificate(hubCa, {
      dnsNames: ["localhost", "hub.example"],
      ipAddresses: ["127.0.0.1", "::1"],
    });
  });

  it("creates a hub CA (ECDSA P-256) and a server certificate with DNS and IP SANs", () => {
    const ca = new X509Certificate(hubCa.certPem);
    assert.equal(ca.ca, true);
    assert.equal(ca.publicKey.asymmetricKeyType, "ec");
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.ok(ca.checkPrivateKey(createPrivateKey(hubCa.keyPem)));
    const cert = new X509Certificate(server.certPem);
    assert.equal(cert.ca, false);
    assert.equal(
      cert.subjectAltName,
      "DNS:localhost, DNS:hub.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
    assert.ok(cert.checkIssued(ca));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(server.keyPem)));
  });

  it("signs an agent CSR into a 24h client certificate naming the cluster", async () => {
    const now = new Date("2026-03-01T12:00:00Z");
    const agent = await createAgentCsr("prod-eu");
    assert.match(agent.csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const dir = await tempFolder("agent-csr");
    try {
      await writeFile(join(dir, "agent.csr"), agent.csrPem);
      const checked = await openssl(["req", "-in", "agent.csr", "-noout", "-verify", "-text"], dir);
      assert.match(checked, /verify OK/);
      assert.match(checked, /URI:spiffe:\/\/isthmus\/cluster\/prod-eu/);
    } finally {
      await cleanup(dir);
    }
    const issued = await signAgentCsr(hubCa, agent.csrPem, { clusterId: "prod-eu", now });
    const cert = new X509Certificate(issued.certPem);
    const ca = new X509Certificate(hubCa.certPem);
    assert.equal(cert.subjectAltName, "URI:spiffe://isthmus/cluster/prod-eu");
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(ca));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(agent.keyPem)));
    assert.equal(issued.notAfter.toISOString(), "2026-03-02T12:00:00.000Z");
    assert.equal(issued.notBefore.toISOString(), "2026-03-01T11:55:00.000Z");
    assert.equal(clusterIdFromCertificate(issued.certPem), "prod-eu");
    assert.equal(clusterIdFromCertificate(cert.raw), "prod-eu");
  });

  it("takes the validity from the signer's options", async () => {
    const now = new Date("2026-03-01T12:00:00Z");
    const agent = await createAgentCsr("short");
    const issued = await signAgentCsr(hubCa, agent.csrPem, {
      clusterId: "short",
      validitySeconds: 3600,
      now,
    });
    assert.equal(issued.notAfter.toISOString(), "2026-03-01T13:00:00.000Z");
  });

  it("names the cluster it was told, whatever the CSR asked for", async () => {
    const agent = await createAgentCsr("someone-else");
    const issued = await signAgentCsr(hubCa, agent.csrPem, { clusterId: "prod-us" });
    const cert = new X509Certificate(issued.certPem);
    assert.equal(cert.subjectAltName, "URI:spiffe://isthmus/cluster/prod-us");
    assert.equal(cert.subject, "O=Isthmus Agents\nCN=prod-us");
    assert.equal(clusterIdFromCertificate(issued.certPem), "prod-us");
  });

  it("refuses a tampered CSR", async () => {
    const agent = await createAgentCsr("prod-eu");
    const der = pemToDer(agent.csrPem);
    const at = der.indexOf(Buffer.from("prod-eu"));
    assert.ok(at > 0);
    der[at] = "x".charCodeAt(0);
    await assert.rejects(
      signAgentCsr(hubCa, derToPem("CERTIFICATE REQUEST", der), { clusterId: "prod-eu" }),
      {
        name: "PkiError",
        code: "invalid-csr",
        message:
          "csr for cluster prod-eu: signature does not verify (the request was altered or not signed by the key it carries)",
      },
    );
  });

  it("refuses input that is not a CSR", async () => {
    await assert.rejects(signAgentCsr(hubCa, server.certPem, { clusterId: "prod-eu" }), {
      code: "invalid-csr",
      message:
        'csr for cluster prod-eu: not PEM (no "-----BEGIN CERTIFICATE REQUEST-----" block found)',
    });
    await assert.rejects(
      signAgentCsr(
        hubCa,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        {
          clusterId: "prod-eu",
        },
      ),
      { code: "invalid-csr", message: "csr for cluster prod-eu: request could not be parsed" },
    );
  });

  it("signs an openssl RSA 2048 CSR and refuses an RSA 1024 one", async () => {
    const dir = await tempFolder("csr");
    try {
      for (const bits of ["2048", "1024"]) {
        await openssl(
          [
            "req",
            "-new",
            "-newkey",
            `rsa:${bits}`,
            "-nodes",
            "-keyout",
            `k${bits}.pem`,
            "-subj",
            "/CN=x",
            "-out",
            `r${bits}.csr`,
          ],
          dir,
        );
      }
      const ok = await signAgentCsr(hubCa, await readFile(`${dir}/r2048.csr`, "utf8"), {
        clusterId: "rsa-cluster",
      });
      const cert = new X509Certificate(ok.certPem);
      assert.ok(cert.verify(new X509Certificate(hubCa.certPem).publicKey));
      assert.equal(clusterIdFromCertificate(ok.certPem), "rsa-cluster");
      await assert.rejects(
        signAgentCsr(hubCa, await readFile(`${dir}/r1024.csr`, "utf8"), {
          clusterId: "rsa-cluster",
        }),
        {
          code: "invalid-csr",
          message:
            "csr for cluster rsa-cluster: unsupported key RSA 1024; use ECDSA P-256 or RSA of at least 2048 bits",
        },
      );
    } finally {
      await cleanup(dir);
    }
  });

  it("reads the cluster id from Node's parse as the full parser does, or defers to it", async () => {
    const dir = await tempFolder("san-fast-path");
    try {
      const issued = await signAgentCsr(hubCa, (await createAgentCsr("x")).csrPem, {
        clusterId: "prod-eu",
      });
      assert.equal(clusterIdFromX509(new X509Certificate(issued.certPem)), "prod-eu");
      // Two cluster URIs: the full parser decides, and refuses.
      const sans = { two: "URI:spiffe://isthmus/cluster/a,URI:spiffe://isthmus/cluster/b" };
      for (const [name, san] of Object.entries(sans)) {
        await openssl(
          ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            .concat(["-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "1"])
            .concat(["-subj", "/CN=x", "-addext", `subjectAltName=${san}`]),
          dir,
        );
        const pem = await readFile(join(dir, `${name}.pem`), "utf8");
        const expected = (() => {
          try {
            return clusterIdFromCertificate(pem);
          } catch (reason) {
            return String(reason);
          }
        })();
        const got = (() => {
          try {
            return clusterIdFromX509(new X509Certificate(pem));
          } catch (reason) {
            return String(reason);
          }
        })();
        assert.equal(got, expected, name);
        assert.match(got, /found 2/, name);
      }
    } finally {
      await cleanup(dir);
    }
  });

  it("reads no cluster id from a certificate without one", () => {
    assert.throws(
      () => clusterIdFromCertificate(server.certPem),
      (reason: unknown) => {
        assert.ok(isPkiError(reason));
        assert.equal(reason.code, "invalid-identity");
        assert.equal(
          reason.message,
          "client certificate: expected one spiffe://isthmus/cluster/<id> uri in the subject alternative names, found 0",
        );
        return true;
      },
    );
  });

  describe("mutual TLS with node:tls", () => {
    let listening: ReturnType<typeof createServer>;
    let port: number;
    let accepted = 0;

    before(async () => {
      listening = createServer(
        {
          key: server.keyPem,
          cert: server.certPem,
          ca: hubCa.certPem,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: "TLSv1.3",
        },
        (socket: TLSSocket) => {
          accepted += 1;
          const id = clusterIdFromCertificate(socket.getPeerCertificate().raw);
          socket.end(`hello ${id}\n`);
        },
      );
      await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
      port = (listening.address() as AddressInfo).port;
    });

    after(async () => {
      await new Promise<void>((resolve) => listening.close(() => resolve()));
    });

    function exchange(client: CertifiedKey): Promise<string> {
      return new Promise((resolve, reject) => {
        const socket = connect({
          host: "127.0.0.1",
          port,
          servername: "localhost",
          ca: hubCa.certPem,
          key: client.keyPem,
          cert: client.certPem,
        });
        let received = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
          received += chunk;
        });
        socket.on("end", () => resolve(received));
        socket.on("error", reject);
      });
    }

    it("accepts a client certificate signed from the agent's CSR and reads its cluster", async () => {
      const agent = await createAgentCsr("prod-eu");
      const issued = await signAgentCsr(hubCa, agent.csrPem, { clusterId: "prod-eu" });
      const reply = await exchange({ keyPem: agent.keyPem, certPem: issued.certPem });
      assert.equal(reply, "hello prod-eu\n");
    });

    it("refuses a client certificate from another CA", async () => {
      const agent = await createAgentCsr("intruder");
      const issued = await signAgentCsr(otherCa, agent.csrPem, { clusterId: "intruder" });
      const served = accepted;
      const refused = once(listening, "tlsClientError");
      const outcome = await exchange({ keyPem: agent.keyPem, certPem: issued.certPem }).then(
        (reply) => reply,
        () => "",
      );
      const [error] = (await refused) as [Error];
      // The server failed the handshake: no secure connection, nothing sent to the intruder.
      assert.ok(error instanceof Error);
      assert.equal(accepted, served);
      assert.equal(outcome, "");
    });
  });
});
