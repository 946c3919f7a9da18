import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createKubeSim, istioScene, parseObjects, sampleApp } from "@isthmus/kubesim";
import { parse } from "yaml";
import type { Harness } from "./helpers.js";
import { startHarness } from "./helpers.js";
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from "./k8s-client.js";

describe("kubesim scenes and seeding", () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(() => h.close());

  it("istioScene: a multi-network Istio install as clients read it", async () => {
    h.sim.load(
      istioScene({
        clusterId: "east",
        network: "net-east",
        trustDomain: "east.example",
        eastWestAddress: "203.0.113.10",
        trustDomains: ["east.example", "west.example"],
        rootCertPem: "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n",
      }),
    );
    const core = h.kc.makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: "istio-system" });
    assert.equal(ns.metadata?.labels?.["topology.istio.io/network"], "net-east");

    const mesh = await core.readNamespacedConfigMap({ name: "istio", namespace: "istio-system" });
    const meshConfig = parse(mesh.data?.mesh ?? "") as {
      trustDomain: string;
      caCertificates: { pem: string; trustDomains: string[] }[];
    };
    assert.equal(meshConfig.trustDomain, "east.example");
    // The other clusters' trust domains are accepted under the shared root, not aliased.
    assert.deepEqual(meshConfig.caCertificates, [
      {
        pem: "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n",
        trustDomains: ["east.example", "west.example"],
      },
    ]);
    assert.equal((meshConfig as { trustDomainAliases?: unknown }).trustDomainAliases, undefined);
    const istiod = (await h.kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group: "apps",
      version: "v1",
      namespace: "istio-system",
      plural: "deployments",
      name: "istiod",
    })) as { spec: { template: { spec: { containers: { env: unknown[] }[] } } } };
    assert.deepEqual(istiod.spec.template.spec.containers[0]!.env, []);

    const gw = await core.readNamespacedService({
      name: "istio-eastwestgateway",
      namespace: "istio-system",
    });
    assert.equal(gw.spec?.type, "LoadBalancer");
    assert.deepEqual(gw.spec?.ports?.find((p) => p.name === "tls")?.port, 15443);
    assert.equal(gw.status?.loadBalancer?.ingress?.[0]?.ip, "203.0.113.10");
    assert.equal(gw.metadata?.labels?.istio, "eastwestgateway");
    assert.equal(gw.metadata?.labels?.["topology.istio.io/network"], "net-east");

    const custom = h.kc.makeApiClient(CustomObjectsApi);
    const gateway = (await custom.getNamespacedCustomObject({
      group: "networking.istio.io",
      version: "v1",
      namespace: "istio-system",
      plural: "gateways",
      name: "cross-network-gateway",
    })) as { spec: unknown };
    assert.deepEqual(gateway.spec, {
      selector: { istio: "eastwestgateway" },
      servers: [
        {
          port: { number: 15443, name: "tls", protocol: "TLS" },
          tls: { mode: "AUTO_PASSTHROUGH" },
          hosts: ["*.local"],
        },
      ],
    });
  });

  it("sampleApp: namespace, service account, service, ready pods and their EndpointSlice", async () => {
    h.sim.load(
      sampleApp({
        name: "reviews",
        namespace: "bookinfo",
        replicas: 3,
        port: 9080,
        podIpPrefix: "10.1.2",
        nodeName: "worker-a",
        region: "eu-west",
        zone: "eu-west-1a",
      }),
    );
    const core = h.kc.makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: "bookinfo" });
    assert.equal(ns.metadata?.labels?.["istio-injection"], "enabled");
    await core.readNamespacedServiceAccount({ name: "reviews", namespace: "bookinfo" });
    const svc = await core.readNamespacedService({ name: "reviews", namespace: "bookinfo" });
    assert.equal(svc.spec?.ports?.[0]?.port, 9080);
    assert.match(svc.spec?.clusterIP ?? "", /^10\.96\./);

    const pods = await core.listNamespacedPod({
      namespace: "bookinfo",
      labelSelector: "app=reviews",
    });
    assert.deepEqual(
      pods.items.map((p) => [p.metadata?.name, p.status?.podIP, p.spec?.serviceAccountName]),
      [
        ["reviews-0", "10.1.2.10", "reviews"],
        ["reviews-1", "10.1.2.11", "reviews"],
        ["reviews-2", "10.1.2.12", "reviews"],
      ],
    );
    const node = await core.readNode({ name: "worker-a" });
    assert.equal(node.metadata?.labels?.["topology.kubernetes.io/zone"], "eu-west-1a");
    assert.equal(node.metadata?.labels?.["topology.kubernetes.io/region"], "eu-west");
    for (const p of pods.items) {
      assert.equal(p.spec?.nodeName, "worker-a");
      assert.equal(p.status?.phase, "Running");
      assert.equal(p.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    }

    const slices = await h.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: "bookinfo",
      labelSelector: "kubernetes.io/service-name=reviews",
    });
    assert.equal(slices.items.length, 1);
    const slice = slices.items[0]!;
    assert.equal(slice.addressType, "IPv4");
    assert.deepEqual(
      (slice.endpoints ?? []).map((e) => [e.addresses[0], e.conditions?.ready, e.targetRef?.name]),
      [
        ["10.1.2.10", true, "reviews-0"],
        ["10.1.2.11", true, "reviews-1"],
        ["10.1.2.12", true, "reviews-2"],
      ],
    );
    assert.deepEqual(slice.ports?.[0]?.port, 9080);
  });

  it("loads multi-document YAML from strings and files, namespaces first, replacing existing objects", async () => {
    const yaml = `
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: late}
data: {v: "1"}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: late}
`;
    const loaded = h.sim.load(yaml);
    assert.deepEqual(
      loaded.map((o) => o.kind),
      ["Namespace", "ConfigMap"],
    );
    const file = join(h.dir, "seed.yaml");
    await writeFile(file, yaml.replace('v: "1"', 'v: "2"'));
    await h.sim.loadFile(file);
    assert.deepEqual(h.sim.get("v1", "ConfigMap", "c", "late").data, { v: "2" });

    const res = await fetch(`${h.sim.url}/kubesim/seed`, {
      method: "POST",
      body: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: posted}\n",
      headers: { "Content-Type": "application/yaml" },
    });
    assert.deepEqual(await res.json(), { ok: true, loaded: 1 });
    assert.ok(h.sim.find("v1", "ConfigMap", "posted", "default"));
  });

  it("refuses invalid seed objects with the reason", () => {
    const sim = createKubeSim();
    assert.throws(
      () =>
        sim.load([
          {
            apiVersion: "networking.istio.io/v1",
            kind: "Gateway",
            metadata: { name: "g" },
            spec: { servers: "no" },
          },
        ]),
      /Gateway.networking.istio.io "g" is invalid: spec.servers: Invalid value/,
    );
    assert.throws(() => parseObjects("a: [unclosed"), /invalid YAML/);
  });
});
