import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PLUGIN_CA_FILES } from "@isthmus/pki";
import { type CliRun, runIsthmus } from "../helpers/cli.js";
import { cleanup, copyFolder, openssl, snapshot, tempFolder } from "./fixtures.js";

const isthmus = (...args: string[]): Promise<CliRun> => runIsthmus(args);

describe("cli: isthmus certs", () => {
  let parent: string;
  let folder: string;

  before(async () => {
    parent = await tempFolder("cli");
    folder = join(parent, "certs");
  });

  after(async () => {
    await cleanup(parent);
  });

  it("creates the folder with the default key sizes, reporting progress on stderr", async () => {
    const run = await isthmus("certs", "-c", folder);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      new RegExp(`^created ${folder}\\n  root  O=Isthmus, CN=Isthmus Root CA\\n`),
    );
    assert.match(run.stderr, /^generating (root|ca) key \(RSA 4096\)\.\.\.$/m);
    assert.match(run.stderr, /^root key ready in \d+\.\d s$/m);
    for (const name of PLUGIN_CA_FILES) {
      assert.ok(run.stderr.includes(`wrote ${join(folder, name)}\n`), name);
    }
    const root = new X509Certificate(await readFile(join(folder, "root-cert.pem")));
    const ca = new X509Certificate(await readFile(join(folder, "ca-cert.pem")));
    assert.equal(root.publicKey.asymmetricKeyDetails?.modulusLength, 4096);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.modulusLength, 4096);
    const verified = await openssl(["verify", "-CAfile", "root-cert.pem", "ca-cert.pem"], folder);
    assert.equal(verified.trim(), "ca-cert.pem: OK");
  });

  it("reuses the folder on a second run, changing nothing", async () => {
    const before = await snapshot(folder);
    const run = await isthmus("certs", "-c", folder);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^reused ${folder}\\n`));
    assert.equal(run.stderr, "");
    assert.deepEqual(await snapshot(folder), before);
  });

  it("prints a JSON summary with --output json", async () => {
    const run = await isthmus(
      "certs",
      "-c",
      folder,
      "--output",
      "json",
      "--per-cluster-ca",
      "east",
      "--ca-key-size",
      "2048",
    );
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as {
      folder: string;
      status: string;
      root: { subject: string; fingerprint256: string; notAfter: string };
      ca: { subject: string; fingerprint256: string; notAfter: string };
      clusters: { cluster: string; folder: string; status: string; ca: { subject: string } }[];
    };
    const root = new X509Certificate(await readFile(join(folder, "root-cert.pem")));
    assert.equal(summary.folder, folder);
    assert.equal(summary.status, "reused");
    assert.equal(summary.root.subject, "O=Isthmus, CN=Isthmus Root CA");
    assert.equal(summary.root.fingerprint256, root.fingerprint256);
    assert.equal(summary.root.notAfter, new Date(root.validTo).toISOString());
    assert.equal(summary.ca.subject, "O=Isthmus, CN=Isthmus Intermediate CA");
    assert.deepEqual(
      summary.clusters.map((cluster) => [
        cluster.cluster,
        cluster.status,
        cluster.folder,
        cluster.ca.subject,
      ]),
      [
        [
          "east",
          "created",
          join(folder, "clusters", "east"),
          "O=Isthmus, CN=Isthmus Intermediate CA east",
        ],
      ],
    );
    const verified = await openssl(
      ["verify", "-CAfile", "root-cert.pem", join("clusters", "east", "ca-cert.pem")],
      folder,
    );
    assert.equal(verified.trim(), `${join("clusters", "east", "ca-cert.pem")}: OK`);
  });

  it("exits 1 on a partial folder, naming the missing file and writing nothing", async () => {
    const partial = await copyFolder(folder, "cli-partial");
    try {
      await rm(join(partial, "ca-key.pem"));
      const before = await snapshot(partial);
      const run = await isthmus("certs", "-c", partial);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, "");
      assert.equal(
        run.stderr,
        `isthmus: ${join(partial, "ca-key.pem")}: missing from a partial set (present: root-cert.pem, root-key.pem, ca-cert.pem, cert-chain.pem; missing: ca-key.pem); complete the set or use an empty folder\n`,
      );
      assert.deepEqual(await snapshot(partial), before);
    } finally {
      await cleanup(partial);
    }
  });

  it("exits 2 with one line on bad usage", async () => {
    const cases: [string[], string][] = [
      [["certs"], "isthmus: required option '-c, --certs <folder>' not specified\n"],
      [
        ["certs", "-c", folder, "--root-key-size", "1024"],
        "isthmus: option '--root-key-size <bits>' argument '1024' is invalid. use one of 2048, 3072, 4096.\n",
      ],
      [
        ["certs", "-c", folder, "--output", "yaml"],
        "isthmus: option '-o, --output <format>' argument 'yaml' is invalid. Allowed choices are text, json.\n",
      ],
      [["certs", "-c", folder, "--bogus"], "isthmus: unknown option '--bogus'\n"],
    ];
    const runs = await Promise.all(cases.map(([args]) => isthmus(...args)));
    runs.forEach((run, index) => {
      const [args, stderr] = cases[index]!;
      assert.equal(run.stderr, stderr, args.join(" "));
      assert.equal(run.code, 2, args.join(" "));
      assert.equal(run.stdout, "");
    });
  });
});
