import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ensureClusterCa,
  ensureMeshCa,
  isPkiError,
  type MeshCaOptions,
  type PkiErrorCode,
  PLUGIN_CA_FILES,
} from "@isthmus/pki";
import { cleanup, copyFolder, openssl, snapshot, tempFolder } from "./fixtures.js";

const small = { rootKeySize: 2048, caKeySize: 2048 } as const;
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Runs the CLI (`bin/isthmus.js`) from the checkout as root without the capabilities that let
 * root write anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): a user who may not write into a
 * folder, whatever the checkout's location. Running it as another user (nobody) instead failed
 * when that user could not enter the checkout or reach the node binary (a clone in root's home
 * folder or under a `mktemp -d` folder, the CI's node under .ci/). Undefined without setpriv.
 */
function runCliWithoutOverride(args: string[]) {
  const dropped = "--bounding-set=-dac_override,-dac_read_search";
  const cli = [process.execPath, "packages/cli/bin/isthmus.js", ...args];
  const result = spawnSync("setpriv", [dropped, "--", ...cli], { cwd: repoRoot, encoding: "utf8" });
  return result.error === undefined ? result : undefined;
}

/** Whole seconds: certificate times have no milliseconds. */
function seconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function addYears(date: Date, years: number): Date {
  const result = new Date(date.getTime());
  result.setUTCFullYear(result.getUTCFullYear() + years);
  return result;
}

interface Fixtures {
  base: string;
  twin: string;
  elsewhere: string;
  expiredRoot: string;
  expiredCa: string;
  expiredCaNow: Date;
  future: string;
  futureNow: Date;
  made: string;
}

interface BadFolder {
  name: string;
  /** Damage a copy of the base folder (complete set plus clusters/east/). */
  damage: (dir: string, fixtures: Fixtures) => Promise<unknown>;
  code: PkiErrorCode;
  message: (dir: string, fixtures: Fixtures) => string;
  /** Default: ensureMeshCa(dir). */
  run?: (dir: string) => Promise<unknown>;
}

const put = (dir: string, name: string, contents: string | Buffer) =>
  writeFile(join(dir, name), contents);
const take = (from: string, dir: string, ...names: string[]) =>
  Promise.all(names.map((name) => copyFile(join(from, name), join(dir, name))));
const text = (dir: string, name: string) => readFile(join(dir, name), "utf8");
const path = (dir: string, name: string) => join(dir, name);
const east = (dir: string) => join(dir, "clusters", "east");

const cases: BadFolder[] = [
  {
    name: "a partial set (ca-key.pem missing)",
    damage: (dir) => rm(path(dir, "ca-key.pem")),
    code: "partial-set",
    message: (dir) =>
      `${path(dir, "ca-key.pem")}: missing from a partial set (present: root-cert.pem, root-key.pem, ca-cert.pem, cert-chain.pem; missing: ca-key.pem); complete the set or use an empty folder`,
  },
  {
    name: "a partial set (only root-cert.pem)",
    damage: async (dir) => {
      await Promise.all(PLUGIN_CA_FILES.slice(1).map((name) => rm(path(dir, name))));
    },
    code: "partial-set",
    message: (dir) =>
      `${path(dir, "root-key.pem")}: missing from a partial set (present: root-cert.pem; missing: root-key.pem, ca-cert.pem, ca-key.pem, cert-chain.pem); complete the set or use an empty folder`,
  },
  {
    name: "per-cluster CAs left without the root files",
    damage: async (dir) => {
      await Promise.all(PLUGIN_CA_FILES.map((name) => rm(path(dir, name))));
    },
    code: "partial-set",
    message: (dir) =>
      `${path(dir, "root-cert.pem")}: missing, but ${path(dir, "clusters")} holds per-cluster CAs issued from a root; restore the root files or use another folder`,
  },
  {
    name: "an unreadable file (a folder named root-key.pem)",
    damage: async (dir) => {
      await rm(path(dir, "root-key.pem"));
      await mkdir(path(dir, "root-key.pem"));
    },
    code: "unreadable",
    message: (dir) => `${path(dir, "root-key.pem")}: cannot read (EISDIR)`,
  },
  {
    name: "a certificate file without PEM",
    damage: (dir) => put(dir, "ca-cert.pem", "this is not a certificate\n"),
    code: "invalid-pem",
    message: (dir) =>
      `${path(dir, "ca-cert.pem")}: not PEM (no "-----BEGIN CERTIFICATE-----" block found)`,
  },
  {
    name: "a key file holding binary data",
    damage: (dir) => put(dir, "root-key.pem", Buffer.from([0x30, 0x82, 0x01, 0xff, 0x00, 0xfe])),
    code: "invalid-pem",
    message: (dir) => `${path(dir, "root-key.pem")}: not PEM (no private key block found)`,
  },
  {
    name: "a PEM block that is not base64",
    damage: (dir) =>
      put(dir, "root-cert.pem", "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n"),
    code: "invalid-pem",
    message: (dir) => `${path(dir, "root-cert.pem")}: PEM block "CERTIFICATE" is not valid base64`,
  },
  {
    name: "a PEM certificate that is not DER",
    damage: (dir) =>
      put(dir, "root-cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    code: "invalid-certificate",
    message: (dir) => `${path(dir, "root-cert.pem")}: certificate could not be parsed`,
  },
  {
    name: "a PEM key that is not a key",
    damage: (dir) =>
      put(dir, "ca-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    code: "invalid-key",
    message: (dir) => `${path(dir, "ca-key.pem")}: private key could not be parsed`,
  },
  {
    name: "an encrypted private key",
    damage: (dir, f) => take(f.made, dir, "root-key.pem"),
    code: "invalid-key",
    message: (dir) =>
      `${path(dir, "root-key.pem")}: private key is encrypted; provide it unencrypted (istiod reads it as is)`,
  },
  {
    name: "two certificates in root-cert.pem",
    damage: async (dir, f) =>
      put(
        dir,
        "root-cert.pem",
        (await text(dir, "root-cert.pem")) + (await text(f.twin, "root-cert.pem")),
      ),
    code: "invalid-certificate",
    message: (dir) => `${path(dir, "root-cert.pem")}: holds 2 certificates; expected exactly one`,
  },
  {
    name: "a root that is not self-signed (the CA in its place)",
    damage: (dir) => copyFile(path(dir, "ca-cert.pem"), path(dir, "root-cert.pem")),
    code: "not-self-signed",
    message: (dir) =>
      `${path(dir, "root-cert.pem")}: not self-signed (issuer "O=Isthmus, CN=Isthmus Root CA" differs from subject "O=Isthmus, CN=Isthmus Intermediate CA")`,
  },
  {
    name: "a root whose signature is damaged",
    damage: async (dir) => {
      const der = Buffer.from(
        (await text(dir, "root-cert.pem")).replace(/-----[A-Z ]+-----|\s/g, ""),
        "base64",
      );
      der[der.length - 1] = der[der.length - 1]! ^ 0xff;
      const body = der
        .toString("base64")
        .match(/.{1,64}/g)!
        .join("\n");
      await put(
        dir,
        "root-cert.pem",
        `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`,
      );
    },
    code: "not-self-signed",
    message: (dir) =>
      `${path(dir, "root-cert.pem")}: not self-signed (its signature does not verify with its own key)`,
  },
  {
    name: "a root that is not a CA",
    damage: (dir, f) => copyFile(path(f.made, "root-not-ca.pem"), path(dir, "root-cert.pem")),
    code: "not-ca",
    message: (dir) =>
      `${path(dir, "root-cert.pem")}: not a CA certificate (basicConstraints CA:TRUE is missing)`,
  },
  {
    name: "a root without keyCertSign",
    damage: (dir, f) => copyFile(path(f.made, "root-no-cert-sign.pem"), path(dir, "root-cert.pem")),
    code: "key-usage",
    message: (dir) => `${path(dir, "root-cert.pem")}: key usage lacks keyCertSign`,
  },
  {
    name: "an expired root",
    damage: (dir, f) => take(f.expiredRoot, dir, ...PLUGIN_CA_FILES),
    code: "expired",
    message: (dir) => `${path(dir, "root-cert.pem")}: expired on 2020-06-01T00:00:00.000Z`,
  },
  {
    name: "a root that is not yet valid",
    damage: (dir, f) => take(f.future, dir, ...PLUGIN_CA_FILES),
    code: "not-yet-valid",
    message: (dir, f) =>
      `${path(dir, "root-cert.pem")}: not valid before ${new Date(f.futureNow.getTime() - 5 * 60 * 1000).toISOString()}`,
  },
  {
    name: "a root key that does not match root-cert.pem",
    damage: (dir, f) => take(f.twin, dir, "root-key.pem"),
    code: "key-mismatch",
    message: (dir) => `${path(dir, "root-key.pem")}: private key does not match root-cert.pem`,
  },
  {
    name: "a CA that is not a CA",
    damage: (dir, f) => copyFile(path(f.made, "ca-not-ca.pem"), path(dir, "ca-cert.pem")),
    code: "not-ca",
    message: (dir) =>
      `${path(dir, "ca-cert.pem")}: not a CA certificate (basicConstraints CA:TRUE is missing)`,
  },
  {
    name: "a CA without keyCertSign",
    damage: (dir, f) => copyFile(path(f.made, "ca-no-cert-sign.pem"), path(dir, "ca-cert.pem")),
    code: "key-usage",
    message: (dir) => `${path(dir, "ca-cert.pem")}: key usage lacks keyCertSign`,
  },
  {
    name: "an expired CA under a valid root",
    damage: (dir, f) => take(f.expiredCa, dir, ...PLUGIN_CA_FILES),
    code: "expired",
    message: (dir, f) =>
      `${path(dir, "ca-cert.pem")}: expired on ${addYears(f.expiredCaNow, 5).toISOString()}`,
  },
  {
    name: "a CA signed by another root with the same name",
    damage: (dir, f) => take(f.twin, dir, "ca-cert.pem", "ca-key.pem", "cert-chain.pem"),
    code: "not-signed-by-root",
    message: (dir) =>
      `${path(dir, "ca-cert.pem")}: not signed by root-cert.pem (signature does not verify with the root key)`,
  },
  {
    name: "a CA issued by a root with another name",
    damage: (dir, f) => take(f.elsewhere, dir, "ca-cert.pem", "ca-key.pem", "cert-chain.pem"),
    code: "not-signed-by-root",
    message: (dir) =>
      `${path(dir, "ca-cert.pem")}: not signed by root-cert.pem (issuer "O=Elsewhere, CN=Isthmus Root CA" differs from the root subject "O=Isthmus, CN=Isthmus Root CA")`,
  },
  {
    name: "a CA key that does not match ca-cert.pem",
    damage: (dir, f) => take(f.twin, dir, "ca-key.pem"),
    code: "key-mismatch",
    message: (dir) => `${path(dir, "ca-key.pem")}: private key does not match ca-cert.pem`,
  },
  {
    name: "a chain without the root",
    damage: (dir) => copyFile(path(dir, "ca-cert.pem"), path(dir, "cert-chain.pem")),
    code: "chain-mismatch",
    message: (dir) =>
      `${path(dir, "cert-chain.pem")}: does not match ca-cert.pem followed by root-cert.pem (holds 1 certificate, expected 2)`,
  },
  {
    name: "a chain in the wrong order",
    damage: async (dir) =>
      put(
        dir,
        "cert-chain.pem",
        (await text(dir, "root-cert.pem")) + (await text(dir, "ca-cert.pem")),
      ),
    code: "chain-mismatch",
    message: (dir) =>
      `${path(dir, "cert-chain.pem")}: does not match ca-cert.pem followed by root-cert.pem (certificate 1 differs)`,
  },
  {
    name: "a folder path that is a file",
    damage: async (dir) => {
      await put(dir, "plain-file", "x");
    },
    code: "unreadable",
    message: (dir) => `${path(dir, "plain-file")}: not a folder`,
    run: (dir) => ensureMeshCa(path(dir, "plain-file"), small),
  },
  {
    name: "a partial per-cluster set",
    damage: (dir) => rm(path(east(dir), "ca-key.pem")),
    code: "partial-set",
    message: (dir) =>
      `${path(east(dir), "ca-key.pem")}: missing from a partial set (present: root-cert.pem, ca-cert.pem, cert-chain.pem; missing: ca-key.pem); complete the set or use an empty folder`,
    run: (dir) => ensureClusterCa(dir, "east", small),
  },
  {
    name: "a per-cluster root-cert.pem that differs from the root",
    damage: (dir, f) => copyFile(path(f.twin, "root-cert.pem"), path(east(dir), "root-cert.pem")),
    code: "root-mismatch",
    message: (dir) =>
      `${path(east(dir), "root-cert.pem")}: differs from ${path(dir, "root-cert.pem")}`,
    run: (dir) => ensureClusterCa(dir, "east", small),
  },
  {
    name: "a per-cluster CA from another root",
    damage: (dir, f) => take(f.twin, east(dir), "ca-cert.pem", "ca-key.pem"),
    code: "not-signed-by-root",
    message: (dir) =>
      `${path(east(dir), "ca-cert.pem")}: not signed by ${path(dir, "root-cert.pem")} (signature does not verify with the root key)`,
    run: (dir) => ensureClusterCa(dir, "east", small),
  },
  {
    name: "a per-cluster chain that does not match",
    damage: (dir) => copyFile(path(dir, "cert-chain.pem"), path(east(dir), "cert-chain.pem")),
    code: "chain-mismatch",
    message: (dir) =>
      `${path(east(dir), "cert-chain.pem")}: does not match ca-cert.pem followed by root-cert.pem (certificate 1 differs)`,
    run: (dir) => ensureClusterCa(dir, "east", small),
  },
];

/** Certificates with wrong extensions, made by openssl from the base folder's keys. */
async function makeWithOpenssl(base: string, made: string): Promise<void> {
  await writeFile(
    join(made, "openssl.cnf"),
    [
      "[req]",
      "distinguished_name = dn",
      "prompt = no",
      "[dn]",
      "O = Isthmus",
      "CN = Isthmus Root CA",
      "[not_ca]",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, keyCertSign, cRLSign",
      "[no_cert_sign]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, digitalSignature, cRLSign",
      "",
    ].join("\n"),
  );
  const root = ["-key", join(base, "root-key.pem"), "-config", "openssl.cnf", "-days", "30"];
  await openssl(
    ["req", "-x509", "-new", ...root, "-extensions", "not_ca", "-out", "root-not-ca.pem"],
    made,
  );
  await openssl(
    [
      "req",
      "-x509",
      "-new",
      ...root,
      "-extensions",
      "no_cert_sign",
      "-out",
      "root-no-cert-sign.pem",
    ],
    made,
  );
  await openssl(
    [
      "req",
      "-new",
      "-key",
      join(base, "ca-key.pem"),
      "-config",
      "openssl.cnf",
      "-subj",
      "/O=Isthmus/CN=Isthmus Intermediate CA",
      "-out",
      "ca.csr",
    ],
    made,
  );
  for (const [section, out] of [
    ["not_ca", "ca-not-ca.pem"],
    ["no_cert_sign", "ca-no-cert-sign.pem"],
  ] as const) {
    await openssl(
      [
        "x509",
        "-req",
        "-in",
        "ca.csr",
        "-CA",
        join(base, "root-cert.pem"),
        "-CAkey",
        join(base, "root-key.pem"),
        "-set_serial",
        "7",
        "-days",
        "30",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        section,
        "-out",
        out,
      ],
      made,
    );
  }
  await openssl(
    [
      "pkcs8",
      "-topk8",
      "-in",
      join(base, "root-key.pem"),
      "-v2",
      "aes-256-cbc",
      "-passout",
      "pass:secret",
      "-out",
      "root-key.pem",
    ],
    made,
  );
}

describe("pki: folders that are refused", () => {
  let workspace: string;
  let fixtures: Fixtures;

  before(async () => {
    workspace = await tempFolder("bad");
    const at = (name: string) => join(workspace, name);
    const expiredCaNow = addYears(seconds(new Date()), -6);
    const futureNow = addYears(seconds(new Date()), 1);
    const make = (name: string, options: MeshCaOptions = {}) =>
      ensureMeshCa(at(name), { ...small, ...options });
    await Promise.all([
      make("base").then(() => ensureClusterCa(at("base"), "east", small)),
      make("twin"),
      make("elsewhere", { organization: "Elsewhere" }),
      make("expired-root", { now: new Date("2010-06-01T00:00:00Z") }),
      make("expired-ca", { now: expiredCaNow }),
      make("future", { now: futureNow }),
    ]);
    await mkdir(at("made"));
    await makeWithOpenssl(at("base"), at("made"));
    fixtures = {
      base: at("base"),
      twin: at("twin"),
      elsewhere: at("elsewhere"),
      expiredRoot: at("expired-root"),
      expiredCa: at("expired-ca"),
      expiredCaNow,
      future: at("future"),
      futureNow,
      made: at("made"),
    };
  });

  after(async () => {
    await cleanup(workspace);
  });

  for (const bad of cases) {
    it(`refuses ${bad.name}, changing nothing`, async () => {
      const dir = await copyFolder(fixtures.base, "case");
      try {
        await bad.damage(dir, fixtures);
        const before = await snapshot(dir);
        const run = bad.run ?? ((folder: string) => ensureMeshCa(folder, small));
        await assert.rejects(run(dir), (reason: unknown) => {
          assert.ok(isPkiError(reason), `expected a PkiError, got ${String(reason)}`);
          assert.equal(reason.message, bad.message(dir, fixtures));
          assert.equal(reason.code, bad.code);
          return true;
        });
        assert.deepEqual(await snapshot(dir), before);
      } finally {
        await cleanup(dir);
      }
    });
  }

  it("refuses a folder that is not writable, writing nothing", async function () {
    const parent = await tempFolder("readonly");
    const dir = join(parent, "certs");
    try {
      await mkdir(dir);
      await chmod(parent, 0o755);
      await chmod(dir, 0o555);
      const expected = `${dir}: folder is not writable (EACCES)`;
      if (process.getuid?.() === 0) {
        // root writes anywhere: run the real CLI without root's override instead.
        const result = runCliWithoutOverride(["certs", "-c", dir, "--root-key-size", "2048"]);
        if (result === undefined) {
          console.log("      skipped: setpriv (util-linux) is not installed");
          this.skip();
        }
        assert.equal(result.stderr, `isthmus: ${expected}\n`);
        assert.equal(result.status, 1);
      } else {
        await assert.rejects(ensureMeshCa(dir, small), { code: "not-writable", message: expected });
      }
      assert.deepEqual(await snapshot(dir), {});
    } finally {
      await chmod(dir, 0o755).catch(() => undefined);
      await cleanup(parent);
    }
  });
});
