import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeSim, startKubeSim } from "@isthmus/kubesim";
import { parse } from "yaml";
import { type CliRun, runIsthmus } from "../helpers/cli.js";

/** The CLI without helm on PATH, so that install prints the helm command. */
const isthmus = (args: string[]): Promise<CliRun> => runIsthmus(args, { PATH: "/usr/bin:/bin" });

describe("isthmus install: one root for every cluster", function () {
  this.timeout(120_000);
  let dir: string;
  const sims: KubeSim[] = [];
  const kubeconfigs: string[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "isthmus-install-"));
    for (const name of ["east", "west", "spare"]) {
      const sim = await startKubeSim({ name });
      sims.push(sim);
      kubeconfigs.push(await sim.writeKubeconfig(join(dir, `${name}.kubeconfig`)));
    }
  });
  after(async () => {
    for (const s of sims) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives two clusters installed from one folder the same root in cacerts", async () => {
    const certs = join(dir, "certs");
    const east = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "east",
      "--kubeconfig",
      kubeconfigs[0]!,
      "--out",
      dir,
    ]);
    assert.equal(east.code, 0, east.stderr);
    assert.match(east.stdout, /^certs: created /m);
    assert.match(east.stdout, /^cluster: created Secret istio-system\/cacerts$/m);
    assert.match(
      east.stdout,
      /^helm is not on PATH; run: helm upgrade --install isthmus-agent .*charts\/isthmus-agent --namespace isthmus-system --create-namespace -f .*values-east\.yaml --kubeconfig /m,
    );
    const west = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "west",
      "--kubeconfig",
      kubeconfigs[1]!,
      "--out",
      dir,
    ]);
    assert.equal(west.code, 0, west.stderr);
    assert.match(west.stdout, /^certs: reused /m);
    const [a, b] = sims.slice(0, 2).map((s) => s.get("v1", "Secret", "cacerts", "istio-system"));
    const dataOf = (s: typeof a) => (s?.data ?? {}) as Record<string, string>;
    const rootOf = (s: typeof a) => dataOf(s)["root-cert.pem"];
    assert.ok(rootOf(a));
    assert.equal(rootOf(a), rootOf(b));
    assert.equal(dataOf(a)["root-key.pem"], undefined, "the root key never leaves the folder");
    // Istio's trust settings: own trust domain, the shared root trusted for it.
    assert.match(east.stdout, /^istio: wrote .*istio-east\.yaml: trust domain east\.local, /m);
    const istio = parse(readFileSync(join(dir, "istio-east.yaml"), "utf8")) as {
      meshConfig: {
        trustDomain: string;
        caCertificates: { pem: string; trustDomains: string[] }[];
      };
    };
    assert.equal(istio.meshConfig.trustDomain, "east.local");
    assert.deepEqual(istio.meshConfig.caCertificates[0]?.trustDomains, ["east.local"]);
    assert.equal(
      istio.meshConfig.caCertificates[0]?.pem,
      Buffer.from(rootOf(a)!, "base64").toString(),
    );
    assert.equal("trustDomainAliases" in istio.meshConfig, false);

    const again = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "east",
      "--kubeconfig",
      kubeconfigs[0]!,
      "--out",
      dir,
    ]);
    assert.match(
      again.stdout,
      /^cluster: Secret istio-system\/cacerts already holds this root; left as is$/m,
    );

    const other = join(dir, "other-certs");
    const refused = await isthmus([
      "install",
      "-c",
      other,
      "--cluster",
      "east",
      "--kubeconfig",
      kubeconfigs[0]!,
      "--out",
      dir,
    ]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^isthmus: Secret istio-system\/cacerts holds a different root certificate; .* --force/,
    );
    assert.equal(rootOf(sims[0]!.get("v1", "Secret", "cacerts", "istio-system")), rootOf(a));
  });

  it("stops before writing anything when the folder holds a partial set, and --dry-run writes nothing", async () => {
    const certs = join(dir, "partial");
    const ok = await isthmus([
      "certs",
      "-c",
      certs,
      "--root-key-size",
      "2048",
      "--ca-key-size",
      "2048",
      "-q",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const dry = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "spare",
      "--kubeconfig",
      kubeconfigs[2]!,
      "--out",
      dir,
      "--dry-run",
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^dry run: would create Secret istio-system\/cacerts:/m);
    assert.match(dry.stdout, /ca-key\.pem: <redacted>/);
    assert.equal(sims[2]!.find("v1", "Secret", "cacerts", "istio-system"), undefined);

    unlinkSync(join(certs, "ca-key.pem"));
    const refused = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "spare",
      "--kubeconfig",
      kubeconfigs[2]!,
      "--out",
      dir,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ca-key\.pem/);
    assert.equal(sims[2]!.find("v1", "Secret", "cacerts", "istio-system"), undefined);
  });
});
