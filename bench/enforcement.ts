// Enforcement benchmark: what the policy benchmark's scene (100 clusters × 1,000 services)
// puts into each cluster once every intent is rendered by the agent's renderer — objects per
// cluster, the AuthorizationPolicies among them (the default DENY of other trust domains
// apart), bytes of JSON per cluster, the time to render a cluster — and the mesh model's time
// to index the whole scene and to judge one connection against explain (sampled pairs, every
// mismatch counted). `npm run bench -- enforcement [--smoke]`; ISTHMUS_BENCH_VERBOSE=1 prints
// each mismatch.
import {
  endpointsOf,
  expandDefaultAccess,
  type LocalFacts,
  type LocalServiceEndpoints,
  renderIntent,
} from "@isthmus/agent";
import type { KubeObject } from "@isthmus/kubesim";
import { buildMesh } from "@isthmus/mesh-model";
import { createRandom } from "@isthmus/model";
import { createPolicyEngine, freezePolicy, type PolicyEngine } from "@isthmus/policy";
import { type ImportBackend, isEnforceableService } from "@isthmus/proto";
import { decisionOf, judge } from "../test/mesh-model/differential.js";
import { benchSeed, type Figure } from "./harness.js";
import { clusterObjects } from "./lib/kube-scene.js";
import { buildScene, catalogChanges, FULL, type SceneSize } from "./policy.js";

const SMOKE: SceneSize = {
  ...FULL,
  clusters: 5,
  servicesPerCluster: 40,
  logicalServices: 80,
  namespaces: 5,
  identitiesPerCluster: 20,
  accountsPerNamespace: 6,
  rules: 20,
};

type Rendered = ReturnType<typeof renderIntent>["objects"][number];
/**
 * Local facts of a bench cluster as its agent sees them: each Service's EndpointSlices read by
 * the agent's own `endpointsOf`.
 */
function factsOf(
  engine: PolicyEngine,
  clusterId: string,
  objects: readonly KubeObject[],
): LocalFacts {
  const cluster = engine.catalog.cluster(clusterId)!;
  const key = (o: KubeObject) => `${o.metadata.namespace}/${o.metadata.name}`;
  const slices = new Map<string, KubeObject[]>();
  for (const o of objects) {
    if (o.kind !== "EndpointSlice") continue;
    const service = `${o.metadata.namespace}/${o.metadata.labels?.["kubernetes.io/service-name"]}`;
    slices.set(service, [...(slices.get(service) ?? []), o]);
  }
  const endpoints = new Map<string, LocalServiceEndpoints>();
  for (const o of objects) {
    if (o.kind !== "Service") continue;
    const ports = (o.spec as { ports: Parameters<typeof endpointsOf>[2] }).ports;
    const found = (slices.get(key(o)) ?? []) as unknown as Parameters<typeof endpointsOf>[0];
    endpoints.set(key(o), endpointsOf(found, true, ports));
  }
  return {
    clusterId,
    trustDomain: cluster.trustDomain,
    network: cluster.network,
    locality: cluster.locality,
    endpoints: (ns, name) => endpoints.get(`${ns}/${name}`),
  };
}

interface ClusterObjects {
  rendered: Rendered[];
  policies: number;
  defaultDeny: number;
  bytes: number;
  defaultDenyBytes: number;
  renderMs: number;
}

function renderCluster(
  engine: PolicyEngine,
  clusterId: string,
  objects: readonly KubeObject[],
): ClusterObjects {
  // What the agent's cache lists as covered by the DefaultAccessIntent: its Services in the
  // mesh with a selector.
  const targets = new Map<string, Readonly<Record<string, string>>>();
  for (const { service: s } of engine.catalog.servicesIn(clusterId).values()) {
    if (isEnforceableService(s)) targets.set(`${s.namespace}/${s.name}`, s.selector);
  }
  const intents = expandDefaultAccess(engine.intents(clusterId).values(), targets);
  const facts = factsOf(engine, clusterId, objects);
  const backends = new Map<string, ImportBackend[]>();
  for (const i of intents) {
    if (i.kind.case !== "importBackendIntent" || i.kind.value.backend === undefined) continue;
    const key = `${i.kind.value.namespace}/${i.kind.value.service}`;
    backends.set(key, [...(backends.get(key) ?? []), i.kind.value.backend]);
  }
  const out: ClusterObjects = {
    rendered: [],
    policies: 0,
    defaultDeny: 0,
    bytes: 0,
    defaultDenyBytes: 0,
    renderMs: 0,
  };
  const start = performance.now();
  for (const i of intents) {
    const extra =
      i.kind.case === "importIntent"
        ? (backends.get(`${i.kind.value.namespace}/${i.kind.value.service}`) ?? [])
        : [];
    out.rendered.push(...renderIntent(i, facts, extra).objects);
  }
  out.renderMs = performance.now() - start;
  for (const o of out.rendered) {
    const bytes = JSON.stringify(o).length;
    out.bytes += bytes;
    if (o.kind !== "AuthorizationPolicy") continue;
    out.policies++;
    const rules = (o.spec as { rules: { from?: { source?: { notPrincipals?: string[] } }[] }[] })
      .rules;
    if (rules.some((r) => r.from?.[0]?.source?.notPrincipals !== undefined)) {
      out.defaultDeny++;
      out.defaultDenyBytes += bytes;
    }
  }
  return out;
}

