import assert from "node:assert/strict";
import {
  type Controller,
  createController,
  objectName,
  type ReconcilerEvent,
} from "@isthmus/agent";
import type { KubeObject } from "@isthmus/kubesim";
import { eventually, loadApps, noDelay, startCluster, type TestCluster } from "./cluster.js";
import { importIntents, intent } from "./fixtures.js";
import { validateIstio } from "./istio-schemas.js";

const importPayments = importIntents(
  "1",
  {
    namespace: "payments",
    service: "payments-api",
    ports: [{ name: "http", port: 8080 }],
    localBackend: true,
  },
  [
    {
      clusterId: "prod-us",
      network: "net-us",
      weight: 3,
      gateways: [{ address: "203.0.113.20", port: 15443 }],
    },
  ],
);
const exportFrontend = intent({
  name: "export/web/frontend",
  version: "1",
  kind: {
    case: "exportIntent",
    value: {
      namespace: "web",
      service: "frontend",
      ports: [{ name: "http-web", port: 80 }],
      importingClusters: ["prod-us"],
    },
  },
});
const accessPayments = intent({
  name: "access/payments/payments-api",
  version: "1",
  kind: {
    case: "accessIntent",
    value: {
      namespace: "payments",
      service: "payments-api",
      selector: { app: "payments-api" },
      allow: [{ principals: ["prod-us.example/ns/web/sa/frontend"], ports: [8080] }],
      deny: [{ principals: ["prod-us.example/ns/web/sa/scraper"] }],
      allowLocalTrustDomain: true,
    },
  },
});
const all = [...importPayments, exportFrontend, accessPayments];

function endpointsOf(obj: KubeObject | undefined): string[] {
  return ((obj?.spec as { endpoints?: { address: string }[] } | undefined)?.endpoints ?? []).map(
    (e) => e.address,
  );
}

