import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  generateServingCertificate,
  istioScene,
  type KubeObject,
  type KubeSim,
  sampleApp,
  startKubeSim,
} from "@isthmus/kubesim";
import { renderCacertsSecret } from "@isthmus/pki";
import { parse, stringify } from "yaml";
import { type CliRun, isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { ADMIN_TOKEN, admin, enrollAgent, startHub } from "../helpers/hub-fixture.js";

const CLUSTERS = ["east", "west"] as const;

/**
 * A cluster set up as Isthmus needs: Istio for multi-network (the kubesim scene), the shared
 * root in cacerts and published by istiod, a workload namespace, and a mesh config that
 * trusts the root for every cluster's trust domain.
 */
function passingScene(id: string, cacerts: KubeObject, rootPem: string): KubeObject[] {
  const scene = istioScene({
    clusterId: id,
    network: `net-${id}`,
    trustDomain: `${id}.local`,
    eastWestAddress: id === "east" ? "192.0.2.10" : "192.0.2.20",
  });
  const meshMap = scene.find((o) => o.kind === "ConfigMap" && o.metadata.name === "istio")!;
  const data = meshMap.data as Record<string, string>;
  data.mesh = stringify({
    ...parse(data.mesh!),
    caCertificates: [{ pem: rootPem, trustDomains: CLUSTERS.map((c) => `${c}.local`) }],
  });
  const rootMap = (namespace: string): KubeObject => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "istio-ca-root-cert", namespace },
    data: { "root-cert.pem": rootPem },
  });
  return [
    ...scene,
    ...sampleApp({ name: "frontend", namespace: "web" }),
    cacerts,
    rootMap("istio-system"),
    rootMap("web"),
    istiodPod([{ name: "AUTO_RELOAD_PLUGIN_CERTS", value: "false" }]),
    {
      apiVersion: "security.istio.io/v1",
      kind: "PeerAuthentication",
      metadata: { name: "default", namespace: "istio-system" },
      spec: { mtls: { mode: "STRICT" } },
    },
  ];
}

function istiodPod(env: { name: string; value: string }[]): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "istiod-0", namespace: "istio-system", labels: { app: "istiod" } },
    spec: {
      containers: [{ name: "discovery", image: "docker.io/istio/pilot:1.29.2", env }],
    },
  };
}

/** Replaces the mesh config of a cluster with `mesh` merged into the scene's. */
function setMesh(sim: KubeSim, change: Record<string, unknown>): void {
  const map = sim.get("v1", "ConfigMap", "istio", "istio-system");
  const data = map.data as Record<string, string>;
  sim.update({ ...map, data: { ...data, mesh: stringify({ ...parse(data.mesh!), ...change }) } });
}

