import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CACERTS_SECRET_FILES,
  ensureClusterCa,
  ensureMeshCa,
  isPkiError,
  PLUGIN_CA_FILES,
  renderCacertsSecret,
  validateMeshCa,
} from "@isthmus/pki";
import { cleanup, openssl, snapshot, tempFolder } from "./fixtures.js";

const small = { rootKeySize: 2048, caKeySize: 2048 } as const;

async function x509(path: string): Promise<X509Certificate> {
  return new X509Certificate(await readFile(path));
}

describe("pki: mesh root of trust", () => {
  let parent: string;
  let folder: string;

  before(async () => {
    parent = await tempFolder("mesh");
    folder = join(parent, "certs");
    const result = await ensureMeshCa(folder, small);
    assert.equal(result.status, "created");
  });

  after(async () => {
    await cleanup(parent);
  });

  it("writes the five plug-in CA files, keys 0600, in a new 0700 folder", async () => {
    assert.equal((await stat(folder)).mode & 0o777, 0o700);
    for (const name of PLUGIN_CA_FILES) {
      const mode = (await stat(join(folder, name))).mode & 0o777;
      assert.equal(mode, name.endsWith("-key.pem") ? 0o600 : 0o644, name);
    }
    const snap = await snapshot(folder);
    assert.deepEqual(Object.keys(snap).sort(), [...PLUGIN_CA_FILES].sort());
  });

  it("builds a chain that openssl verifies", async () => {
    const output = await openssl(["verify", "-CAfile", "root-cert.pem", "ca-cert.pem"], folder);
    assert.equal(output.trim(), "ca-cert.pem: OK");
    const chain = await openssl(
      ["verify", "-CAfile", "root-cert.pem", "-untrusted", "cert-chain.pem", "cert-chain.pem"],
      folder,
    );
    assert.equal(chain.trim(), "cert-chain.pem: OK");
  });

  it("builds a chain that Node's X509Certificate verifies, keys matching", async () => {
    const root = await x509(join(folder, "root-cert.pem"));
    const ca = await x509(join(folder, "ca-cert.pem"));
    assert.equal(root.ca, true);
    assert.equal(ca.ca, true);
    assert.ok(root.checkIssued(root));
    assert.ok(root.verify(root.publicKey));
    assert.ok(ca.checkIssued(root));
    assert.ok(ca.verify(root.publicKey));
    assert.equal(ca.verify(ca.publicKey), false);
    assert.ok(root.checkPrivateKey(createPrivateKey(await readFile(join(folder, "root-key.pem")))));
    assert.ok(ca.checkPrivateKey(createPrivateKey(await readFile(join(folder, "ca-key.pem")))));
    assert.equal(root.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    const chain = await readFile(join(folder, "cert-chain.pem"), "utf8");
    assert.equal(chain, ca.toString() + root.toString());
  });

  it("marks the root and the CA as CAs with keyCertSign and cRLSign", async () => {
    const root = await openssl(["x509", "-in", "root-cert.pem", "-noout", "-text"], folder);
    assert.match(root, /Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    assert.match(root, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(root, /Subject: O ?= ?Isthmus, CN ?= ?Isthmus Root CA/);
    const ca = await openssl(["x509", "-in", "ca-cert.pem", "-noout", "-text"], folder);
    assert.match(ca, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(ca, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    assert.match(ca, /Issuer: O ?= ?Isthmus, CN ?= ?Isthmus Root CA/);
  });

  it("reuses a complete folder without changing a byte or a timestamp", async () => {
    const before = await snapshot(folder);
    const first = await validateMeshCa(folder);
    const again = await ensureMeshCa(folder, small);
    assert.equal(again.status, "reused");
    assert.deepEqual(again.root, first.root);
    assert.deepEqual(again.ca, first.ca);
    const root = await x509(join(folder, "root-cert.pem"));
    assert.equal(again.root.fingerprint256, root.fingerprint256);
    assert.deepEqual(await snapshot(folder), before);
  });

  it("issues per-cluster CAs from the same root, sharing a byte-identical root-cert.pem", async () => {
    const east = await ensureClusterCa(folder, "east", small);
    const west = await ensureClusterCa(folder, "west", small);
    assert.equal(east.status, "created");
    assert.equal(west.status, "created");
    assert.equal(east.root.fingerprint256, west.root.fingerprint256);
    const topRoot = await readFile(join(folder, "root-cert.pem"));
    for (const cluster of ["east", "west"]) {
      const dir = join(folder, "clusters", cluster);
      assert.ok(topRoot.equals(await readFile(join(dir, "root-cert.pem"))), cluster);
      const verified = await openssl([
        "verify",
        "-CAfile",
        join(folder, "root-cert.pem"),
        join(dir, "ca-cert.pem"),
      ]);
      assert.equal(verified.trim(), `${join(dir, "ca-cert.pem")}: OK`);
      const ca = await x509(join(dir, "ca-cert.pem"));
      assert.equal(ca.subject, `O=Isthmus\nCN=Isthmus Intermediate CA ${cluster}`);
      assert.ok(ca.checkPrivateKey(createPrivateKey(await readFile(join(dir, "ca-key.pem")))));
      const chain = await readFile(join(dir, "cert-chain.pem"), "utf8");
      assert.equal(chain, ca.toString() + topRoot.toString("utf8"));
      assert.equal((await stat(join(dir, "ca-key.pem"))).mode & 0o777, 0o600);
      const names = Object.keys(await snapshot(dir)).sort();
      assert.deepEqual(names, ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]);
    }
    assert.notEqual(east.ca.fingerprint256, west.ca.fingerprint256);
  });

  it("lets workload certificates signed by two clusters' CAs verify against the one root", async () => {
    await ensureClusterCa(folder, "east", small);
    await ensureClusterCa(folder, "west", small);
    const work = await tempFolder("workload");
    try {
      await writeFile(
        join(work, "leaf.cnf"),
        "[leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nsubjectAltName = URI:spiffe://cluster.local/ns/default/sa/app\n",
      );
      for (const cluster of ["east", "west"]) {
        const dir = join(folder, "clusters", cluster);
        // What istiod does with the plug-in CA: sign a workload certificate with ca-key.pem.
        await openssl(
          [
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            `${cluster}.key`,
            "-subj",
            "/O=app",
            "-out",
            `${cluster}.csr`,
          ],
          work,
        );
        await openssl(
          [
            "x509",
            "-req",
            "-in",
            `${cluster}.csr`,
            "-CA",
            join(dir, "ca-cert.pem"),
            "-CAkey",
            join(dir, "ca-key.pem"),
            "-set_serial",
            "9",
            "-days",
            "1",
            "-extfile",
            "leaf.cnf",
            "-extensions",
            "leaf",
            "-out",
            `${cluster}.pem`,
          ],
          work,
        );
        // A peer in any cluster trusts only the shared root and gets the chain from the workload.
        const verified = await openssl(
          [
            "verify",
            "-CAfile",
            join(folder, "root-cert.pem"),
            "-untrusted",
            join(dir, "cert-chain.pem"),
            `${cluster}.pem`,
          ],
          work,
        );
        assert.equal(verified.trim(), `${cluster}.pem: OK`);
      }
    } finally {
      await cleanup(work);
    }
  });

  it("reuses a per-cluster CA that is present and valid", async () => {
    await ensureClusterCa(folder, "reuse-me", small);
    const before = await snapshot(folder);
    const again = await ensureClusterCa(folder, "reuse-me", small);
    assert.equal(again.status, "reused");
    assert.deepEqual(await snapshot(folder), before);
  });

  it("renders the cacerts Secret from the folder and from a cluster subfolder", async () => {
    const secret = await renderCacertsSecret(folder);
    assert.equal(secret.kind, "Secret");
    assert.equal(secret.type, "Opaque");
    assert.equal(secret.metadata.name, "cacerts");
    assert.equal(secret.metadata.namespace, "istio-system");
    assert.deepEqual(Object.keys(secret.data).sort(), [...CACERTS_SECRET_FILES].sort());
    for (const name of CACERTS_SECRET_FILES) {
      const bytes = await readFile(join(folder, name));
      assert.ok(Buffer.from(secret.data[name], "base64").equals(bytes), name);
    }
    const root = await x509(join(folder, "root-cert.pem"));
    assert.equal(
      secret.metadata.annotations["isthmus.io/root-sha256"],
      root.fingerprint256.replaceAll(":", "").toLowerCase(),
    );

    await ensureClusterCa(folder, "east", small);
    const east = await renderCacertsSecret(folder, { cluster: "east" });
    const eastCa = await readFile(join(folder, "clusters", "east", "ca-cert.pem"));
    assert.ok(Buffer.from(east.data["ca-cert.pem"], "base64").equals(eastCa));
    assert.ok(
      Buffer.from(east.data["root-cert.pem"], "base64").equals(
        await readFile(join(folder, "root-cert.pem")),
      ),
    );
  });

  it("refuses to render a Secret for a cluster without a CA", async () => {
    await assert.rejects(renderCacertsSecret(folder, { cluster: "nowhere" }), {
      name: "PkiError",
      code: "missing-file",
      message: `${join(folder, "clusters", "nowhere")}: no CA for cluster nowhere (run isthmus certs -c ${folder} --per-cluster-ca nowhere)`,
    });
  });

  it("generates into an existing folder holding unrelated files only, leaving them alone", async () => {
    const dir = await tempFolder("stray");
    try {
      await writeFile(join(dir, "README.md"), "notes\n");
      const before = (await snapshot(dir))["README.md"];
      const result = await ensureMeshCa(dir, small);
      assert.equal(result.status, "created");
      assert.equal((await snapshot(dir))["README.md"], before);
    } finally {
      await cleanup(dir);
    }
  });

  it("issues no per-cluster CA before the root exists", async () => {
    const dir = await tempFolder("noroot");
    try {
      await assert.rejects(ensureClusterCa(dir, "east", small), (reason: unknown) => {
        assert.ok(isPkiError(reason));
        assert.equal(
          reason.message,
          `${join(dir, "root-cert.pem")}: missing; create the root first (isthmus certs -c ${dir})`,
        );
        return true;
      });
      assert.deepEqual(await snapshot(dir), {});
    } finally {
      await cleanup(dir);
    }
  });

  it("reports progress while generating keys in parallel", async () => {
    const dir = await tempFolder("progress");
    try {
      const events: string[] = [];
      await ensureMeshCa(join(dir, "certs"), {
        ...small,
        onProgress: (event) => {
          events.push(
            event.type === "file-written" ? `wrote ${event.file}` : `${event.type} ${event.role}`,
          );
        },
      });
      // Both key generations start before either finishes: they run in parallel.
      assert.deepEqual(events.slice(0, 2).sort(), [
        "key-generation-started ca",
        "key-generation-started root",
      ]);
      assert.deepEqual(events.slice(2, 4).sort(), ["key-generated ca", "key-generated root"]);
      assert.deepEqual(
        events.slice(4),
        PLUGIN_CA_FILES.map((name) => `wrote ${join(dir, "certs", name)}`),
      );
    } finally {
      await cleanup(dir);
    }
  });

  it("rejects bad options before touching the disk", async () => {
    const dir = await tempFolder("options");
    try {
      await assert.rejects(ensureMeshCa(join(dir, "x"), { rootKeySize: 1024 as 2048 }), {
        code: "invalid-option",
        message: "invalid root key size 1024: use 2048, 3072, 4096",
      });
      await assert.rejects(ensureClusterCa(dir, "../escape"), {
        code: "invalid-option",
        message:
          'invalid cluster name "../escape": use lowercase letters, digits and "-" (at most 63, starting and ending with a letter or digit)',
      });
      assert.deepEqual(await snapshot(dir), {});
    } finally {
      await cleanup(dir);
    }
  });
});