describe("agent apply (kubesim + client-node)", () => {
  let c: TestCluster;
  /** The endpoint addresses of a ServiceEntry in the cluster (which must exist). */
  const seEndpoints = (name: string, namespace: string) =>
    endpointsOf(c.sim.get("networking.istio.io/v1", "ServiceEntry", name, namespace));
  let ctl: Controller | undefined;
  const writes: string[] = [];
  const delays: number[] = [];

  function start(): Promise<void> {
    ctl = createController({
      client: c.client,
      clusterId: "prod-eu",
      delay: (ms) => {
        delays.push(ms);
        return noDelay();
      },
      onWrite: (op, obj) => writes.push(`${op} ${obj}`),
    });
    return ctl.start();
  }

  beforeEach(async () => {
    writes.length = 0;
    delays.length = 0;
    c = await startCluster();
    loadApps(c.sim);
  });
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
    await c.close();
  });

  it("applies a set of intents as valid, owned Istio objects and skips no-op writes", async () => {
    await start();
    const report = await ctl!.reconciler.applyDelta({ upserted: all, removed: [], complete: true });
    assert.deepEqual(report.errors, []);
    const owned = [
      ...c.sim.list("networking.istio.io/v1", "ServiceEntry"),
      ...c.sim.list("networking.istio.io/v1", "DestinationRule"),
      ...c.sim.list("security.istio.io/v1", "AuthorizationPolicy"),
    ].filter((o) => o.metadata.labels?.["app.kubernetes.io/managed-by"] === "isthmus");
    assert.deepEqual(
      owned.map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`).sort(),
      [
        "AuthorizationPolicy payments/isthmus-allow-payments-api",
        "AuthorizationPolicy payments/isthmus-deny-payments-api",
        "DestinationRule payments/isthmus-import-payments-api",
        "ServiceEntry payments/isthmus-import-payments-api",
        `ServiceEntry payments/${objectName("import", "payments-api", "prod-eu")}`,
        `ServiceEntry payments/${objectName("import", "payments-api", "prod-us")}`,
        "ServiceEntry web/isthmus-export-frontend",
      ],
    );
    for (const o of owned) validateIstio(o as never);
    // Written by server-side apply as field manager isthmus-agent: another manager applying a
    // different value for the same field conflicts with it. (kubesim tracks field owners but
    // does not return metadata.managedFields, so ownership is checked through a conflict.)
    const dr = c.sim.get(
      "networking.istio.io/v1",
      "DestinationRule",
      "isthmus-import-payments-api",
      "payments",
    );
    assert.throws(
      () =>
        c.sim.apply(
          {
            ...dr,
            metadata: { name: dr.metadata.name, namespace: "payments" },
            spec: { host: "other.example" },
          },
          { fieldManager: "kubectl" },
        ),
      /isthmus-agent/,
    );
    assert.deepEqual(seEndpoints("isthmus-import-payments-api", "payments"), [
      "10.244.1.10",
      "10.244.1.11",
      "203.0.113.20",
    ]);
    assert.deepEqual(seEndpoints("isthmus-export-frontend", "web"), [
      "10.244.2.10",
      "10.244.2.11",
      "10.244.2.12",
    ]);

    // The same delta again: the cache already holds the content hashes, nothing is written.
    await eventually(() =>
      assert.ok(ctl!.cache.liveObjects().length >= 7, "all seven objects cached"),
    );
    await ctl!.reconciler.idle();
    writes.length = 0;
    const again = await ctl!.reconciler.applyDelta({ upserted: all, removed: [], complete: true });
    assert.deepEqual(again.errors, []);
    assert.deepEqual(
      writes.filter((w) => !w.startsWith("noop")),
      [],
    );
  });

  it("leaves a foreign object with the same name alone and reports it", async () => {
    c.sim.create({
      apiVersion: "networking.istio.io/v1",
      kind: "DestinationRule",
      metadata: {
        name: "isthmus-import-payments-api",
        namespace: "payments",
        labels: { team: "payments" },
      },
      spec: { host: "payments-api.payments.svc.cluster.local" },
    });
    await start();
    const report = await ctl!.reconciler.applyDelta({
      upserted: importPayments,
      removed: [],
      complete: true,
    });
    assert.equal(report.errors.length, 1);
    assert.equal(report.errors[0]!.intentName, "import/payments/payments-api");
    assert.equal(report.errors[0]!.object, "DestinationRule payments/isthmus-import-payments-api");
    assert.match(report.errors[0]!.message, /not managed by Isthmus/);
    const foreign = c.sim.get(
      "networking.istio.io/v1",
      "DestinationRule",
      "isthmus-import-payments-api",
      "payments",
    );
    assert.equal(
      (foreign.spec as { host: string }).host,
      "payments-api.payments.svc.cluster.local",
    );
    assert.equal(foreign.metadata.labels?.["app.kubernetes.io/managed-by"], undefined);
    assert.ok(
      c.sim.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-import-payments-api",
        "payments",
      ),
      "the other objects are applied",
    );
  });

  it("re-renders local ServiceEntries on pod churn without the hub", async () => {
    await start();
    await ctl!.reconciler.applyDelta({
      upserted: [...importPayments, exportFrontend],
      removed: [],
      complete: true,
    });
    // A pod goes away: the EndpointSlice controller drops it from the slice.
    const slice = c.sim.get("discovery.k8s.io/v1", "EndpointSlice", "frontend-abc12", "web");
    const endpoints = (slice.endpoints as { addresses: string[] }[]).filter(
      (e) => e.addresses[0] !== "10.244.2.11",
    );
    c.sim.update({ ...slice, endpoints });
    c.sim.delete("v1", "Pod", "frontend-1", "web");
    await eventually(() =>
      assert.deepEqual(seEndpoints("isthmus-export-frontend", "web"), [
        "10.244.2.10",
        "10.244.2.12",
      ]),
    );
    // A payments pod turns unready.
    const ps = c.sim.get("discovery.k8s.io/v1", "EndpointSlice", "payments-api-abc12", "payments");
    const pe = (ps.endpoints as { addresses: string[]; conditions: Record<string, boolean> }[]).map(
      (e) =>
        e.addresses[0] === "10.244.1.10"
          ? { ...e, conditions: { ready: false, serving: false, terminating: true } }
          : e,
    );
    c.sim.update({ ...ps, endpoints: pe });
    await eventually(() =>
      assert.deepEqual(seEndpoints("isthmus-import-payments-api", "payments"), [
        "10.244.1.11",
        "203.0.113.20",
      ]),
    );
  });

  it("repairs an owned object that was changed or deleted behind its back", async () => {
    await start();
    await ctl!.reconciler.applyDelta({ upserted: [accessPayments], removed: [], complete: true });
    c.sim.delete(
      "security.istio.io/v1",
      "AuthorizationPolicy",
      "isthmus-deny-payments-api",
      "payments",
    );
    await eventually(() =>
      assert.ok(
        c.sim.find(
          "security.istio.io/v1",
          "AuthorizationPolicy",
          "isthmus-deny-payments-api",
          "payments",
        ),
        "the deleted policy is back",
      ),
    );
  });

  it("writes an owned object changed behind its back again as rendered, more than once", async () => {
    await start();
    await ctl!.reconciler.applyDelta({ upserted: all, removed: [], complete: true });
    const find = () =>
      c.sim.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-import-payments-api",
        "payments",
      );
    const rendered = find()!;
    const hash = "isthmus.dev/content-hash";
    // The agent keeps no copy of an object it wrote: each repair renders the intent again.
    for (const round of [1, 2]) {
      c.sim.patch("networking.istio.io/v1", "ServiceEntry", rendered.metadata.name, "payments", {
        metadata: { annotations: { [hash]: `tampered-${round}` } },
        spec: { endpoints: [{ address: "192.0.2.1" }] },
      });
      await eventually(() => {
        const now = find()!;
        assert.equal(now.metadata.annotations?.[hash], rendered.metadata.annotations?.[hash]);
        assert.deepEqual(now.spec, rendered.spec);
      });
    }
  });

  it("re-renders an import when only one of its backends changes or goes", async () => {
    await start();
    await ctl!.reconciler.applyDelta({ upserted: all, removed: [], complete: true });
    const [, backend] = importPayments;
    const moved = intent({
      name: backend!.name,
      version: "2",
      kind: {
        case: "importBackendIntent",
        value: {
          namespace: "payments",
          service: "payments-api",
          ports: [{ name: "http", port: 8080 }],
          backend: {
            clusterId: "prod-us",
            network: "net-us",
            weight: 4,
            gateways: [{ address: "203.0.113.99", port: 15443 }],
          },
        },
      },
    });
    const perCluster = objectName("import", "payments-api", "prod-us");
    const report = await ctl!.reconciler.applyDelta({
      upserted: [moved],
      removed: [],
      complete: true,
    });
    assert.deepEqual(report.errors, []);
    const se = (name: string) =>
      c.sim.find("networking.istio.io/v1", "ServiceEntry", name, "payments");
    assert.ok(endpointsOf(se("isthmus-import-payments-api")).includes("203.0.113.99"));
    assert.ok(!endpointsOf(se("isthmus-import-payments-api")).includes("203.0.113.20"));
    assert.deepEqual(endpointsOf(se(perCluster)), ["203.0.113.99"]);

    const gone = await ctl!.reconciler.applyDelta({
      upserted: [],
      removed: [backend!.name],
      complete: true,
    });
    assert.deepEqual(gone.errors, []);
    await eventually(() =>
      assert.equal(se(perCluster), undefined, "the backend's per-cluster entry is pruned"),
    );
    assert.ok(!endpointsOf(se("isthmus-import-payments-api")).includes("203.0.113.99"));
    assert.equal(ctl!.reconciler.appliedVersions()["import/payments/payments-api"], "1");
  });

  it("adopts owned objects after a restart and prunes nothing before a complete config", async () => {
    await start();
    await ctl!.reconciler.applyDelta({ upserted: all, removed: [], complete: true });
    await eventually(() => assert.equal(ctl!.cache.liveObjects().length, 7));
    await ctl!.stop();
    // A leftover owned object from an older agent, without intent annotations.
    c.sim.create({
      apiVersion: "networking.istio.io/v1",
      kind: "ServiceEntry",
      metadata: {
        name: "isthmus-import-old",
        namespace: "payments",
        labels: { "app.kubernetes.io/managed-by": "isthmus" },
      },
      spec: {
        hosts: ["old.payments.svc.clusterset.local"],
        location: "MESH_INTERNAL",
        resolution: "STATIC",
      },
    });

    await start();
    assert.deepEqual(ctl!.reconciler.appliedVersions(), {
      "access/payments/payments-api": "1",
      "export/web/frontend": "1",
      "import/payments/payments-api": "1",
      "import/payments/payments-api/prod-us": "1-prod-us",
    });
    const r1 = await ctl!.reconciler.applyDelta({ upserted: [], removed: [], complete: false });
    assert.deepEqual(r1.errors, []);
    await ctl!.reconciler.idle();
    assert.ok(
      seEndpoints("isthmus-import-payments-api", "payments").includes("203.0.113.20"),
      "the adopted import is re-rendered with its adopted backend",
    );
    assert.ok(
      c.sim.find("networking.istio.io/v1", "ServiceEntry", "isthmus-import-old", "payments"),
      "not pruned before a complete config",
    );
    assert.equal(ctl!.reconciler.pruning(), false);

    // Pod churn still re-renders adopted Import/Export intents (their source is on the object).
    c.sim.delete("discovery.k8s.io/v1", "EndpointSlice", "frontend-abc12", "web");
    await eventually(() => assert.deepEqual(seEndpoints("isthmus-export-frontend", "web"), []));

    const r2 = await ctl!.reconciler.applyDelta({
      upserted: [],
      removed: ["access/payments/payments-api"],
      complete: true,
    });
    assert.deepEqual(r2.errors, []);
    assert.equal(
      c.sim.find("networking.istio.io/v1", "ServiceEntry", "isthmus-import-old", "payments"),
      undefined,
      "pruned after a complete config",
    );
    assert.equal(
      c.sim.find(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "isthmus-allow-payments-api",
        "payments",
      ),
      undefined,
    );
    assert.ok(
      c.sim.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-import-payments-api",
        "payments",
      ),
      "adopted intents stay",
    );
    assert.ok(
      c.sim.find(
        "networking.istio.io/v1",
        "DestinationRule",
        "isthmus-import-payments-api",
        "payments",
      ),
      "adopted DestinationRule stays",
    );
  });

  it("retries 5xx and 429 with backoff and reports what keeps failing", async () => {
    await start();
    c.sim.faults.failNext(2, { code: 500, method: "PATCH" });
    c.sim.faults.failNext(1, { code: 429, method: "PATCH", retryAfterSeconds: 2 });
    const r = await ctl!.reconciler.applyDelta({
      upserted: [accessPayments],
      removed: [],
      complete: true,
    });
    assert.deepEqual(r.errors, []);
    assert.ok(delays.includes(2000), `Retry-After honoured: ${delays.join()}`);
    assert.ok(delays.includes(200), `backoff: ${delays.join()}`);

    c.sim.faults.failNext(100, { code: 503, method: "PATCH" });
    const changed = intent({
      ...accessPayments,
      version: "2",
      kind: {
        case: "accessIntent",
        value: { ...(accessPayments.kind.value as object), deny: [] } as never,
      },
    });
    const failed = await ctl!.reconciler.applyDelta({
      upserted: [changed],
      removed: [],
      complete: true,
    });
    assert.equal(failed.errors.length, 1);
    assert.equal(
      failed.errors[0]!.object,
      "AuthorizationPolicy payments/isthmus-allow-payments-api",
    );
    assert.match(failed.errors[0]!.message, /503/);
    c.sim.faults.reset();
    // The hub does not resend a NACKed intent of the same version: the agent retries it.
    assert.equal(ctl!.reconciler.retryFailed(), 1);
    await eventually(() =>
      assert.equal(
        c.sim.get(
          "security.istio.io/v1",
          "AuthorizationPolicy",
          "isthmus-allow-payments-api",
          "payments",
        ).metadata.annotations?.["isthmus.dev/intent-version"],
        "2",
      ),
    );
    await ctl!.reconciler.idle();
    assert.equal(ctl!.reconciler.retryFailed(), 0, "nothing left to retry");
  });

  it("reports a NACKed intent applied once its retry succeeds, and lists it as failed until then", async () => {
    await start();
    const events: ReconcilerEvent[] = [];
    ctl!.reconciler.onEvent((e) => events.push(e));
    const late = intent({
      name: "access/late/api",
      version: "4",
      kind: {
        case: "accessIntent",
        value: {
          namespace: "late",
          service: "api",
          selector: { app: "api" },
          allow: [{ principals: ["prod-us.example/ns/web/sa/frontend"] }],
        },
      },
    });
    const report = await ctl!.reconciler.applyDelta({
      upserted: [late, accessPayments],
      removed: [],
      complete: true,
    });
    assert.deepEqual(
      report.errors.map((e) => e.object),
      ["AuthorizationPolicy late/isthmus-allow-api"],
      "the namespace late does not exist",
    );
    assert.deepEqual(ctl!.reconciler.failedVersions(), { "access/late/api": "4" });
    assert.equal(ctl!.reconciler.appliedVersions()["access/late/api"], undefined);
    assert.equal(ctl!.reconciler.appliedVersions()["access/payments/payments-api"], "1");

    c.sim.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "late" } });
    assert.equal(ctl!.reconciler.retryFailed(), 1);
    await ctl!.reconciler.idle();
    assert.deepEqual(events, [{ type: "applied", intentName: "access/late/api", version: "4" }]);
    assert.deepEqual(ctl!.reconciler.failedVersions(), {});
    assert.equal(ctl!.reconciler.appliedVersions()["access/late/api"], "4");
  });

  it("counts as drift what others change or delete, never the agent's own updates", async () => {
    await start();
    const events: ReconcilerEvent[] = [];
    ctl!.reconciler.onEvent((e) => events.push(e));
    await ctl!.reconciler.applyDelta({ upserted: [accessPayments], removed: [], complete: true });
    const name = "isthmus-allow-payments-api";
    const policy = () =>
      c.sim.find("security.istio.io/v1", "AuthorizationPolicy", name, "payments");
    // The hub changes the intent: a new version, written at once, no drift.
    const widened = intent({
      ...accessPayments,
      version: "2",
      kind: {
        case: "accessIntent",
        value: {
          ...(accessPayments.kind.value as object),
          allow: [{ principals: ["prod-us.example/ns/web/sa/admin"], ports: [8080] }],
        } as never,
      },
    });
    await ctl!.reconciler.applyDelta({ upserted: [widened], removed: [], complete: true });
    /** The cluster and the agent's cache agree on the policy (the same uid and version). */
    const settled = async () => {
      await eventually(() => {
        const cached = ctl!.cache.liveObject("AuthorizationPolicy", "payments", name);
        assert.equal(cached?.metadata.resourceVersion, policy()?.metadata.resourceVersion);
      }, "the cache caught up");
      await ctl!.reconciler.idle();
    };
    await eventually(() => assert.match(JSON.stringify(policy()?.spec), /sa\/admin/));
    await settled();
    assert.equal(events.length, 0, "the agent's own writes are not drift");

    const rendered = policy()!;
    c.sim.delete("security.istio.io/v1", "AuthorizationPolicy", name, "payments");
    await eventually(() => assert.deepEqual(policy()?.spec, rendered.spec), "recreated");
    await settled();
    // An edit that keeps every annotation, the content hash included.
    c.sim.patch("security.istio.io/v1", "AuthorizationPolicy", name, "payments", {
      spec: { action: "AUDIT" },
    });
    await eventually(() => assert.deepEqual(policy()?.spec, rendered.spec), "restored");
    await settled();
    assert.deepEqual(
      events.map((e) => (e.type === "drift" ? [e.repair.object, e.repair.change] : e.type)),
      [
        ["AuthorizationPolicy payments/isthmus-allow-payments-api", "deleted"],
        ["AuthorizationPolicy payments/isthmus-allow-payments-api", "changed"],
      ],
    );
  });
});
