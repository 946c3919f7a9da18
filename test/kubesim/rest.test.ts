import assert from "node:assert/strict";
import { get as httpsGet } from "node:https";
import { createKubeSim } from "@isthmus/kubesim";
import type { Harness } from "./helpers.js";
import { startHarness, statusOf } from "./helpers.js";
import type { KubernetesObject } from "./k8s-client.js";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
} from "./k8s-client.js";

async function rejects(p: Promise<unknown>): Promise<ReturnType<typeof statusOf>> {
  try {
    await p;
  } catch (err: unknown) {
    return statusOf(err);
  }
  assert.fail("expected the request to fail");
}

const serviceEntry = (
  name: string,
  spec: Record<string, unknown> = {},
): KubernetesObject & { spec: Record<string, unknown> } => ({
  apiVersion: "networking.istio.io/v1",
  kind: "ServiceEntry",
  metadata: { name, namespace: "default" },
  spec: {
    hosts: [`${name}.example.com`],
    ports: [{ number: 443, name: "https", protocol: "TLS" }],
    resolution: "DNS",
    ...spec,
  },
});

describe("kubesim REST with client-node", () => {
  let h: Harness;
  let core: CoreV1Api;
  let objects: KubernetesObjectApi;

  beforeEach(async () => {
    h = await startHarness();
    core = h.kc.makeApiClient(CoreV1Api);
    objects = KubernetesObjectApi.makeApiClient(h.kc);
  });
  afterEach(() => h.close());

  it("creates, reads, updates and deletes with real metadata semantics", async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { name: "cfg", labels: { app: "a" } }, data: { k: "v" } },
    });
    assert.equal(created.kind, "ConfigMap");
    assert.match(created.metadata?.uid ?? "", /^[0-9a-f-]{36}$/);
    assert.match(created.metadata?.resourceVersion ?? "", /^\d+$/);
    assert.match(String(created.metadata?.creationTimestamp?.toISOString()), /Z$/);

    const read = await core.readNamespacedConfigMap({ name: "cfg", namespace: "default" });
    assert.deepEqual(read.data, { k: "v" });

    const updated = await core.replaceNamespacedConfigMap({
      name: "cfg",
      namespace: "default",
      body: { ...read, data: { k: "w" } },
    });
    assert.ok(Number(updated.metadata?.resourceVersion) > Number(read.metadata?.resourceVersion));

    const stale = await rejects(
      core.replaceNamespacedConfigMap({
        name: "cfg",
        namespace: "default",
        body: { ...read, data: { k: "x" } },
      }),
    );
    assert.equal(stale.code, 409);
    assert.equal(stale.reason, "Conflict");
    assert.match(stale.message, /the object has been modified/);

    const dup = await rejects(
      core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "cfg" } } }),
    );
    assert.deepEqual(
      { code: dup.code, reason: dup.reason, message: dup.message, details: dup.details },
      {
        code: 409,
        reason: "AlreadyExists",
        message: 'configmaps "cfg" already exists',
        details: { name: "cfg", group: "", kind: "configmaps" },
      },
    );

    const deleted = await core.deleteNamespacedConfigMap({ name: "cfg", namespace: "default" });
    assert.equal(
      deleted.status,
      "Success",
      "config maps answer a delete with a Status, as the real server",
    );
    assert.equal(deleted.details?.name, "cfg");
    assert.equal(deleted.details?.uid, created.metadata?.uid);
    const missing = await rejects(
      core.readNamespacedConfigMap({ name: "cfg", namespace: "default" }),
    );
    assert.deepEqual(
      [missing.code, missing.reason, missing.message],
      [404, "NotFound", 'configmaps "cfg" not found'],
    );
    const missingDelete = await rejects(
      core.deleteNamespacedConfigMap({ name: "cfg", namespace: "default" }),
    );
    assert.equal(missingDelete.code, 404);
  });

  it("lists across namespaces with label and field selectors and pages with limit/continue", async () => {
    await core.createNamespace({ body: { metadata: { name: "other" } } });
    for (const [ns, name, tier] of [
      ["default", "a", "web"],
      ["default", "b", "db"],
      ["other", "c", "web"],
      ["other", "d", "cache"],
    ] as const) {
      await core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name, labels: { tier, ...(name === "d" ? {} : { owned: "yes" }) } } },
      });
    }
    const names = (l: { items: { metadata?: { name?: string } }[] }) =>
      l.items.map((i) => i.metadata?.name);
    assert.deepEqual(names(await core.listConfigMapForAllNamespaces()), ["a", "b", "c", "d"]);
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ labelSelector: "tier=web" })),
      ["a", "c"],
    );
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ labelSelector: "tier==web" })),
      ["a", "c"],
    );
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ labelSelector: "tier!=web" })),
      ["b", "d"],
    );
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ labelSelector: "tier in (db,cache)" })),
      ["b", "d"],
    );
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ labelSelector: "tier notin (db,cache)" })),
      ["a", "c"],
    );
    assert.deepEqual(names(await core.listConfigMapForAllNamespaces({ labelSelector: "owned" })), [
      "a",
      "b",
      "c",
    ]);
    assert.deepEqual(names(await core.listConfigMapForAllNamespaces({ labelSelector: "!owned" })), [
      "d",
    ]);
    assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: "other" })), ["c", "d"]);
    assert.deepEqual(
      names(await core.listConfigMapForAllNamespaces({ fieldSelector: "metadata.name=b" })),
      ["b"],
    );
    assert.deepEqual(
      names(
        await core.listConfigMapForAllNamespaces({ fieldSelector: "metadata.namespace!=default" }),
      ),
      ["c", "d"],
    );
    const bad = await rejects(core.listConfigMapForAllNamespaces({ fieldSelector: "spec.foo=x" }));
    assert.deepEqual([bad.code, bad.reason], [400, "BadRequest"]);

    const page1 = await core.listConfigMapForAllNamespaces({ limit: 3 });
    assert.deepEqual(names(page1), ["a", "b", "c"]);
    assert.equal(page1.metadata?.remainingItemCount, 1);
    const page2 = await core.listConfigMapForAllNamespaces({
      limit: 3,
      _continue: String(page1.metadata?._continue),
    });
    assert.deepEqual(names(page2), ["d"]);
    assert.equal(page2.metadata?._continue, undefined);
    assert.equal(page2.metadata?.resourceVersion, page1.metadata?.resourceVersion);
  });

  it("validates names and requires the namespace to exist", async () => {
    const badName = await rejects(
      core.createNamespacedConfigMap({
        namespace: "default",
        body: { metadata: { name: "Bad_Name" } },
      }),
    );
    assert.equal(badName.code, 422);
    assert.equal(badName.reason, "Invalid");
    assert.match(
      badName.message,
      /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    );
    assert.deepEqual(
      ((badName.details?.causes ?? []) as { field: string }[])[0]?.field,
      "metadata.name",
    );

    const noNs = await rejects(
      core.createNamespacedConfigMap({ namespace: "nope", body: { metadata: { name: "x" } } }),
    );
    assert.deepEqual(
      [noNs.code, noNs.reason, noNs.message],
      [404, "NotFound", 'namespaces "nope" not found'],
    );

    const noContainers = await rejects(
      core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: "p" }, spec: { containers: [] } },
      }),
    );
    assert.equal(noContainers.code, 422);
    assert.match(noContainers.message, /spec.containers: Required value/);
  });

  it("rejects invalid Istio objects with 422 and field paths, like Istio's CRD schema", async () => {
    const bad = serviceEntry("bad", {
      hosts: "not-a-list",
      resolution: "SOMETIMES",
      ports: [{ number: "x", name: "p" }],
    });
    const status = await rejects(objects.create(bad));
    assert.equal(status.code, 422);
    assert.equal(status.reason, "Invalid");
    assert.deepEqual(status.details?.kind, "ServiceEntry");
    assert.deepEqual(status.details?.group, "networking.istio.io");
    const fields = ((status.details?.causes ?? []) as { field: string }[])
      .map((c) => c.field)
      .sort();
    assert.deepEqual(fields, ["spec.hosts", "spec.ports[0].number", "spec.resolution"]);
    const ok = await objects.create(serviceEntry("good"));
    assert.equal(ok.metadata?.generation, 1);
  });

  it("serves Istio kinds at every served version from one storage", async () => {
    await objects.create(serviceEntry("multi"));
    const custom = h.kc.makeApiClient(CustomObjectsApi);
    const beta = (await custom.getNamespacedCustomObject({
      group: "networking.istio.io",
      version: "v1beta1",
      namespace: "default",
      plural: "serviceentries",
      name: "multi",
    })) as { apiVersion: string; spec: { hosts: string[] } };
    assert.equal(beta.apiVersion, "networking.istio.io/v1beta1");
    assert.deepEqual(beta.spec.hosts, ["multi.example.com"]);
  });

  it("patches with JSON merge, JSON patch and strategic merge (415 for custom resources)", async () => {
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "p", labels: { a: "1", b: "2" } },
        spec: {
          containers: [
            { name: "app", image: "img:1" },
            { name: "side", image: "side:1" },
          ],
        },
      },
    });
    const merged = await objects.patch(
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "p", namespace: "default", labels: { a: null, c: "3" } },
      } as unknown as KubernetesObject,
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
    assert.deepEqual(merged.metadata?.labels, { b: "2", c: "3" });

    const strategic = (await objects.patch({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "default" },
      spec: { containers: [{ name: "app", image: "img:2" }] },
    } as KubernetesObject)) as unknown as {
      spec: { containers: { name: string; image: string }[] };
    };
    assert.deepEqual(
      strategic.spec.containers.map((c) => `${c.name}=${c.image}`),
      ["app=img:2", "side=side:1"],
    );

    const jsonPatched = await core.patchNamespacedPod({
      name: "p",
      namespace: "default",
      body: [
        { op: "test", path: "/metadata/labels/b", value: "2" },
        { op: "replace", path: "/metadata/labels/b", value: "9" },
        { op: "add", path: "/metadata/annotations", value: { x: "y" } },
      ],
    });
    assert.deepEqual(jsonPatched.metadata?.labels, { b: "9", c: "3" });
    assert.deepEqual(jsonPatched.metadata?.annotations, { x: "y" });
    const failedTest = await rejects(
      core.patchNamespacedPod({
        name: "p",
        namespace: "default",
        body: [{ op: "test", path: "/metadata/labels/b", value: "2" }],
      }),
    );
    assert.equal(failedTest.code, 422);

    await objects.create(serviceEntry("se"));
    const smp = await rejects(
      objects.patch({
        ...serviceEntry("se"),
        spec: { hosts: ["x.example.com"] },
      } as KubernetesObject),
    );
    assert.deepEqual([smp.code, smp.reason], [415, "UnsupportedMediaType"]);
  });

  it("applies server-side: create-or-merge, field ownership, conflicts and force", async () => {
    const apply = (obj: object, manager: string, force = false) =>
      objects.patch(
        obj as KubernetesObject,
        undefined,
        undefined,
        manager,
        force,
        PatchStrategy.ServerSideApply,
      );
    const se = serviceEntry("ssa");
    const created = await apply(se, "agent");
    assert.equal(created.metadata?.name, "ssa");
    const again = await apply(se, "agent");
    assert.equal(
      again.metadata?.resourceVersion,
      created.metadata?.resourceVersion,
      "re-applying the same config is a no-op",
    );

    const other = { ...se, spec: { ...se.spec, resolution: "STATIC" } };
    const conflict = await rejects(apply(other, "intruder"));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.reason, "Conflict");
    assert.match(
      conflict.message,
      /Apply failed with 1 conflict: conflict with "agent": \.spec\.resolution/,
    );
    assert.deepEqual(conflict.details?.causes, [
      {
        reason: "FieldManagerConflict",
        message: 'conflict with "agent"',
        field: ".spec.resolution",
      },
    ]);

    const forced = (await apply(other, "intruder", true)) as unknown as {
      spec: { resolution: string };
    };
    assert.equal(forced.spec.resolution, "STATIC");

    const back = await rejects(apply(se, "agent"));
    assert.equal(back.code, 409, "the agent now conflicts on the field the intruder took");

    // The agent stops managing resolution, adds exportTo, then drops it: exportTo is removed.
    const { resolution: _r, ...withoutResolution } = se.spec;
    const agentOnly = { ...se, spec: withoutResolution };
    await apply({ ...agentOnly, spec: { ...withoutResolution, exportTo: ["."] } }, "agent");
    const pruned = (await apply(agentOnly, "agent")) as unknown as {
      spec: Record<string, unknown>;
    };
    assert.equal(pruned.spec.exportTo, undefined);
    assert.equal(pruned.spec.resolution, "STATIC", "fields owned by another manager stay");

    const noManager = await rejects(apply(se, ""));
    assert.deepEqual([noManager.code, noManager.reason], [422, "Invalid"]);
  });

  it("bumps generation on spec changes only, and writes status through /status", async () => {
    const custom = h.kc.makeApiClient(CustomObjectsApi);
    await objects.create(serviceEntry("gen"));
    const withLabel = await objects.patch(
      {
        ...serviceEntry("gen"),
        metadata: { name: "gen", namespace: "default", labels: { x: "1" } },
      } as KubernetesObject,
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
    assert.equal(withLabel.metadata?.generation, 1);
    const withSpec = await objects.patch(
      {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: "gen", namespace: "default" },
        spec: { resolution: "STATIC" },
        status: { ignored: true },
      } as KubernetesObject,
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
    assert.equal(withSpec.metadata?.generation, 2);
    assert.equal(
      (withSpec as { status?: unknown }).status,
      undefined,
      "status is ignored on the main resource",
    );
    const current = (await custom.getNamespacedCustomObject({
      group: "networking.istio.io",
      version: "v1",
      namespace: "default",
      plural: "serviceentries",
      name: "gen",
    })) as Record<string, unknown>;
    const status = (await custom.replaceNamespacedCustomObjectStatus({
      group: "networking.istio.io",
      version: "v1",
      namespace: "default",
      plural: "serviceentries",
      name: "gen",
      body: {
        ...current,
        spec: { hosts: ["changed.example.com"] },
        status: { observedGeneration: 2 },
      },
    })) as { status: unknown; spec: { hosts: string[] }; metadata: { generation: number } };
    assert.deepEqual(status.status, { observedGeneration: 2 });
    assert.deepEqual(status.spec.hosts, ["gen.example.com"], "spec is ignored on /status");
    assert.equal(status.metadata.generation, 2);
  });

  it("registers CustomResourceDefinitions at run time", async () => {
    await objects.create({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com" },
      spec: {
        group: "example.com",
        scope: "Namespaced",
        names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: "object" } },
          },
        ],
      },
    } as KubernetesObject);
    const w = await objects.create({
      apiVersion: "example.com/v1",
      kind: "Widget",
      metadata: { name: "w1", namespace: "default" },
      spec: { size: 3 },
    } as KubernetesObject);
    assert.equal(w.metadata?.generation, 1);
    const list = await objects.list("example.com/v1", "Widget", "default");
    assert.deepEqual(
      list.items.map((i) => i.metadata?.name),
      ["w1"],
    );
    await objects.delete({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com" },
    } as KubernetesObject);
    assert.equal(
      h.sim.resourceTypes().some((t) => t.kind === "Widget"),
      false,
    );
  });

  it("requires the bearer token when one is configured, over HTTPS", async () => {
    const secure = await startHarness({ tls: true, token: "s3cret" });
    try {
      const api = secure.kc.makeApiClient(CoreV1Api);
      const list = await api.listNamespace();
      assert.ok(list.items.some((n) => n.metadata?.name === "istio-system"));
      const anonymous = await fetch(`${secure.sim.url}/api/v1/namespaces`).catch((e: unknown) => e);
      assert.ok(
        anonymous instanceof Error,
        "the self-signed CA is not trusted without the kubeconfig",
      );
      const wrong = new KubeConfig();
      wrong.loadFromString(secure.sim.kubeconfig().replace("token: s3cret", "token: wrong"));
      const denied = await wrong
        .makeApiClient(CoreV1Api)
        .listNamespace()
        .catch((e: unknown) => e);
      assert.equal((denied as { code?: number }).code, 401);
      const raw = await new Promise<{ code: number; body: string }>((resolve, reject) => {
        const req = httpsGet(
          `${secure.sim.url}/api/v1/namespaces`,
          { ca: secure.sim.caPem },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c.toString();
            });
            res.on("end", () => resolve({ code: res.statusCode ?? 0, body }));
          },
        );
        req.on("error", reject);
      });
      assert.equal(raw.code, 401);
      assert.deepEqual(JSON.parse(raw.body), {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
    } finally {
      await secure.close();
    }
  });

  it("offers the same operations in process, with Status errors", () => {
    const sim = createKubeSim();
    sim.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: { a: "1" } });
    assert.equal(sim.get("v1", "ConfigMap", "c", "default").data !== undefined, true);
    assert.throws(
      () => sim.get("v1", "ConfigMap", "zz", "default"),
      (e: Error & { code?: number }) => e.name === "KubeSimError" && e.code === 404,
    );
    assert.equal(sim.find("v1", "ConfigMap", "zz", "default"), undefined);
    sim.patch("v1", "ConfigMap", "c", "default", { data: { b: "2" } });
    assert.deepEqual(sim.get("v1", "ConfigMap", "c", "default").data, { a: "1", b: "2" });
    sim.delete("v1", "ConfigMap", "c", "default");
    assert.deepEqual(sim.list("v1", "ConfigMap", { namespace: "default" }), []);
  });
});