describe("isthmus check: the prerequisites of multi-network Istio", function () {
  // Up to five CLI runs per test; each starts tsx, which takes long on a busy machine.
  this.timeout(300_000);
  let dir: string;
  let certs: string;
  let rootPem: string;
  let cacerts: KubeObject;
  let sims: KubeSim[] = [];
  const kubeconfig = (id: string) => join(dir, `${id}.kubeconfig`);
  const sim = (id: string) => sims.find((s) => s.name === id)!;
  const check = (...extra: string[]) =>
    isthmus([
      "check",
      "-c",
      certs,
      "--cluster",
      `east=${kubeconfig("east")}`,
      "--kubeconfig",
      kubeconfig("west"),
      ...extra,
    ]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "isthmus-check-"));
    certs = join(dir, "certs");
    const made = await isthmus(["certs", "-c", certs, "--root-key-size", "2048", "-q"]);
    assert.equal(made.code, 0, made.stderr);
    rootPem = readFileSync(join(certs, "root-cert.pem"), "utf8");
    cacerts = (await renderCacertsSecret(certs)) as unknown as KubeObject;
  });
  beforeEach(async () => {
    sims = [];
    for (const id of CLUSTERS) {
      const s = await startKubeSim({ name: id });
      s.load(passingScene(id, cacerts, rootPem));
      await s.writeKubeconfig(kubeconfig(id));
      sims.push(s);
    }
  });
  afterEach(async () => {
    for (const s of sims) await s.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Asserts exit code 1 and a [fail] line of `name` on `cluster` matching `message`. */
  function assertFails(run: CliRun, cluster: string, name: string, message: RegExp, fix: RegExp) {
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const section = run.stdout.split(/^cluster /m).find((s) => s.startsWith(`${cluster} `)) ?? "";
    const line = section.split("\n").findIndex((l) => l.startsWith(`  [fail] ${name}: `));
    assert.ok(line > 0, `no failed ${name} check on ${cluster}:\n${run.stdout}`);
    const [failed, fixLine] = section.split("\n").slice(line, line + 2);
    assert.match(failed!, message);
    assert.match(fixLine!, /^ {9}fix: /);
    assert.match(fixLine!, fix);
  }

  it("passes every check on clusters set up as Isthmus needs (exit 0, text and json)", async () => {
    const run = await check();
    assert.equal(run.code, 0, run.stdout + run.stderr);
    for (const id of CLUSTERS) {
      assert.match(
        run.stdout,
        new RegExp(`^cluster ${id} \\(kubeconfig .*${id}\\.kubeconfig`, "m"),
      );
    }
    for (const name of [
      "cacerts",
      "istiod-root",
      "network",
      "east-west-gateway",
      "trust-domain",
      "strict-mtls",
    ])
      assert.equal(run.stdout.match(new RegExp(`^  \\[ok\\] {3}${name}: `, "gm"))?.length, 2, name);
    assert.match(run.stdout, /istiod serves the shared root in 2 namespaces \(istio-system, web\)/);
    assert.match(
      run.stdout,
      /Gateway istio-system\/cross-network-gateway .* behind LoadBalancer Service istio-system\/istio-eastwestgateway at 192\.0\.2\.10/,
    );
    assert.match(
      run.stdout,
      /trust domain east\.local; the shared root is trusted for west\.local/,
    );
    assert.match(run.stdout, /^2 clusters: 12 ok, 0 warnings, 0 failed$/m);
    assert.doesNotMatch(run.stdout, /fix:/);

    const json = await check("-o", "json");
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as {
      ok: boolean;
      passed: number;
      clusters: { cluster: string; checks: { name: string; status: string }[] }[];
    };
    assert.equal(doc.ok, true);
    assert.equal(doc.passed, 12);
    assert.deepEqual(
      doc.clusters.map((c) => c.cluster),
      ["east", "west"],
    );
  });

  it("fails cacerts when the Secret is missing or holds another root", async () => {
    sim("east").delete("v1", "Secret", "cacerts", "istio-system");
    assertFails(
      await check(),
      "east",
      "cacerts",
      /Secret istio-system\/cacerts not found: istiod signs with a self-signed root/,
      /isthmus install -c .*certs --cluster east --kubeconfig .*east\.kubeconfig, then kubectl --kubeconfig .* -n istio-system rollout restart deploy\/istiod/,
    );
    const other = generateServingCertificate().caPem;
    sim("west").patch("v1", "Secret", "cacerts", "istio-system", {
      data: { "root-cert.pem": Buffer.from(other).toString("base64") },
    });
    // istiod already serves that other root in web: the fix starts at cacerts.
    sim("west").patch("v1", "ConfigMap", "istio-ca-root-cert", "web", {
      data: { "root-cert.pem": other },
    });
    const run = await check("-o", "json");
    assert.equal(run.code, 1);
    const west = (
      JSON.parse(run.stdout) as {
        ok: boolean;
        clusters: {
          cluster: string;
          checks: { name: string; status: string; message: string; fix: string }[];
        }[];
      }
    ).clusters.find((c) => c.cluster === "west")!;
    const cacertsCheck = west.checks.find((c) => c.name === "cacerts")!;
    assert.equal(cacertsCheck.status, "fail");
    assert.match(
      cacertsCheck.message,
      /holds another root \(sha256 [0-9A-F:]+…\), not the shared root of /,
    );
    assert.match(cacertsCheck.fix, /--force/);
    const served = west.checks.find((c) => c.name === "istiod-root")!;
    assert.equal(served.status, "fail");
    assert.match(
      served.message,
      /does not hold the shared root in web: cacerts does not hold it either/,
    );
    assert.match(served.fix, /^fix cacerts, then kubectl .* rollout restart deploy\/istiod$/);
  });

  it("fails istiod-root when istiod still publishes an old root, and says to restart it", async () => {
    const old = generateServingCertificate().caPem;
    sim("west").patch("v1", "ConfigMap", "istio-ca-root-cert", "web", {
      data: { "root-cert.pem": old },
    });
    assertFails(
      await check(),
      "west",
      "istiod-root",
      /ConfigMap istio-ca-root-cert does not hold the shared root in web: istiod was not restarted after cacerts changed and runs without AUTO_RELOAD_PLUGIN_CERTS/,
      /kubectl --kubeconfig \S+west\.kubeconfig -n istio-system rollout restart deploy\/istiod/,
    );
    sim("west").delete("v1", "ConfigMap", "istio-ca-root-cert", "web");
    assertFails(
      await check(),
      "west",
      "istiod-root",
      /ConfigMap istio-ca-root-cert is missing in web: istiod has not published its root there/,
      /get pods -l app=istiod/,
    );
  });

  it("fails network when istio-system has no network label", async () => {
    sim("east").patch("v1", "Namespace", "istio-system", undefined, {
      metadata: { labels: { "topology.istio.io/network": null } },
    });
    assertFails(
      await check(),
      "east",
      "network",
      /namespace istio-system has no label topology\.istio\.io\/network/,
      /kubectl --kubeconfig \S+east\.kubeconfig label namespace istio-system topology\.istio\.io\/network=<network of east>/,
    );
  });

  it("fails east-west-gateway without AUTO_PASSTHROUGH, a LoadBalancer address or the Service", async () => {
    const gateway = sim("east").get(
      "networking.istio.io/v1",
      "Gateway",
      "cross-network-gateway",
      "istio-system",
    );
    const servers = (gateway.spec as { servers: { tls: { mode: string } }[] }).servers;
    servers[0]!.tls.mode = "PASSTHROUGH";
    sim("east").update(gateway);
    assertFails(
      await check(),
      "east",
      "east-west-gateway",
      /Gateway istio-system\/cross-network-gateway: its server on port 15443 has tls\.mode PASSTHROUGH, not AUTO_PASSTHROUGH/,
      /expose-services\.yaml/,
    );

    const svc = sim("west").get("v1", "Service", "istio-eastwestgateway", "istio-system");
    sim("west").updateStatus({ ...svc, status: { loadBalancer: {} } });
    assertFails(
      await check(),
      "west",
      "east-west-gateway",
      /Service istio-system\/istio-eastwestgateway has no load balancer address \(status\.loadBalancer\.ingress is empty\)/,
      /describe service istio-eastwestgateway/,
    );
    sim("west").delete("v1", "Service", "istio-eastwestgateway", "istio-system");
    assertFails(
      await check(),
      "west",
      "east-west-gateway",
      /no Service sends traffic to the pods of Gateway istio-system\/cross-network-gateway \(no Service selector holds istio=eastwestgateway\)/,
      /gen-eastwest-gateway\.sh --network net-west/,
    );
  });

  it("fails trust-domain on an alias of another cluster or a root not trusted for it; warns on skipped validation", async () => {
    setMesh(sim("east"), { trustDomainAliases: ["west.local"] });
    assertFails(
      await check(),
      "east",
      "trust-domain",
      /trustDomainAliases lists west\.local \(west\): principals of those clusters become equivalent/,
      /remove them from meshConfig\.trustDomainAliases and set meshConfig\.caCertificates: \[\{pem: <.*root-cert\.pem>, trustDomains: \[east\.local, west\.local\]\}\]/,
    );

    setMesh(sim("east"), { trustDomainAliases: [], caCertificates: [] });
    assertFails(
      await check(),
      "east",
      "trust-domain",
      /meshConfig\.caCertificates does not trust the shared root for west\.local \(west\): mTLS from there fails trust-domain validation/,
      /trustDomains: \[east\.local, west\.local\]/,
    );

    // istiod that skips the validation lets mTLS pass: a warning, exit 0.
    sim("east").load([istiodPod([{ name: "PILOT_SKIP_VALIDATE_TRUST_DOMAIN", value: "true" }])]);
    const skipped = await check();
    assert.equal(skipped.code, 0, skipped.stdout);
    assert.match(
      skipped.stdout,
      /^ {2}\[warn\] trust-domain: istiod runs with PILOT_SKIP_VALIDATE_TRUST_DOMAIN=true: .*not recommended/m,
    );
    assert.match(skipped.stdout, /^2 clusters: 11 ok, 1 warning, 0 failed$/m);
  });

  it("warns (exit 0) when mTLS is not STRICT mesh-wide", async () => {
    sim("west").delete("security.istio.io/v1", "PeerAuthentication", "default", "istio-system");
    const run = await check();
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      /^ {2}\[warn\] strict-mtls: no mesh-wide PeerAuthentication in istio-system: mTLS is PERMISSIVE, callers without Istio mTLS count as plaintext/m,
    );
    assert.match(
      run.stdout,
      /^ {9}fix: echo '\{"apiVersion":"security\.istio\.io\/v1","kind":"PeerAuthentication",.*"mode":"STRICT".*' \| kubectl --kubeconfig \S+west\.kubeconfig -n istio-system apply -f -$/m,
    );
    assert.match(run.stdout, /^2 clusters: 11 ok, 1 warning, 0 failed$/m);
  });

  it("with --hub, requires the trust domains of the clusters the hub knows", async () => {
    const hub = await startHub();
    const north = await enrollAgent(hub, "north");
    try {
      await north.connect();
      await hub.admin.createCluster({ cluster: { id: "south" } }, admin);
      await eventually(async () => {
        const listed = await hub.admin.listClusters({}, admin);
        assert.equal(listed.clusters[0]?.mesh?.trustDomain, "north.local");
      });
      const run = await check(
        "--hub",
        hub.address,
        "--token",
        ADMIN_TOKEN,
        "--ca",
        join(hub.dataDir, "control-plane/ca-cert.pem"),
      );
      assertFails(
        run,
        "east",
        "trust-domain",
        /does not trust the shared root for north\.local \(north\), south\.local \(south, assumed: not reported to the hub yet\)/,
        /trustDomains: \[east\.local, north\.local, south\.local, west\.local\]/,
      );
    } finally {
      north.close();
      await hub.close();
    }
  });

  it("fails a cluster it cannot reach and still checks the others", async () => {
    await sim("west").close();
    sims = sims.filter((s) => s.name !== "west");
    const run = await check();
    assertFails(
      run,
      "west",
      "api",
      /cannot read namespace istio-system: /,
      /get namespace istio-system/,
    );
    assert.match(run.stdout, /^ {2}\[ok\] {3}cacerts: /m, "the reachable cluster is still checked");
  });

  it("refuses bad usage with exit code 2 and one line", async () => {
    const usage = [
      ["check", "--cluster", `east=${kubeconfig("east")}`],
      ["check", "-c", certs, "--cluster", "East=x"],
      [
        "check",
        "-c",
        certs,
        "--cluster",
        `east=${kubeconfig("east")}`,
        "--cluster",
        `east=${kubeconfig("west")}`,
      ],
      [
        "check",
        "-c",
        certs,
        "--kubeconfig",
        kubeconfig("east"),
        "--kubeconfig",
        kubeconfig("west"),
        "--context",
        "east",
      ],
      ["check", "-c", certs, "--cluster", `east=${kubeconfig("east")}:nope`],
    ];
    const messages = [
      /required option '-c, --certs <folder>' not specified/,
      /--cluster East=x: invalid cluster id "East"/,
      /cluster "east" is given twice/,
      /--context: ambiguous with several --kubeconfig files/,
      /kubeconfig .*east\.kubeconfig: no context "nope"/,
    ];
    for (const [i, args] of usage.entries()) {
      const bad = await isthmus(args);
      assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
      assert.match(bad.stderr, /^isthmus: [^\n]*\n$/);
      assert.match(bad.stderr, messages[i]!);
    }
  });
});
