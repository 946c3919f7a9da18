import assert from "node:assert/strict";
import type { KubeObject } from "@isthmus/kubesim";
import { createKubeSim, startKubeSim } from "@isthmus/kubesim";

const pod = (name: string, extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "default" },
  spec: {
    containers: [
      {
        name: "app",
        image: "app:1",
        env: [
          { name: "A", value: "1" },
          { name: "B", value: "2" },
        ],
      },
    ],
  },
  ...extra,
});

function errorOf(f: () => unknown): { code: number; reason: string; message: string } {
  try {
    f();
  } catch (err: unknown) {
    const e = err as { name: string; status: { code: number; reason: string; message: string } };
    assert.equal(e.name, "KubeSimError");
    return e.status;
  }
  assert.fail("expected an error");
}

describe("kubesim semantics (in process)", () => {
  it("merges strategic patches by merge key and honours $patch directives", () => {
    const sim = createKubeSim();
    sim.create(pod("p", { metadata: { name: "p", namespace: "default", finalizers: ["a"] } }));
    const patched = sim.patch(
      "v1",
      "Pod",
      "p",
      "default",
      {
        metadata: { finalizers: ["b"] },
        spec: {
          containers: [
            {
              name: "app",
              env: [
                { name: "B", $patch: "delete" },
                { name: "C", value: "3" },
              ],
            },
            { name: "sidecar", image: "side:1" },
          ],
        },
      },
      "strategic",
    );
    const spec = patched.spec as {
      containers: { name: string; image: string; env?: { name: string }[] }[];
    };
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ["app", "sidecar"],
    );
    assert.equal(spec.containers[0]?.image, "app:1");
    assert.deepEqual(
      spec.containers[0]?.env?.map((e) => e.name),
      ["A", "C"],
    );
    assert.deepEqual(patched.metadata.finalizers, ["a", "b"], "finalizers merge as a set");
  });

  it("stores copies: a caller's object, and keys such as __proto__, stay as they were", () => {
    const sim = createKubeSim();
    const data = JSON.parse('{"__proto__": "kept", "list": "a"}') as Record<string, string>;
    const input: KubeObject = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cm", namespace: "default", labels: { a: "1" } },
      data,
    };
    const created = sim.create(input);
    input.metadata.labels!.a = "changed";
    data.list = "changed";
    (created.data as Record<string, string>).list = "changed too";
    const stored = sim.get("v1", "ConfigMap", "cm", "default");
    assert.equal(stored.metadata.labels?.a, "1");
    assert.deepEqual(Object.keys(stored.data as object), ["__proto__", "list"]);
    assert.equal(Object.getPrototypeOf(stored.data), Object.prototype);
    assert.equal((stored.data as Record<string, string>).list, "a");
    assert.equal(Object.getOwnPropertyDescriptor(stored.data, "__proto__")?.value, "kept");
  });

  it("keeps objects with finalizers until the last finalizer is removed", () => {
    const sim = createKubeSim();
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "f", finalizers: ["example.com/hold"] },
    });
    const marked = sim.delete("v1", "ConfigMap", "f", "default");
    assert.ok(marked.metadata.deletionTimestamp);
    assert.ok(sim.find("v1", "ConfigMap", "f", "default"));
    sim.patch("v1", "ConfigMap", "f", "default", { metadata: { finalizers: null } });
    assert.equal(sim.find("v1", "ConfigMap", "f", "default"), undefined);
  });

  it("deletes a namespace with everything in it", () => {
    const sim = createKubeSim();
    sim.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "tmp" } });
    sim.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", namespace: "tmp" } });
    sim.delete("v1", "Namespace", "tmp");
    assert.deepEqual(sim.list("v1", "ConfigMap", { namespace: "tmp" }), []);
    assert.equal(
      errorOf(() =>
        sim.create({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "c", namespace: "tmp" },
        }),
      ).code,
      404,
    );
  });

  it("keeps one global resourceVersion and skips no-op updates", () => {
    const sim = createKubeSim();
    const a = sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "a" },
      data: { x: "1" },
    });
    const b = sim.create({ apiVersion: "v1", kind: "Secret", metadata: { name: "b" } });
    assert.equal(Number(b.metadata.resourceVersion), Number(a.metadata.resourceVersion) + 1);
    const same = sim.update(a);
    assert.equal(same.metadata.resourceVersion, a.metadata.resourceVersion);
    assert.equal(sim.resourceVersion(), b.metadata.resourceVersion);
    assert.equal(b.type, "Opaque");
  });

  it("server-side apply shares fields with equal values and removes fields a manager stops applying", () => {
    const sim = createKubeSim();
    const base = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "shared", namespace: "default" },
    };
    sim.apply({ ...base, data: { a: "1", b: "2" } }, { fieldManager: "one" });
    sim.apply({ ...base, data: { a: "1" } }, { fieldManager: "two" });
    // "one" drops a: "two" still owns it, so it stays; b is dropped by its only owner.
    const after = sim.apply({ ...base, data: {} }, { fieldManager: "one" });
    assert.deepEqual(after.data, { a: "1" });
    const conflict = errorOf(() =>
      sim.apply({ ...base, data: { a: "9" } }, { fieldManager: "one" }),
    );
    assert.equal(conflict.code, 409);
    assert.match(conflict.message, /conflict with "two": \.data\.a/);
  });

  it("refuses updates that change the name or race on resourceVersion, and generateName creates unique names", () => {
    const sim = createKubeSim();
    const a = sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "", generateName: "gen-" },
    });
    assert.match(a.metadata.name, /^gen-[0-9a-f]{5}$/);
    sim.patch("v1", "ConfigMap", a.metadata.name, "default", { data: { x: "1" } });
    assert.equal(errorOf(() => sim.update(a)).reason, "Conflict");
    assert.equal(
      errorOf(() =>
        sim.patch(
          "v1",
          "ConfigMap",
          a.metadata.name,
          "default",
          [{ op: "replace", path: "/metadata/name", value: "other" }],
          "json",
        ),
      ).code,
      400,
    );
  });

  it("validates label keys and values and the core fields of services", () => {
    const sim = createKubeSim();
    const bad = errorOf(() =>
      sim.create({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "c", labels: { "bad key": "v" } },
      }),
    );
    assert.equal(bad.code, 422);
    const svc = errorOf(() =>
      sim.create({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "1svc" },
        spec: { ports: [{ port: 70000 }] },
      }),
    );
    assert.match(svc.message, /metadata.name: Invalid value: "1svc": a DNS-1035 label/);
    assert.match(
      svc.message,
      /spec.ports\[0\].port: Invalid value: 70000: must be between 1 and 65535, inclusive/,
    );
  });

  it("lists with selectors in process and rejects malformed selectors with 400", () => {
    const sim = createKubeSim();
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "a", labels: { v: "3" } },
    });
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "b", labels: { v: "10" } },
    });
    assert.deepEqual(
      sim.list("v1", "ConfigMap", { labelSelector: "v>5" }).map((o) => o.metadata.name),
      ["b"],
    );
    assert.equal(
      errorOf(() => sim.list("v1", "ConfigMap", { labelSelector: "v in (a" })).code,
      400,
    );
    assert.equal(errorOf(() => sim.list("v1", "ConfigMap", { labelSelector: "=x" })).code, 400);
  });

  it("serves the versions a CRD gains on update, and refuses renaming its resource", () => {
    const sim = createKubeSim();
    const crd: KubeObject = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "things.example.com" },
      spec: {
        group: "example.com",
        scope: "Cluster",
        names: { plural: "things", kind: "Thing" },
        versions: [{ name: "v1", served: true, storage: true }],
      },
    };
    sim.create(crd);
    assert.equal(
      errorOf(() =>
        sim.create({ apiVersion: "example.com/v2", kind: "Thing", metadata: { name: "t" } }),
      ).code,
      404,
    );
    const spec = crd.spec as { versions: unknown[]; names: { plural: string } };
    sim.update({
      ...crd,
      spec: { ...spec, versions: [...spec.versions, { name: "v2", served: true, storage: false }] },
    });
    const t = sim.create({ apiVersion: "example.com/v2", kind: "Thing", metadata: { name: "t" } });
    assert.equal(t.metadata.namespace, undefined, "cluster-scoped");
    assert.equal(sim.get("example.com/v1", "Thing", "t").apiVersion, "example.com/v1");
    const renamed = errorOf(() =>
      sim.update({
        ...crd,
        metadata: { name: "things.example.com" },
        spec: { ...spec, names: { plural: "stuff", kind: "Thing" } },
      }),
    );
    assert.equal(renamed.code, 422);
  });

  it("serves events.k8s.io/v1 events beside core v1 events", () => {
    const sim = createKubeSim();
    sim.create({
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: "e1" },
      eventTime: "2026-01-01T00:00:00.000000Z",
      reason: "Applied",
      note: "rendered 3 objects",
      type: "Normal",
      action: "Apply",
      reportingController: "isthmus.dev/agent",
      reportingInstance: "agent-0",
      regarding: { kind: "ServiceEntry", name: "payments", namespace: "default" },
    });
    assert.deepEqual(
      sim.list("events.k8s.io/v1", "Event").map((e) => e.reason),
      ["Applied"],
    );
  });

  it("rejects kinds it does not serve with the REST mapper's message", () => {
    const sim = createKubeSim();
    const e = errorOf(() =>
      sim.create({ apiVersion: "batch/v1", kind: "Job", metadata: { name: "d" } }),
    );
    assert.deepEqual([e.code, e.message], [404, 'no matches for kind "Job" in version "batch/v1"']);
  });
});

