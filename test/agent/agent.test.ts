import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AGENT_VERSION,
  type Agent,
  createAgent,
  createMemoryIdentityStore,
  parseAgentConfig,
} from "@isthmus/agent";
import { silentLogger } from "@isthmus/logging";
import { issueServerCertificate } from "@isthmus/pki";
import { eventually, loadApps, noDelay, startCluster, type TestCluster } from "./cluster.js";
import { intent } from "./fixtures.js";
import { startHub, type TestHub } from "./hub.js";

async function get(address: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.text() };
}

describe("createAgent", () => {
  let c: TestCluster;
  let hub: TestHub;
  let agent: Agent | undefined;
  beforeEach(async () => {
    c = await startCluster();
    loadApps(c.sim);
    hub = await startHub();
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await hub.close();
    await c.close();
  });

  it("runs against a kubeconfig and a hub address, with health, readiness and metrics", async () => {
    // istiod's root ConfigMap; any certificate stands for the mesh root here.
    c.sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "istio-ca-root-cert", namespace: "istio-system" },
      data: { "root-cert.pem": hub.ca.certPem },
    });
    // Istio's plug-in CA Secret: any certificate the root issued stands for the intermediate.
    const intermediate = await issueServerCertificate(hub.ca, { dnsNames: ["istiod"] });
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    c.sim.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "cacerts", namespace: "istio-system" },
      data: {
        "ca-cert.pem": b64(intermediate.certPem),
        "ca-key.pem": b64(intermediate.keyPem),
        "cert-chain.pem": b64(intermediate.certPem + hub.ca.certPem),
        "root-cert.pem": b64(hub.ca.certPem),
      },
    });
    agent = createAgent({
      clusterId: "prod-eu",
      hubAddress: hub.address,
      hubCaPem: hub.ca.certPem,
      bootstrapToken: hub.token,
      kubeconfig: c.sim.kubeconfig(),
      identityStore: createMemoryIdentityStore(),
      listen: "127.0.0.1:0",
      meshCaSecret: "cacerts",
      logger: silentLogger,
      delay: noDelay,
      debounceMs: 5,
    });
    await agent.start();
    const address = agent.healthAddress()!;
    assert.equal((await get(address, "/healthz")).status, 200);
    const ready = await get(address, "/readyz");
    assert.equal(ready.status, 200, ready.body);

    const conn = await hub.nextConnection();
    await conn.next("hello");
    await conn.send({
      nonce: "n1",
      systemVersion: "sv1",
      complete: true,
      upserted: [
        intent({
          name: "export/payments/payments-api",
          version: "1",
          kind: {
            case: "exportIntent",
            value: {
              namespace: "payments",
              service: "payments-api",
              ports: [{ name: "http", port: 8080 }],
            },
          },
        }),
      ],
    });
    await conn.next("ack");
    await eventually(() => assert.equal(agent!.status().session, "connected"));
    assert.equal(agent.status().systemVersion, "sv1");
    assert.equal(agent.status().pruning, true);

    const metrics = (await get(address, "/metrics")).body;
    assert.match(metrics, /isthmus_agent_informer_healthy\{informer="pods",cluster="prod-eu"\} 1/);
    assert.match(metrics, /isthmus_agent_hub_connected\{cluster="prod-eu"\} 1/);
    assert.match(metrics, /isthmus_agent_config_deltas_total\{result="ack",cluster="prod-eu"\} 1/);
    assert.match(metrics, /isthmus_agent_object_writes_total\{op="apply",cluster="prod-eu"\} 1/);
    assert.match(
      metrics,
      new RegExp(
        `^isthmus_build_info\\{component="agent",version="${AGENT_VERSION}",node="${process.versions.node}",cluster="prod-eu"\\} 1$`,
        "m",
      ),
    );
    // Standard process metrics, unprefixed, as every Prometheus client library names them.
    assert.match(metrics, /^process_cpu_seconds_total\{cluster="prod-eu"\} /m);
    assert.doesNotMatch(metrics, /^isthmus_agent_process_/m);
    assert.match(
      metrics,
      /^isthmus_agent_informer_restarts_total\{informer="pods",cluster="prod-eu"\} 0$/m,
    );
    // Certificate expiry: the client certificate the hub issued, the hub CA, the mesh root.
    const expiry = new Map(
      [
        ...metrics.matchAll(
          /^isthmus_agent_certificate_expiry_timestamp_seconds\{certificate="([\w-]+)",subject="[^"]*",serial="([0-9a-f]+)",cluster="prod-eu"\} (\d+)$/gm,
        ),
      ].map((m) => [m[1], { serial: m[2], notAfter: Number(m[3]) }]),
    );
    const hubCa = new X509Certificate(hub.ca.certPem);
    const ca = {
      serial: hubCa.serialNumber.toLowerCase(),
      notAfter: Date.parse(hubCa.validTo) / 1000,
    };
    assert.deepEqual(expiry.get("hub-ca"), ca);
    assert.deepEqual(expiry.get("mesh-root"), ca);
    const issued = new X509Certificate(intermediate.certPem);
    assert.deepEqual(expiry.get("mesh-intermediate"), {
      serial: issued.serialNumber.toLowerCase(),
      notAfter: Date.parse(issued.validTo) / 1000,
    });
    assert.equal(
      [...metrics.matchAll(/certificate="mesh-intermediate"/g)].length,
      1,
      "the chain's intermediate once, its root not as an intermediate",
    );
    assert.doesNotMatch(metrics, /isthmus_agent_certificate_unreadable\{/);
    const client = expiry.get("client");
    assert.ok(client !== undefined && client.notAfter > Date.now() / 1000, metrics);

    // A watch that keeps failing makes the agent unready, visibly.
    c.sim.faults.failNext(1000, { watch: true, pathPrefix: "/api/v1/pods" });
    c.sim.faults.closeWatches();
    await eventually(async () => {
      const r = await get(address, "/readyz");
      assert.equal(r.status, 503);
      assert.match(r.body, /"name":"pods"/);
    });
    const failing = (await get(address, "/metrics")).body;
    assert.match(failing, /isthmus_agent_informer_healthy\{informer="pods",cluster="prod-eu"\} 0/);
    const restarts =
      /^isthmus_agent_informer_restarts_total\{informer="pods",cluster="prod-eu"\} (\d+)$/m;
    assert.ok(Number(restarts.exec(failing)?.[1]) >= 1, failing);
    c.sim.faults.reset();
    c.sim.faults.closeWatches();
    await eventually(async () => assert.equal((await get(address, "/readyz")).status, 200));
  });
});

