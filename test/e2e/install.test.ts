import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeSim, startKubeSim } from "@isthmus/kubesim";
import { parse } from "yaml";
import { at } from "../charts/render.js";
import { type CliRun, repoRoot, runIsthmus } from "../helpers/cli.js";

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

  it("takes the chart from --chart (folder or oci://), the image and values from flags, and restarts istiod", async () => {
    const istiod = (env: { name: string; value: string }[]) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "istiod", namespace: "istio-system" },
      spec: {
        selector: { matchLabels: { app: "istiod" } },
        template: {
          metadata: { labels: { app: "istiod" } },
          spec: { containers: [{ name: "discovery", image: "istio/pilot:1.29.0", env }] },
        },
      },
    });
    const restarting = await startKubeSim({ name: "restarting" });
    const reloading = await startKubeSim({ name: "reloading" });
    sims.push(restarting, reloading);
    restarting.create(istiod([]));
    reloading.create(istiod([{ name: "AUTO_RELOAD_PLUGIN_CERTS", value: "true" }]));
    const certs = join(dir, "flags-certs");
    const chartDir = join(repoRoot, "charts/isthmus-agent");
    const first = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "restarting",
      "--kubeconfig",
      await restarting.writeKubeconfig(join(dir, "restarting.kubeconfig")),
      "--out",
      dir,
      "--chart",
      chartDir,
      "--image",
      `registry.example.com/isthmus-agent:0.1.0@sha256:${"ab".repeat(32)}`,
      "--set",
      "locality=eu-west-1/eu-west-1a",
      "--restart-istiod",
    ]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^istio: restarted istio-system\/istiod /m);
    const annotations = at(
      restarting.get("apps/v1", "Deployment", "istiod", "istio-system"),
      "spec.template.metadata.annotations",
    );
    assert.ok((annotations as Record<string, string>)["isthmus.dev/restartedAt"]);
    assert.ok(
      first.stdout.includes(`helm upgrade --install isthmus-agent ${chartDir} --namespace`),
    );
    assert.match(
      first.stdout,
      /^values: clusterId=restarting image.repository=registry.example.com\/isthmus-agent image.tag=0.1.0 image.digest=sha256:(ab){32} locality=eu-west-1\/eu-west-1a$/m,
    );
    assert.deepEqual(parse(readFileSync(join(dir, "values-restarting.yaml"), "utf8")), {
      clusterId: "restarting",
      image: {
        repository: "registry.example.com/isthmus-agent",
        tag: "0.1.0",
        digest: `sha256:${"ab".repeat(32)}`,
      },
      locality: "eu-west-1/eu-west-1a",
    });

    const second = await isthmus([
      "install",
      "-c",
      certs,
      "--cluster",
      "reloading",
      "--kubeconfig",
      await reloading.writeKubeconfig(join(dir, "reloading.kubeconfig")),
      "--out",
      dir,
      "--chart",
      "oci://registry.example.com/charts/isthmus-agent",
      "--chart-version",
      "0.1.0",
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^istio: istiod has AUTO_RELOAD_PLUGIN_CERTS=true /m);
    assert.match(
      second.stdout,
      /helm upgrade --install isthmus-agent oci:\/\/registry.example.com\/charts\/isthmus-agent --namespace isthmus-system --create-namespace -f \S+values-reloading.yaml --version 0.1.0 /,
    );
  });

  it("refuses a --chart folder without a chart and a malformed --image, writing nothing", async () => {
    const certs = join(dir, "refused-certs");
    for (const [flags, message] of [
      [["--chart", dir], /^isthmus: --chart .*: no Chart.yaml in that folder/],
      [
        ["--image", "Registry/UPPER:tag"],
        /^isthmus: invalid --image "Registry\/UPPER:tag": expected repository/,
      ],
      [["--chart-version", "1.0.0"], /^isthmus: --chart-version needs an oci:\/\/ --chart$/m],
    ] as const) {
      const result = await isthmus([
        "install",
        "-c",
        certs,
        "--cluster",
        "spare",
        "--kubeconfig",
        kubeconfigs[2]!,
        "--out",
        dir,
        ...flags,
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
    }
    assert.equal(existsSync(certs), false, "no certificates generated");
  });
});
