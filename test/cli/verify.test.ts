// `isthmus verify` as a child process against a sandbox (hub, three kubesim clusters, real
// agents): it agrees with the clusters, then reports the mismatch a broken mesh config makes.
import assert from "node:assert/strict";
import { type Sandbox, waitConverged } from "@isthmus/cli/sandbox";
import { parse, stringify } from "yaml";
import { isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { sandboxPolicies } from "../helpers/fixtures.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";

const SUMMARY = /^(\d+) pairs compared, (\d+) skipped \(not enforced\), (\d+) mismatch(es)?$/m;

describe("cli: isthmus verify (hub decisions against the clusters' live objects)", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;
  const verify = (...extra: string[]) =>
    isthmus([
      "verify",
      "--config",
      sandbox.configPath,
      ...sandbox.clusters.flatMap((c) => ["--cluster", `${c.id}=${c.kubeconfigPath}`]),
      ...extra,
    ]);

  before(async () => {
    // A stopped agent's services stay for the whole run: a verify of a loaded machine takes
    // longer than the default grace of 3 s.
    quick = await startQuickSandbox("verify", { policies: sandboxPolicies, graceSeconds: 600 });
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("exits 0 with the summary when every decision holds in the clusters", async () => {
    const run = await verify();
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const m = SUMMARY.exec(run.stdout);
    assert.ok(m !== null, run.stdout);
    // Three workloads with sidecars (frontend in prod-eu and dev, payments in prod-us) x three
    // one-port Services; Istio's own pods run no sidecar: not enforced.
    assert.equal(m[1], "9", run.stdout);
    assert.equal(m[3], "0");
    assert.doesNotMatch(run.stdout, /^mismatch /m);
  });

  it("-o json: ok, the counts and no mismatches", async () => {
    const run = await verify("-o", "json");
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const doc = JSON.parse(run.stdout) as {
      ok: boolean;
      clusters: string[];
      compared: number;
      mismatches: unknown[];
    };
    assert.equal(doc.ok, true);
    assert.deepEqual([...doc.clusters].sort(), ["dev", "prod-eu", "prod-us"]);
    assert.equal(doc.compared, 9);
    assert.deepEqual(doc.mismatches, []);
  });

  it("without --cluster: reads the objects from the agents (no kubeconfig) and agrees", async () => {
    const run = await isthmus(["verify", "--config", sandbox.configPath]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^objects reported by the agents of dev, prod-eu, prod-us$/m);
    const m = SUMMARY.exec(run.stdout);
    assert.ok(m !== null, run.stdout);
    assert.equal(m[1], "9", run.stdout);
    assert.equal(m[3], "0");
    const json = await isthmus(["verify", "--config", sandbox.configPath, "-o", "json"]);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as { ok: boolean; source: string; compared: number };
    assert.deepEqual([doc.ok, doc.source, doc.compared], [true, "agents", 9]);
  });

  it("without --cluster: exits 1 naming the pair and the user's AuthorizationPolicy that widens access", async () => {
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!.sim;
    us.create({
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { namespace: "payments", name: "open-to-all" },
      spec: {
        selector: { matchLabels: { app: "payments-api" } },
        action: "ALLOW",
        rules: [{ from: [{ source: { principals: ["*"] } }] }],
      },
    });
    try {
      const run = await isthmus(["verify", "--config", sandbox.configPath]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(
        run.stdout,
        /^mismatch dev\/web\/frontend -> prod-us\/payments\/payments-api:8443\n {2}hub: {5}DENY by rule no-dev-to-prod\n {2}cluster: ALLOW at authorization: .*\n {2}objects: .*AuthorizationPolicy payments\/open-to-all/m,
      );
    } finally {
      us.delete("security.istio.io/v1", "AuthorizationPolicy", "open-to-all", "payments");
    }
  });

  it("exits 2 on a malformed --cluster", async () => {
    const run = await isthmus(["verify", "--config", sandbox.configPath, "--cluster", "Bad"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--cluster Bad: expected id=kubeconfig\[:context\]/);
  });

  it("exits 1 when an Isthmus AuthorizationPolicy is gone while its agent is stopped; 0 once the agent restores it", async () => {
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!;
    await us.stopAgent();
    try {
      us.sim.delete(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "isthmus-allow-payments-api",
        "payments",
      );
      const run = await verify();
      assert.equal(run.code, 1, run.stdout + run.stderr);
      // Without an ALLOW policy Istio admits everyone: the default DENY of dev's caller fails.
      assert.match(
        run.stdout,
        /^mismatch dev\/web\/frontend -> prod-us\/payments\/payments-api:8443\n {2}hub: {5}DENY by rule no-dev-to-prod\n {2}cluster: ALLOW at authorization: /m,
      );
      assert.match(run.stdout, /[1-9]\d* mismatch(es)?$/m);
    } finally {
      await us.startAgent();
    }
    await waitConverged(sandbox);
    const restored = await verify();
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
  });

  // Last: it breaks prod-us's mesh config for the rest of the run.
  it("exits 1 naming the pair, both verdicts and the objects when a cluster stops trusting the others' trust domains", async () => {
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!.sim;
    const cm = us.get("v1", "ConfigMap", "istio", "istio-system");
    const data = cm.data as Record<string, string>;
    const meshConfig = parse(data.mesh!) as Record<string, unknown>;
    assert.ok(meshConfig.caCertificates !== undefined, data.mesh);
    delete meshConfig.caCertificates;
    us.update({ ...cm, data: { ...data, mesh: stringify(meshConfig) } });

    const run = await verify();
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      /^mismatch prod-eu\/web\/frontend -> prod-us\/payments\/payments-api:8443\n {2}hub: {5}ALLOW by rule frontend-to-payments\n {2}cluster: TLS_FAILED at trust-domain: .*peer trust domain prod-eu\.local different from local trust domain prod-us\.local/m,
    );
    assert.match(run.stdout, /^ {2}objects: .*ConfigMap istio-system\/istio/m);
    const m = SUMMARY.exec(run.stdout);
    assert.ok(m !== null, run.stdout);
    assert.ok(Number(m[3]) >= 1, run.stdout);

    // The same from the agents' reports, without kubeconfigs.
    const reported = await isthmus(["verify", "--config", sandbox.configPath]);
    assert.equal(reported.code, 1, reported.stdout + reported.stderr);
    assert.match(
      reported.stdout,
      /^mismatch prod-eu\/web\/frontend -> prod-us\/payments\/payments-api:8443\n {2}hub: {5}ALLOW by rule frontend-to-payments\n {2}cluster: TLS_FAILED at trust-domain: /m,
    );
  });
});