describe("kubesim Istio validation beyond the schema", () => {
  const istio = (kind: string, spec: unknown, group = "networking.istio.io"): KubeObject => ({
    apiVersion: `${group}/v1`,
    kind,
    metadata: { name: "x", namespace: "default" },
    spec,
  });
  const causes = (obj: KubeObject) => {
    try {
      createKubeSim().create(obj);
    } catch (err: unknown) {
      const e = err as {
        status: { code: number; details: { causes: { field: string; message: string }[] } };
      };
      assert.equal(e.status.code, 422);
      return e.status.details.causes.map((c) => `${c.field}: ${c.message}`);
    }
    return [];
  };

  it("checks what Istio's webhook checks for the kinds Isthmus writes", () => {
    assert.deepEqual(
      causes(istio("ServiceEntry", { hosts: ["*"], ports: [{ number: 70000, name: "p" }] })),
      [
        'spec.hosts[0]: Invalid value: "*": a ServiceEntry host cannot be the bare wildcard *',
        "spec.ports[0].number: Invalid value: 70000: port number must be in the range 1..65535",
      ],
    );
    assert.deepEqual(causes(istio("Gateway", { selector: { istio: "x" } })), [
      "spec.servers: Required value: gateway must have at least one server",
    ]);
    assert.deepEqual(
      causes(
        istio("Gateway", {
          servers: [{ port: { number: 0, name: "p", protocol: "TLS" }, hosts: [] }],
        }),
      ),
      [
        "spec.servers[0].hosts: Required value: server config must contain at least one host",
        "spec.servers[0].port.number: Invalid value: 0: port number must be in the range 1..65535",
      ],
    );
    assert.deepEqual(causes(istio("VirtualService", { gateways: ["g"] })), [
      'spec.gateways: Invalid value: "array": delegate virtual service must have no gateways specified',
    ]);
    assert.deepEqual(
      causes(istio("VirtualService", {})),
      [],
      "a delegate virtual service is valid",
    );
    assert.deepEqual(causes(istio("WorkloadEntry", { labels: { app: "a" } })), [
      "spec.address: Required value: address is required unless network is set",
    ]);
    assert.deepEqual(causes(istio("WorkloadEntry", { network: "n2" })), []);
    assert.deepEqual(
      causes(istio("AuthorizationPolicy", { action: "DENY" }, "security.istio.io")),
      [],
    );
  });
});

describe("kubesim server-side apply input checks", () => {
  it("refuses an apply whose apiVersion or kind does not match the URL's resource", async () => {
    const sim = await startKubeSim();
    try {
      const apply = (body: unknown) =>
        fetch(`${sim.url}/api/v1/namespaces/default/configmaps/c?fieldManager=m`, {
          method: "PATCH",
          headers: { "Content-Type": "application/apply-patch+yaml" },
          body: JSON.stringify(body),
        });
      const wrongKind = await apply({ apiVersion: "v1", kind: "Secret", metadata: { name: "c" } });
      assert.equal(wrongKind.status, 400);
      const wrongGroup = await apply({
        apiVersion: "apps/v1",
        kind: "ConfigMap",
        metadata: { name: "c" },
      });
      assert.equal(wrongGroup.status, 400);
      const ok = await apply({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "c" },
        data: { a: "1" },
      });
      assert.equal(ok.status, 201);
      assert.deepEqual(((await ok.json()) as { data: unknown }).data, { a: "1" });
    } finally {
      await sim.close();
    }
  });
});
