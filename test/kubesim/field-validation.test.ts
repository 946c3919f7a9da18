import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseWorkload, sampleApp } from "@isthmus/kubesim";
import type { Harness } from "./helpers.js";
import { kubectl, startHarness, statusOf } from "./helpers.js";
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from "./k8s-client.js";

// A ServiceEntry with a typo a user makes: `endpoint:` for `endpoints:`.
const typo = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: payments
  namespace: default
spec:
  hosts: ["payments.example.com"]
  resolution: STATIC
  ports:
  - {number: 443, name: tls, protocol: TLS}
  endpoint:
  - address: 192.0.2.1
`;

describe("kubesim server-side field validation, namespaces and workloads", function () {
  this.timeout(60000);
  let h: Harness;
  let file: string;
  beforeEach(async () => {
    h = await startHarness();
    file = join(h.dir, "se.yaml");
    await writeFile(file, typo);
  });
  afterEach(() => h.close());

  const storedSpec = () =>
    h.sim.get("networking.istio.io/v1", "ServiceEntry", "payments", "default").spec as Record<
      string,
      unknown
    >;

  it("refuses an unknown field under kubectl's default --validate=strict, as the API server does", async () => {
    const res = await kubectl(h, ["apply", "-f", file]);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr.trim(),
      `Error from server (BadRequest): error when creating "${file}": ServiceEntry in version "v1" cannot be handled as a ServiceEntry: strict decoding error: unknown field "spec.endpoint"`,
    );
    assert.equal(h.sim.list("networking.istio.io/v1", "ServiceEntry").length, 0);
  });

  it("refuses it on server-side apply whatever the directive, with the typed patch message", async () => {
    for (const validate of ["strict", "ignore"]) {
      const res = await kubectl(h, [
        "apply",
        "--server-side",
        `--validate=${validate}`,
        "-f",
        file,
      ]);
      assert.equal(res.code, 1);
      assert.match(
        res.stderr,
        /failed to create typed patch object \(default\/payments; networking\.istio\.io\/v1, Kind=ServiceEntry\): \.spec\.endpoint: field not declared in schema/,
      );
    }
  });

  it("drops it with a warning under --validate=warn and silently under --validate=ignore", async () => {
    const warned = await kubectl(h, ["create", "--validate=warn", "-f", file]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.equal(warned.stderr.trim(), `Warning: unknown field "spec.endpoint"`);
    assert.equal(storedSpec().endpoint, undefined);
    assert.deepEqual(storedSpec().hosts, ["payments.example.com"]);

    await kubectl(h, ["delete", "-f", file]);
    const ignored = await kubectl(h, ["create", "--validate=ignore", "-f", file]);
    assert.equal(ignored.code, 0, ignored.stderr);
    assert.equal(ignored.stderr, "");
    assert.equal(storedSpec().endpoint, undefined);
  });

  it("checks nested fields and metadata in the patches of an existing object", async () => {
    await writeFile(file, typo.replace("  endpoint:", "  endpoints:"));
    assert.equal((await kubectl(h, ["apply", "-f", file])).code, 0);
    // kubectl apply of a changed file sends a merge patch with fieldValidation=Strict.
    await writeFile(
      file,
      typo.replace("  endpoint:", "  endpoints:").replace("name: tls", "nmae: tls"),
    );
    const applied = await kubectl(h, ["apply", "-f", file]);
    assert.equal(applied.code, 1);
    assert.match(applied.stderr, /strict decoding error: unknown field "spec\.ports\[0\]\.nmae"/);
    // kubectl patch sends no directive: the server's default, Warn.
    const patched = await kubectl(h, [
      "patch",
      "serviceentry",
      "payments",
      "--type=merge",
      "-p",
      '{"metadata":{"label":{"a":"b"}},"spec":{"location":"MESH_INTERNAL"}}',
    ]);
    assert.equal(patched.code, 0, patched.stderr);
    assert.equal(patched.stderr.trim(), 'Warning: unknown field "metadata.label"');
    assert.equal(storedSpec().location, "MESH_INTERNAL");
  });

  it("answers client-node the same: 400 under Strict, the object without the field under Warn", async () => {
    const api = h.kc.makeApiClient(CustomObjectsApi);
    const body = {
      apiVersion: "networking.istio.io/v1",
      kind: "ServiceEntry",
      metadata: { name: "payments" },
      spec: { hosts: ["payments.example.com"], endpoint: [{ address: "192.0.2.1" }] },
    };
    const target = {
      group: "networking.istio.io",
      version: "v1",
      namespace: "default",
      plural: "serviceentries",
      body,
    };
    await assert.rejects(
      api.createNamespacedCustomObject({ ...target, fieldValidation: "Strict" }),
      (err: unknown) => {
        const status = statusOf(err);
        assert.equal(status.code, 400);
        assert.equal(status.reason, "BadRequest");
        assert.match(status.message, /strict decoding error: unknown field "spec\.endpoint"$/);
        return true;
      },
    );
    const created = (await api.createNamespacedCustomObject(target)) as { spec: object };
    assert.deepEqual(created.spec, { hosts: ["payments.example.com"] });
    await assert.rejects(
      api.createNamespacedCustomObject({ ...target, fieldValidation: "Sometimes" }),
      (err: unknown) => statusOf(err).code === 400,
    );
  });

  it("labels every namespace with kubernetes.io/metadata.name, also after an update drops it", async () => {
    assert.equal((await kubectl(h, ["create", "namespace", "shop"])).code, 0);
    const core = h.kc.makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: "shop" });
    assert.equal(ns.metadata?.labels?.["kubernetes.io/metadata.name"], "shop");
    await core.replaceNamespace({
      name: "shop",
      body: { metadata: { name: "shop", labels: { team: "a" } } },
    });
    const after = await core.readNamespace({ name: "shop" });
    assert.deepEqual(after.metadata?.labels, { team: "a", "kubernetes.io/metadata.name": "shop" });
    const all = await core.listNamespace();
    for (const n of all.items) {
      assert.equal(n.metadata?.labels?.["kubernetes.io/metadata.name"], n.metadata?.name);
    }
  });

  it("runs a sample workload from a --workload spec: running pods, Endpoints and an EndpointSlice", async () => {
    h.sim.load(sampleApp(parseWorkload("shop/web,port=9090,replicas=3", 1)));
    const pods = await kubectl(h, ["get", "pods", "-n", "shop", "--no-headers"]);
    assert.equal(pods.code, 0, pods.stderr);
    assert.deepEqual(
      pods.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/).slice(0, 3)),
      [
        ["web-0", "Running", "10.244.1.10"],
        ["web-1", "Running", "10.244.1.11"],
        ["web-2", "Running", "10.244.1.12"],
      ],
    );
    const slices = await h.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: "shop",
      labelSelector: "kubernetes.io/service-name=web",
    });
    assert.equal(slices.items.length, 1);
    const [slice] = slices.items;
    assert.ok(slice !== undefined);
    assert.deepEqual(
      (slice.endpoints ?? []).map((e) => [e.addresses[0], e.conditions?.ready]),
      [
        ["10.244.1.10", true],
        ["10.244.1.11", true],
        ["10.244.1.12", true],
      ],
    );
    assert.deepEqual(
      slice.ports?.map((p) => p.port),
      [9090],
    );
  });

  it("refuses a workload spec it cannot read, naming the spec", () => {
    assert.throws(() => parseWorkload("web"), /workload "web": expected <namespace>\/<name>/);
    assert.throws(
      () => parseWorkload("shop/web,replicas=many"),
      /workload "shop\/web,replicas=many": "replicas=many" is not port=1\.\.65535/,
    );
  });
});
