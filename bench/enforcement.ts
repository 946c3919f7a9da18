// Enforcement benchmark: what the policy benchmark's scene (100 clusters × 1,000 services)
// puts into each cluster once every intent is rendered by the agent's renderer — objects per
// cluster, the AuthorizationPolicies among them (the default DENY of other trust domains
// apart), bytes of JSON per cluster — and the time to render a cluster.
// `npm run bench -- enforcement [--smoke]`.

import type { LocalFacts, LocalServiceEndpoints } from "@isthmus/agent";
import { renderIntent } from "@isthmus/agent";
import { createPolicyEngine, freezePolicy, type PolicyEngine } from "@isthmus/policy";
import type { ImportBackend } from "@isthmus/proto";
import { benchSeed, type Figure } from "./harness.js";
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

/** Local facts of a bench cluster: every catalog service with fake pod IPs, ports known. */
function factsOf(engine: PolicyEngine, clusterId: string): LocalFacts {
  const cluster = engine.catalog.cluster(clusterId)!;
  const endpoints = new Map<string, LocalServiceEndpoints>();
  let n = 0;
  for (const rec of engine.catalog.servicesIn(clusterId).values()) {
    const s = rec.service;
    const podPorts: Record<number, number> = {};
    const targetPorts: Record<string, number> = {};
    for (const p of s.ports) {
      podPorts[p.port] = Number(p.targetPort) || p.port;
      targetPorts[p.name] = podPorts[p.port]!;
    }
    const addresses = Array.from(
      { length: s.readyEndpoints },
      () => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n++ & 255}`,
    );
    endpoints.set(`${s.namespace}/${s.name}`, {
      addresses,
      targetPorts,
      inMesh: s.inMesh,
      podPorts,
      podPortsKnown: true,
    });
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
  objects: number;
  policies: number;
  defaultDeny: number;
  bytes: number;
  defaultDenyBytes: number;
  renderMs: number;
}

function renderCluster(engine: PolicyEngine, clusterId: string): ClusterObjects {
  const intents = [...engine.intents(clusterId).values()];
  const facts = factsOf(engine, clusterId);
  const backends = new Map<string, ImportBackend[]>();
  for (const i of intents) {
    if (i.kind.case !== "importBackendIntent" || i.kind.value.backend === undefined) continue;
    const key = `${i.kind.value.namespace}/${i.kind.value.service}`;
    backends.set(key, [...(backends.get(key) ?? []), i.kind.value.backend]);
  }
  const out: ClusterObjects = {
    objects: 0,
    policies: 0,
    defaultDeny: 0,
    bytes: 0,
    defaultDenyBytes: 0,
    renderMs: 0,
  };
  const start = performance.now();
  for (const i of intents) {
    const v = i.kind.value;
    const extra =
      i.kind.case === "importIntent" ? (backends.get(`${v?.namespace}/${v?.service}`) ?? []) : [];
    for (const o of renderIntent(i, facts, extra).objects) {
      const bytes = JSON.stringify(o).length;
      out.objects++;
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
  }
  out.renderMs = performance.now() - start;
  return out;
}

export default async function run({ smoke }: { smoke: boolean }): Promise<Figure[]> {
  const size = smoke ? SMOKE : FULL;
  const scene = buildScene(size, benchSeed());
  for (const p of scene.policies) freezePolicy(p);
  const engine = createPolicyEngine();
  engine.setPolicies(scene.policies);
  engine.applyCatalog(catalogChanges(scene));
  const per = scene.clusters.map((c) => renderCluster(engine, c.id));
  const pick = (f: (c: ClusterObjects) => number) => per.map(f);
  return [
    { name: "objects per cluster", unit: "count", samples: pick((c) => c.objects) },
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
  ];
}
