import { createRandom, type Random } from "@isthmus/model";
import {
  type CatalogChange,
  type ClusterFacts,
  createPolicyEngine,
  type PolicyEngine,
} from "@isthmus/policy";
import {
  type ConnectionPolicy,
  Decision,
  type Service,
  type WorkloadIdentity,
} from "@isthmus/proto";
import { cluster, identity, policy, service } from "./fixtures.js";

const CLUSTERS = ["c1", "c2", "c3", "c4"];
const NAMESPACES = ["a", "b", "c"];
const NAMES = ["s1", "s2", "s3", "s4"];
const ACCOUNTS = ["s1", "s2", "s3", "s4", "x"];
const PORTS = [80, 8080, 9090];

function subset<T>(r: Random, items: readonly T[], p: number): T[] {
  return items.filter(() => r.chance(p));
}

function randomCluster(r: Random, id: string): ClusterFacts {
  const facts = cluster(id, {
    labels: r.chance(0.8) ? { env: r.pick(["prod", "dev"]), region: r.pick(["eu", "us"]) } : {},
    trustDomain: r.chance(0.3) ? "shared.mesh" : `${id}.mesh`,
    network: r.pick(["n1", "n2", `net-${id}`]),
  });
  if (r.chance(0.2)) facts.gateways = [];
  return facts;
}

function randomService(r: Random): Service {
  return service(r.pick(NAMESPACES), r.pick(NAMES), {
    ports: subset(r, PORTS, 0.5),
    serviceAccounts: subset(r, ACCOUNTS, 0.35),
    selector: r.chance(0.9) ? { app: r.pick(NAMES) } : {},
    inMesh: r.chance(0.9),
    readyEndpoints: r.int(4),
  });
}

function randomIdentity(r: Random): WorkloadIdentity {
  const sets: Record<string, string>[] = [];
  const n = r.int(3);
  for (let i = 0; i < n; i++) {
    sets.push(
      r.chance(0.7)
        ? { app: r.pick(ACCOUNTS), tier: r.pick(["front", "back"]) }
        : { app: r.pick(ACCOUNTS) },
    );
  }
  return identity(r.pick(NAMESPACES), r.pick(ACCOUNTS), sets);
}

function names(r: Random, items: readonly string[], globs: readonly string[]): string[] {
  const out = subset(r, items, 0.3);
  if (r.chance(0.2)) out.push(r.pick(globs));
  return out.length > 0 ? out : [r.pick(items)];
}

function randomPolicy(r: Random, name: string): ConnectionPolicy {
  const from = [];
  for (let i = 0, n = 1 + r.int(2); i < n; i++) {
    const s: Record<string, unknown> = {};
    if (r.chance(0.4)) s.clusters = names(r, CLUSTERS, ["c*", "c[12]", "*"]);
    if (r.chance(0.2)) s.clusterLabels = { env: r.pick(["prod", "dev"]) };
    if (r.chance(0.5)) s.namespaces = names(r, NAMESPACES, ["*", "[ab]"]);
    if (r.chance(0.2)) s.services = names(r, NAMES, ["s*"]);
    if (r.chance(0.3)) s.serviceAccounts = names(r, ACCOUNTS, ["s?"]);
    if (r.chance(0.3))
      s.workloadLabels = r.chance(0.5)
        ? { tier: r.pick(["front", "back"]) }
        : { app: r.pick(ACCOUNTS) };
    if (Object.keys(s).length === 0) s.clusters = ["*"];
    from.push(s);
  }
  const to = [];
  for (let i = 0, n = 1 + r.int(2); i < n; i++) {
    const d: Record<string, unknown> = {};
    if (r.chance(0.4)) d.clusters = names(r, CLUSTERS, ["c*", "c[34]"]);
    if (r.chance(0.2)) d.clusterLabels = { region: r.pick(["eu", "us"]) };
    if (r.chance(0.5)) d.namespaces = names(r, NAMESPACES, ["*"]);
    if (r.chance(0.4)) d.services = names(r, NAMES, ["s[12]"]);
    if (r.chance(0.3)) d.ports = subset(r, PORTS, 0.5).concat([r.pick(PORTS)]);
    if (Object.keys(d).length === 0) d.clusters = ["*"];
    to.push(d);
  }
  return policy(name, r.int(4) * 10, r.chance(0.6) ? "ALLOW" : "DENY", from, to);
}

/** A random policy set of up to `max` rules. */
export function randomPolicies(r: Random, max = 6): ConnectionPolicy[] {
  const out: ConnectionPolicy[] = [];
  for (let i = 0, n = r.int(max + 1); i < n; i++)
    out.push(randomPolicy(r, `rule-${r.int(8)}-${i}`));
  return out;
}

/** What the engine under test was told, to rebuild it from scratch. */
export interface Truth {
  defaults: { sameCluster: Decision; crossCluster: Decision };
  policies: ConnectionPolicy[];
  clusters: Map<
    string,
    {
      facts: ClusterFacts;
      services: Map<string, Service>;
      identities: Map<string, WorkloadIdentity>;
    }
  >;
}

export function emptyTruth(): Truth {
  return {
    defaults: { sameCluster: Decision.ALLOW, crossCluster: Decision.DENY },
    policies: [],
    clusters: new Map(),
  };
}

/** One random step: a catalog batch, a policy set or new defaults. */
export type Step =
  | { kind: "catalog"; changes: CatalogChange[] }
  | { kind: "policies"; policies: ConnectionPolicy[] }
  | { kind: "defaults"; defaults: { sameCluster: Decision; crossCluster: Decision } };

