// Foreign AuthorizationPolicies and PeerAuthentications that change what Istio enforces for
// Isthmus decisions, one kubesim scene per kind, seen through `isthmus status` and
// `isthmus policy explain` as child processes; each conflict appears when its object is
// created and goes when it is deleted.
import assert from "node:assert/strict";
import type { Sandbox } from "@isthmus/cli/sandbox";
import type { KubeObject } from "@isthmus/kubesim";
import { isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import { sandboxPolicies } from "../helpers/fixtures.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";

const authorizationPolicy = (namespace: string, name: string, spec: unknown): KubeObject => ({
  apiVersion: "security.istio.io/v1",
  kind: "AuthorizationPolicy",
  metadata: { namespace, name },
  spec,
});
const peerAuthentication = (namespace: string, name: string, mode: string): KubeObject => ({
  apiVersion: "security.istio.io/v1",
  kind: "PeerAuthentication",
  metadata: { namespace, name },
  spec: { mtls: { mode } },
});

describe("cli: conflicts with foreign policies in status and explain", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;
  const sim = (id: string) => sandbox.clusters.find((c) => c.id === id)!.sim;
  const status = () => isthmus(["status", "--config", sandbox.configPath]);
  const explain = (from: string, to: string) =>
    isthmus(["policy", "explain", "--config", sandbox.configPath, "--from", from, "--to", to]);

  /** The conflicts the hub holds for a cluster, once `match` says they are the expected ones. */
  async function conflictsSettle(cluster: string, match: (objects: string[]) => boolean) {
    const { client, call } = sandbox.admin();
    try {
      await eventually(async () => {
        const res = await client.getStatus({}, call);
        const c = res.clusters.find((x) => x.cluster?.id === cluster);
        const objects = (c?.conflicts ?? []).map((x) => `${x.kind} ${x.object}`);
        assert.ok(match(objects), `conflicts of ${cluster}: ${objects.join("; ") || "none"}`);
      }, 20_000);
    } finally {
      client.close();
    }
  }

  before(async () => {
    quick = await startQuickSandbox("conflicts", { policies: sandboxPolicies });
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("no foreign objects: status shows no conflict", async () => {
    const run = await status();
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /^conflict /m);
  });

  it("a user ALLOW that widens access: named in status and in the explain of a denied pair, gone once deleted", async () => {
    sim("prod-us").create(
      authorizationPolicy("payments", "open-to-all", {
        selector: { matchLabels: { app: "payments-api" } },
        action: "ALLOW",
        rules: [{ from: [{ source: { principals: ["*"] } }] }],
      }),
    );
    await conflictsSettle("prod-us", (o) =>
      o.includes("widens-access AuthorizationPolicy payments/open-to-all"),
    );
    const st = await status();
    assert.equal(st.code, 0, st.stderr);
    assert.match(
      st.stdout,
      /^conflict in prod-us: AuthorizationPolicy payments\/open-to-all \(not managed by Isthmus\) allows callers Isthmus denies at payments\/payments-api port 8443 \(.*\*\/ns\/\*\/sa\/\*.*\): widens-access$/m,
    );
    const ex = await explain("dev/web/frontend", "prod-us/payments/payments-api:8443");
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, /^decision: DENY$/m);
    assert.match(
      ex.stdout,
      /^ {2}conflict in prod-us: AuthorizationPolicy payments\/open-to-all \(not managed by Isthmus\) allows callers Isthmus denies .*; ALLOW policy matches /m,
    );
    // The allowed pair is not concerned by a policy that only widens.
    const allowed = await explain("prod-eu/web/frontend", "prod-us/payments/payments-api:8443");
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.doesNotMatch(allowed.stdout, /conflict/);

    sim("prod-us").delete("security.istio.io/v1", "AuthorizationPolicy", "open-to-all", "payments");
    await conflictsSettle("prod-us", (o) => o.length === 0);
    const after = await status();
    assert.equal(after.code, 0, after.stderr);
    assert.doesNotMatch(after.stdout, /^conflict /m);
    const ex2 = await explain("dev/web/frontend", "prod-us/payments/payments-api:8443");
    assert.doesNotMatch(ex2.stdout, /conflict/);
  });

  it("a user DENY that breaks an Isthmus ALLOW: named in status and in the explain of the allowed pair", async () => {
    sim("prod-us").create(
      authorizationPolicy("payments", "no-web", {
        selector: { matchLabels: { app: "payments-api" } },
        action: "DENY",
        rules: [{ from: [{ source: { namespaces: ["web"] } }] }],
      }),
    );
    try {
      await conflictsSettle("prod-us", (o) =>
        o.includes("breaks-allow AuthorizationPolicy payments/no-web"),
      );
      const st = await status();
      assert.equal(st.code, 0, st.stderr);
      assert.match(
        st.stdout,
        /^conflict in prod-us: AuthorizationPolicy payments\/no-web \(not managed by Isthmus\) denies callers Isthmus allows at payments\/payments-api port 8443 \(.*prod-eu\.local\/ns\/web\/sa\/frontend.*\): breaks-allow$/m,
      );
      const ex = await explain("prod-eu/web/frontend", "prod-us/payments/payments-api:8443");
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /^decision: ALLOW$/m);
      assert.match(
        ex.stdout,
        /^ {2}conflict in prod-us: AuthorizationPolicy payments\/no-web .*; DENY policy matches prod-eu\.local\/ns\/web\/sa\/frontend/m,
      );
    } finally {
      sim("prod-us").delete("security.istio.io/v1", "AuthorizationPolicy", "no-web", "payments");
    }
    await conflictsSettle("prod-us", (o) => o.length === 0);
  });

  it("PERMISSIVE mTLS on a port only a principal rule guards: named in status and in the explain of a denied pair", async () => {
    const eu = sim("prod-eu");
    // The mesh-wide STRICT that docs/enforcement.md recommends, then a namespace that relaxes it.
    eu.create(peerAuthentication("istio-system", "default", "STRICT"));
    eu.create(peerAuthentication("web", "relaxed", "PERMISSIVE"));
    try {
      await conflictsSettle("prod-eu", (o) =>
        o.includes("permissive-mtls PeerAuthentication web/relaxed"),
      );
      const st = await status();
      assert.equal(st.code, 0, st.stderr);
      assert.match(
        st.stdout,
        /^conflict in prod-eu: PeerAuthentication web\/relaxed \(not managed by Isthmus\) accepts plaintext where only principal rules guard \(callers without mTLS pass\) at web\/frontend port \d+: permissive-mtls$/m,
      );
      // The mesh-wide STRICT policy conflicts with nothing.
      assert.doesNotMatch(st.stdout, /PeerAuthentication istio-system\/default/);
      const ex = await explain("dev/web/frontend", "prod-eu/web/frontend");
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /^decision: DENY$/m);
      assert.match(
        ex.stdout,
        /^ {2}conflict in prod-eu: PeerAuthentication web\/relaxed .*; PERMISSIVE mTLS on port \d+ \(set by PeerAuthentication web\/relaxed\) accepts plaintext callers/m,
      );
    } finally {
      eu.delete("security.istio.io/v1", "PeerAuthentication", "relaxed", "web");
    }
    await conflictsSettle("prod-eu", (o) => o.length === 0);
    const after = await status();
    assert.doesNotMatch(after.stdout, /^conflict /m);
  });
});
