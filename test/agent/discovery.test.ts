import assert from "node:assert/strict";
import {
  buildIdentity,
  createClusterCache,
  createKubeClient,
  kubeConfigFromString,
  slimPod,
} from "@isthmus/agent";
import { sampleApp, startKubeSim } from "@isthmus/kubesim";
import { Visibility } from "@isthmus/proto";
import {
  cacheFor,
  eventually,
  loadApps,
  noDelay,
  startCluster,
  type TestCluster,
} from "./cluster.js";

describe("agent discovery (kubesim + client-node)", () => {
  let c: TestCluster;
  beforeEach(async () => {
    c = await startCluster();
    loadApps(c.sim);
  });
  afterEach(async () => c.close());

  it("builds services, identities and mesh facts from the cluster", async () => {
    const cache = cacheFor(c);
    await cache.start();
    try {
      const { snapshot } = cache.fullSnapshot();
      const payments = snapshot.services.get("payments/payments-api");
      assert.ok(payments, "payments");
      assert.equal(payments.readyEndpoints, 2);
      assert.deepEqual(payments.serviceAccounts, ["payments-api"]);
      assert.equal(payments.inMesh, true);
      assert.equal(payments.visibility, Visibility.PRIVATE);
      assert.deepEqual(
        payments.ports.map((p) => [p.name, p.port, p.appProtocol]),
        [["http", 8080, "http"]],
      );
      const frontend = snapshot.services.get("web/frontend");
      assert.equal(frontend?.ports[0]?.appProtocol, "http");
      const gw = snapshot.services.get("istio-system/istio-eastwestgateway");
      assert.equal(gw?.visibility, Visibility.PUBLIC);
      assert.equal(gw?.inMesh, false);

      const id = snapshot.identities.get("web/frontend");
      assert.equal(id?.podCount, 3);
      assert.equal(id?.labelSets.length, 1);
      assert.equal(id?.labelSets[0]?.podCount, 3);
      assert.equal(id?.labelSets[0]?.labels.app, "frontend");
      assert.equal(id?.outsideMesh, false, "the sample pods run a sidecar");

      const mesh = cache.mesh();
      assert.equal(mesh.facts.network, "net-eu");
      assert.equal(mesh.facts.trustDomain, "prod-eu.example");
      assert.deepEqual(
        mesh.facts.eastWestGateways.map((g) => [g.address, g.port]),
        [["198.51.100.10", 15443]],
      );
      assert.deepEqual(mesh.warnings, []);

      const ep = cache.facts().endpoints("payments", "payments-api");
      assert.deepEqual(ep?.addresses, ["10.244.1.10", "10.244.1.11"]);
      assert.deepEqual(ep?.targetPorts, { http: 8080 });
      assert.equal(cache.facts().endpoints("payments", "nope"), undefined);
    } finally {
      await cache.stop();
    }
  });

  it("reports deltas with upserts, removals and origin times", async () => {
    let t = 1_000;
    const cache = cacheFor(c, { now: () => new Date(t) });
    await cache.start();
    try {
      cache.fullSnapshot();
      assert.equal(cache.takeDelta(), undefined, "no change, no delta");
      t = 2_000;
      c.sim.delete("v1", "Pod", "frontend-2", "web");
      c.sim.delete("v1", "Service", "payments-api", "payments");
      const change = await eventually(() => {
        const d = cache.takeDelta();
        assert.ok(d, "d");
        return d;
      }, "delta");
      assert.equal(change.originTime.getTime(), 2_000);
      const all = [change];
      // the second deletion may arrive in a later delta
      await eventually(() => {
        const d = cache.takeDelta();
        if (d) all.push(d);
        assert.ok(
          all.some((x) => x.delta.removedServices.length > 0),
          "a removal",
        );
        assert.ok(
          all.some((x) => x.delta.upsertedIdentities.some((i) => i.serviceAccount === "frontend")),
          "an identity upsert",
        );
      }, "both changes");
      const removed = all.flatMap((x) => x.delta.removedServices);
      assert.deepEqual(removed, [{ namespace: "payments", name: "payments-api" }]);
      const id = all
        .flatMap((x) => x.delta.upsertedIdentities)
        .find((i) => i.serviceAccount === "frontend");
      assert.equal(id?.podCount, 2);
    } finally {
      await cache.stop();
    }
  });

  it("warns about a cluster without east-west gateway, Gateway and network label", async () => {
    const bare = await startCluster({ istio: false });
    const cache = cacheFor(bare);
    await cache.start();
    try {
      const codes = cache
        .mesh()
        .warnings.map((w) => w.code)
        .sort();
      assert.deepEqual(codes, [
        "missing-cross-network-gateway",
        "missing-network-label",
        "no-east-west-gateway",
      ]);
      assert.equal(cache.mesh().facts.trustDomain, "cluster.local");
    } finally {
      await cache.stop();
      await bare.close();
    }
  });

  it("notices a gateway without address and updates the facts when it gets one", async () => {
    const cache = cacheFor(c);
    await cache.start();
    try {
      const svc = c.sim.get("v1", "Service", "istio-eastwestgateway", "istio-system");
      c.sim.updateStatus({ ...svc, status: { loadBalancer: {} } });
      await eventually(() =>
        assert.deepEqual(
          cache.mesh().warnings.map((w) => w.code),
          ["east-west-gateway-no-address"],
        ),
      );
      const again = c.sim.get("v1", "Service", "istio-eastwestgateway", "istio-system");
      c.sim.updateStatus({
        ...again,
        status: { loadBalancer: { ingress: [{ hostname: "ew.prod-eu.example" }] } },
      });
      await eventually(() =>
        assert.equal(cache.mesh().facts.eastWestGateways[0]?.address, "ew.prod-eu.example"),
      );
    } finally {
      await cache.stop();
    }
  });

  it("works over HTTPS with the kubeconfig's CA and bearer token", async () => {
    const sim = await startKubeSim({ name: "tls", tls: true, token: "secret-token-0123456789" });
    sim.load(sampleApp({ name: "payments-api", namespace: "payments" }));
    const client = createKubeClient(kubeConfigFromString(sim.kubeconfig()));
    const cache = createClusterCache({ client, clusterId: "tls", delay: noDelay });
    try {
      await cache.start();
      assert.equal(
        cache.fullSnapshot().snapshot.services.get("payments/payments-api")?.readyEndpoints,
        2,
      );
      sim.delete("v1", "Pod", "payments-api-0", "payments");
      await eventually(() =>
        assert.equal(cache.takeDelta()?.delta.upsertedIdentities[0]?.podCount, 1),
      );
    } finally {
      await cache.stop();
      client.close();
      await sim.close();
    }
  });

  it("reports an identity outside the mesh when some of its pods run without Istio", () => {
    const pod = (name: string, spec: object, meta: object = {}) =>
      slimPod({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: "web", ...meta },
        spec: { serviceAccountName: "frontend", ...spec },
        status: { phase: "Running" },
      });
    const sidecar = pod("a", { containers: [{ name: "app" }, { name: "istio-proxy" }] });
    const native = pod("b", { initContainers: [{ name: "istio-proxy" }] });
    const annotated = pod("c", {}, { annotations: { "sidecar.istio.io/status": "{}" } });
    const plain = pod("d", { containers: [{ name: "app" }] });
    assert.equal(buildIdentity("web", "frontend", [sidecar, native, annotated]).outsideMesh, false);
    assert.equal(buildIdentity("web", "frontend", [sidecar, plain]).outsideMesh, true);
    const ambient = { "istio.io/dataplane-mode": "ambient" };
    assert.equal(buildIdentity("web", "frontend", [plain], ambient).outsideMesh, false);
  });
});