function applyToTruth(t: Truth, c: CatalogChange): void {
  switch (c.kind) {
    case "cluster": {
      const e = t.clusters.get(c.cluster.id);
      if (e) e.facts = c.cluster;
      else
        t.clusters.set(c.cluster.id, {
          facts: c.cluster,
          services: new Map(),
          identities: new Map(),
        });
      return;
    }
    case "cluster-removed":
      t.clusters.delete(c.clusterId);
      return;
    case "service":
      t.clusters
        .get(c.clusterId)!
        .services.set(`${c.service.namespace}/${c.service.name}`, c.service);
      return;
    case "service-removed":
      t.clusters.get(c.clusterId)?.services.delete(`${c.namespace}/${c.name}`);
      return;
    case "identity":
      t.clusters
        .get(c.clusterId)!
        .identities.set(`${c.identity.namespace}/${c.identity.serviceAccount}`, c.identity);
      return;
    case "identity-removed":
      t.clusters.get(c.clusterId)?.identities.delete(`${c.namespace}/${c.serviceAccount}`);
      return;
    case "cluster-services-replaced": {
      const e = t.clusters.get(c.clusterId)!;
      e.services = new Map(c.services.map((s) => [`${s.namespace}/${s.name}`, s]));
      e.identities = new Map(c.identities.map((i) => [`${i.namespace}/${i.serviceAccount}`, i]));
      return;
    }
  }
}

function randomChange(r: Random, t: Truth): CatalogChange {
  const known = [...t.clusters.keys()];
  const roll = r.next();
  if (known.length === 0 || roll < 0.1) {
    return { kind: "cluster", cluster: randomCluster(r, r.pick(CLUSTERS)) };
  }
  const id = r.pick(known);
  const e = t.clusters.get(id)!;
  if (roll < 0.14) return { kind: "cluster-removed", clusterId: id };
  if (roll < 0.18) {
    const facts = { ...e.facts, labels: { ...e.facts.labels } };
    if (r.chance(0.5)) facts.labels.env = r.pick(["prod", "dev"]);
    else facts.trustDomain = r.chance(0.5) ? "shared.mesh" : `${id}.mesh`;
    return { kind: "cluster", cluster: facts };
  }
  if (roll < 0.2) {
    return {
      kind: "cluster-services-replaced",
      clusterId: id,
      services: Array.from({ length: r.int(5) }, () => randomService(r)),
      identities: Array.from({ length: r.int(5) }, () => randomIdentity(r)),
    };
  }
  if (roll < 0.5) return { kind: "service", clusterId: id, service: randomService(r) };
  if (roll < 0.6) {
    const s =
      r.chance(0.7) && e.services.size > 0 ? r.pick([...e.services.values()]) : randomService(r);
    return { kind: "service-removed", clusterId: id, namespace: s.namespace, name: s.name };
  }
  if (roll < 0.9) return { kind: "identity", clusterId: id, identity: randomIdentity(r) };
  const i =
    r.chance(0.7) && e.identities.size > 0 ? r.pick([...e.identities.values()]) : randomIdentity(r);
  return {
    kind: "identity-removed",
    clusterId: id,
    namespace: i.namespace,
    serviceAccount: i.serviceAccount,
  };
}

/** A random step, recorded into the truth. */
export function randomStep(r: Random, t: Truth): Step {
  const roll = r.next();
  if (roll < 0.15) {
    const policies =
      r.chance(0.5) && t.policies.length > 0 ? mutatePolicies(r, t.policies) : randomPolicies(r);
    t.policies = policies;
    return { kind: "policies", policies };
  }
  if (roll < 0.18) {
    const defaults = {
      sameCluster: r.chance(0.8) ? Decision.ALLOW : Decision.DENY,
      crossCluster: r.chance(0.8) ? Decision.DENY : Decision.ALLOW,
    };
    t.defaults = defaults;
    return { kind: "defaults", defaults };
  }
  const changes: CatalogChange[] = [];
  for (let i = 0, n = 1 + r.int(3); i < n; i++) {
    const c = randomChange(r, t);
    applyToTruth(t, c);
    changes.push(c);
  }
  return { kind: "catalog", changes };
}

function mutatePolicies(r: Random, current: ConnectionPolicy[]): ConnectionPolicy[] {
  const out = [...current];
  const i = r.int(out.length);
  const roll = r.next();
  if (roll < 0.3) out.splice(i, 1);
  else if (roll < 0.6) out[i] = { ...randomPolicy(r, out[i]!.name) };
  else if (roll < 0.8) out[i] = { ...out[i]!, description: `changed ${r.int(100)}` };
  else out.push(randomPolicy(r, `rule-new-${r.int(100)}`));
  const seen = new Set<string>();
  return out.filter((p) => !seen.has(p.name) && seen.add(p.name));
}

/** A fresh engine fed the truth in one go: the full recompute to compare against. */
export function engineFromTruth(t: Truth): PolicyEngine {
  const e = createPolicyEngine({ defaults: t.defaults, bulkThreshold: 0 });
  e.setPolicies(t.policies);
  const changes: CatalogChange[] = [];
  for (const c of t.clusters.values()) changes.push({ kind: "cluster", cluster: c.facts });
  for (const [id, c] of t.clusters) {
    for (const s of c.services.values())
      changes.push({ kind: "service", clusterId: id, service: s });
    for (const i of c.identities.values())
      changes.push({ kind: "identity", clusterId: id, identity: i });
  }
  e.applyCatalog(changes);
  return e;
}

export { createRandom };