describe("parseAgentConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "agent-config-"));
  const ca = join(dir, "ca.pem");
  writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  const token = join(dir, "token");
  writeFileSync(token, "tok-0123456789abcdef\n");

  it("reads flags, falling back to the environment", () => {
    const cfg = parseAgentConfig(
      [
        "--cluster-id",
        "prod-eu",
        "--hub",
        "hub.example:8443",
        "--hub-ca-file",
        ca,
        "--bootstrap-token-file",
        token,
      ],
      {
        ISTHMUS_NAMESPACE: "isthmus",
        ISTHMUS_LISTEN: "127.0.0.1:9999",
      },
    );
    assert.equal(cfg.clusterId, "prod-eu");
    assert.equal(cfg.hubAddress, "hub.example:8443");
    assert.equal(cfg.bootstrapToken, "tok-0123456789abcdef");
    assert.equal(cfg.namespace, "isthmus");
    assert.equal(cfg.listen, "127.0.0.1:9999");
    assert.match(cfg.hubCaPem, /BEGIN CERTIFICATE/);
  });

  it("names the flag and variable of what is missing or wrong", () => {
    assert.throws(
      () => parseAgentConfig([], {}),
      /--cluster-id \(or ISTHMUS_CLUSTER_ID\) is required/,
    );
    assert.throws(
      () => parseAgentConfig(["--cluster-id", "Prod_EU"], {}),
      /--cluster-id "Prod_EU" is not a DNS-1123 label/,
    );
    assert.throws(
      () => parseAgentConfig(["--cluster-id", "a", "--hub", "nohostport"], {}),
      /--hub "nohostport" must be host:port/,
    );
    assert.throws(
      () => parseAgentConfig(["--cluster-id", "a", "--hub", "h1:8443,h2"], {}),
      /--hub "h2" must be host:port/,
    );
    assert.throws(
      () =>
        parseAgentConfig(
          ["--cluster-id", "a", "--hub", "h:1", "--hub-ca-file", join(dir, "missing.pem")],
          {},
        ),
      /--hub-ca-file .*missing\.pem: ENOENT/,
    );
    assert.throws(() => parseAgentConfig(["--bogus"], {}), /agent: Unknown option '--bogus'/);
    const base = ["--cluster-id", "a", "--hub", "h:1", "--hub-ca-file", ca];
    assert.throws(
      () => parseAgentConfig([...base, "--log-format", "xml"], {}),
      /^Error: agent: --log-format \(or ISTHMUS_LOG_FORMAT\): invalid log format "xml" \(expected one of json, text\)$/,
    );
    assert.equal(parseAgentConfig(base, { ISTHMUS_LOG_FORMAT: "text" }).logFormat, "text");
    assert.equal(parseAgentConfig([...base, "--log-format", "json"], {}).logFormat, "json");
    assert.equal(parseAgentConfig(base, {}).logFormat, undefined);
  });
});