/** Sampled connections judged by the model against explain: the time of each, mismatches. */
function judgeSample(
  engine: PolicyEngine,
  scene: ReturnType<typeof buildScene>,
  inputs: { id: string; objects: readonly unknown[] }[],
  count: number,
) {
  const start = performance.now();
  const mesh = buildMesh(inputs as never);
  const buildMs = performance.now() - start;
  const r = createRandom(benchSeed() + 7);
  const judged: number[] = [];
  let mismatches = 0;
  for (let i = 0; i < count; i++) {
    const src = r.pick(scene.clusters);
    const id = r.pick(scene.identities.get(src.id)!);
    const dst = r.pick(scene.clusters);
    const svc = r.pick((scene.services.get(dst.id) ?? []).filter((s) => s.inMesh));
    const port = r.pick(svc.ports).port;
    const decided = decisionOf(
      engine.explain(
        { clusterId: src.id, namespace: id.namespace, serviceAccount: id.serviceAccount },
        { clusterId: dst.id, namespace: svc.namespace, service: svc.name, port },
      ),
    );
    if (decided === undefined) continue;
    const caller = { cluster: src.id, namespace: id.namespace, serviceAccount: id.serviceAccount };
    const target = { cluster: dst.id, namespace: svc.namespace, service: svc.name, port };
    const t = performance.now();
    const m = judge(mesh, 0, caller, target, decided);
    judged.push((performance.now() - t) * 1000);
    if (m === undefined) continue;
    mismatches++;
    if (process.env.ISTHMUS_BENCH_VERBOSE) console.error(m);
  }
  return { buildMs, judged, mismatches };
}

export default async function run({ smoke }: { smoke: boolean }): Promise<Figure[]> {
  const size = smoke ? SMOKE : FULL;
  const scene = buildScene(size, benchSeed());
  for (const p of scene.policies) freezePolicy(p);
  const engine = createPolicyEngine();
  engine.setPolicies(scene.policies);
  engine.applyCatalog(catalogChanges(scene));
  // Every cluster's own objects and what its agent renders into it.
  const trustDomains = scene.clusters.map((c) => c.trustDomain);
  const base = scene.clusters.map((c, i) =>
    clusterObjects(
      c,
      i,
      (scene.services.get(c.id) ?? []).filter((s) => s.inMesh),
      scene.identities.get(c.id) ?? [],
      trustDomains,
    ),
  );
  const per = scene.clusters.map((c, i) => renderCluster(engine, c.id, base[i]!));
  const pick = (f: (c: ClusterObjects) => number) => per.map(f);
  const inputs = scene.clusters.map((c, i) => ({
    id: c.id,
    objects: [...base[i]!, ...per[i]!.rendered],
  }));
  const model = judgeSample(engine, scene, inputs, smoke ? 200 : 2000);
  return [
    { name: "objects per cluster", unit: "count", samples: pick((c) => c.rendered.length) },
    { name: "AuthorizationPolicies per cluster", unit: "count", samples: pick((c) => c.policies) },
    {
      name: "of which default DENY of other trust domains",
      unit: "count",
      samples: pick((c) => c.defaultDeny),
      reference: "AuthorizationPolicies per cluster",
    },
    { name: "JSON per cluster", unit: "KiB", samples: pick((c) => c.bytes / 1024) },
    {
      name: "of which the default DENY policies",
      unit: "KiB",
      samples: pick((c) => c.defaultDenyBytes / 1024),
      reference: "JSON per cluster",
    },
    { name: "render a cluster's intents", unit: "ms", samples: pick((c) => c.renderMs) },
    { name: "model: index every cluster's objects", unit: "ms", samples: [model.buildMs] },
    { name: "model: judge one connection", unit: "µs", samples: model.judged },
    {
      name: "model: mismatches in the judged connections",
      unit: "count",
      samples: [model.mismatches],
    },
  ];
}
