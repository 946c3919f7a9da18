import type { ClusterFacts, ServiceRecord } from "@isthmus/model";
import {
  type AccessIntent,
  type AccessRule,
  accessIntentName,
  DEFAULT_ACCESS_INTENT_NAME,
  type DefaultAccessIntent,
  type ExportIntent,
  type GatewayAddress,
  type ImportBackendIntent,
  type ImportIntent,
  type Intent,
  type ServicePort,
} from "@isthmus/proto";
import { Hash64 } from "./content-hash.js";

/**
 * Stable intent names, built with `join`: one flat string each (a template literal makes a
 * rope of 32 B per joint; the engine keeps a name per intent, 233k in the benchmark). The
 * AccessIntent's name is `accessIntentName` of @isthmus/proto, since agents make it too.
 */
export const importName = (ns: string, svc: string) => ["import", ns, svc].join("/");
export const importBackendName = (ns: string, svc: string, cluster: string) =>
  ["import", ns, svc, cluster].join("/");
export const exportName = (ns: string, svc: string) => ["export", ns, svc].join("/");
/** The one DefaultAccessIntent of a cluster. */
export const DEFAULT_ACCESS_NAME = DEFAULT_ACCESS_INTENT_NAME;

function copyPort(p: ServicePort): ServicePort {
  return {
    $typeName: "isthmus.v1.ServicePort",
    name: p.name,
    port: p.port,
    protocol: p.protocol,
    targetPort: p.targetPort,
    appProtocol: p.appProtocol,
  };
}

/** Ports of services, by number; the first service (in the given order) names a port. */
export function unionPorts(services: readonly ServiceRecord[]): ServicePort[] {
  const byPort = new Map<number, ServicePort>();
  for (const s of services) {
    for (const p of s.service.ports) if (!byPort.has(p.port)) byPort.set(p.port, copyPort(p));
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

/** The map with its keys in order: the map itself when they are (the catalog shares label
 * maps between clusters, and an intent then shares its service's). */
function sortedMap(map: Record<string, string>): Record<string, string> {
  const keys = Object.keys(map);
  if (keys.every((k, i) => i === 0 || keys[i - 1]! < k)) return map;
  const out: Record<string, string> = {};
  for (const k of Object.keys(map).sort()) out[k] = map[k]!;
  return out;
}

/** Intents versioned from their content alone (access intents: by `buildAccess`). */
type ContentKind = Exclude<Intent["kind"], { case: "accessIntent" }>;

/** A cluster's DefaultAccessIntent: what every service no AccessIntent names gets. */
export function buildDefaultAccess(allowLocalTrustDomain: boolean): Intent {
  const value: DefaultAccessIntent = {
    $typeName: "isthmus.v1.DefaultAccessIntent",
    allowLocalTrustDomain,
  };
  return intent(DEFAULT_ACCESS_NAME, { case: "defaultAccessIntent", value });
}

/**
 * The version of an intent's content: a hash of every field in a fixed order, lists and
 * maps as built (already sorted), each string introduced by its length. Same content, same
 * version.
 */
function versionOf(kind: ContentKind): string {
  const h = new Hash64();
  switch (kind.case) {
    case "importIntent": {
      const v = kind.value;
      h.str("import").str(v.namespace).str(v.service);
      hashPorts(h, v.ports);
      h.int(v.localBackend ? 1 : 0);
      break;
    }
    case "importBackendIntent": {
      const v = kind.value;
      h.str("backend").str(v.namespace).str(v.service);
      hashPorts(h, v.ports);
      const b = v.backend;
      if (b !== undefined) {
        h.str(b.clusterId).str(b.network).str(b.locality).int(b.weight).int(b.gateways.length);
        for (const g of b.gateways) h.str(g.address).int(g.port);
      }
      break;
    }
    case "exportIntent": {
      const v = kind.value;
      h.str("export").str(v.namespace).str(v.service);
      hashPorts(h, v.ports);
      h.int(v.importingClusters.length);
      for (const c of v.importingClusters) h.str(c);
      break;
    }
    case "defaultAccessIntent":
      h.str("default-access").int(kind.value.allowLocalTrustDomain ? 1 : 0);
      break;
  }
  return h.hex();
}

function hashPorts(h: Hash64, ps: ServicePort[]): void {
  h.int(ps.length);
  for (const p of ps)
    h.str(p.name).int(p.port).str(p.protocol).str(p.targetPort).str(p.appProtocol);
}

function intent(name: string, kind: ContentKind): Intent {
  return { $typeName: "isthmus.v1.Intent", name, version: versionOf(kind), kind };
}

/** Gateway lists by cluster facts: every backend of a cluster shares one. */
const gatewaysByFacts = new WeakMap<ClusterFacts, GatewayAddress[]>();

function gatewaysOf(facts: ClusterFacts): GatewayAddress[] {
  let out = gatewaysByFacts.get(facts);
  if (out === undefined) {
    out = facts.gateways.map((g) => ({
      $typeName: "isthmus.v1.GatewayAddress",
      address: g.address,
      port: g.port,
    }));
    gatewaysByFacts.set(facts, out);
  }
  return out;
}

/**
 * The ImportBackendIntent of a service in its backing cluster: the same for every importer.
 * `previous` (the intent built before) is returned when the content did not change, so that
 * importers keep sharing one object.
 */
export function buildImportBackend(
  rec: ServiceRecord,
  facts: ClusterFacts,
  previous?: Intent,
): Intent {
  const value: ImportBackendIntent = {
    $typeName: "isthmus.v1.ImportBackendIntent",
    namespace: rec.service.namespace,
    service: rec.service.name,
    ports: unionPorts([rec]),
    backend: {
      $typeName: "isthmus.v1.ImportBackend",
      clusterId: rec.clusterId,
      network: facts.network,
      gateways: gatewaysOf(facts),
      locality: facts.locality,
      weight: rec.service.readyEndpoints,
    },
  };
  const next = intent(importBackendName(value.namespace, value.service, rec.clusterId), {
    case: "importBackendIntent",
    value,
  });
  return previous?.version === next.version && previous.name === next.name ? previous : next;
}

/** ImportIntent (the header): ports from the local copy and the backends, by number. */
export function buildImport(
  namespace: string,
  service: string,
  local: ServiceRecord | undefined,
  backends: readonly ServiceRecord[],
): Intent {
  const sources = [...(local === undefined ? [] : [local]), ...backends].sort((a, b) =>
    a.clusterId < b.clusterId ? -1 : a.clusterId > b.clusterId ? 1 : 0,
  );
  const value: ImportIntent = {
    $typeName: "isthmus.v1.ImportIntent",
    namespace,
    service,
    ports: unionPorts(sources),
    localBackend: local !== undefined,
  };
  return intent(importName(namespace, service), { case: "importIntent", value });
}

/** ExportIntent of a backing service for the clusters that import it. */
export function buildExport(rec: ServiceRecord, importingClusters: string[]): Intent {
  const value: ExportIntent = {
    $typeName: "isthmus.v1.ExportIntent",
    namespace: rec.service.namespace,
    service: rec.service.name,
    ports: unionPorts([rec]),
    importingClusters: [...importingClusters].sort(),
  };
  return intent(exportName(value.namespace, value.service), { case: "exportIntent", value });
}

/** Principals allowed (or denied) on the same ports ([]: every port). */
export interface PrincipalGroup {
  ports: number[];
  principals: string[];
}

/**
 * Principal groups by port list ("" key: every port), and, built once when first needed,
 * their sorted access rules and the rules' hash. Not changed once built: destinations that
 * share their groups (same decisions, cluster and ports) share the rules and the hash.
 */
export class PrincipalGroups extends Map<string, PrincipalGroup> {
  rules: AccessRule[] | undefined = undefined;
  lanes: [number, number] | undefined = undefined;
}

export function addToGroup(groups: PrincipalGroups, ports: number[], principal: string): void {
  const key = ports.join(",");
  let g = groups.get(key);
  if (g === undefined) {
    g = { ports, principals: [] };
    groups.set(key, g);
  }
  g.principals.push(principal);
}

/**
 * Hashes of principals, each the 32 bits of one lane and 21 of the other packed in one
 * number (53 bits, exact in a double). A principal is listed by the access intent of every
 * destination its identity may call: hashed once, not once per list. Emptied when full, so
 * that principals of identities long gone do not stay.
 */
const principalHashes = new Map<string, number>();
const PRINCIPAL_HASHES_MAX = 1 << 18;
const LANE = 2 ** 32;

function principalHash(principal: string): number {
  let packed = principalHashes.get(principal);
  if (packed === undefined) {
    const [h1, h2] = new Hash64().str(principal).lanes();
    packed = (h2 & 0x1fffff) * LANE + (h1 >>> 0);
    if (principalHashes.size >= PRINCIPAL_HASHES_MAX) principalHashes.clear();
    principalHashes.set(principal, packed);
  }
  return packed;
}

function comparePorts(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The groups' access rules (by ports, principals sorted), built once. */
function rulesOf(groups: PrincipalGroups): AccessRule[] {
  if (groups.rules === undefined) {
    groups.rules = [...groups.values()]
      .sort((a, b) => comparePorts(a.ports, b.ports))
      .map((g) => ({
        $typeName: "isthmus.v1.AccessRule",
        principals: [...g.principals].sort(),
        ports: g.ports,
      }));
  }
  return groups.rules;
}

/** The hash lanes of the groups' access rules, built once. */
function lanesOf(groups: PrincipalGroups): [number, number] {
  if (groups.lanes === undefined) {
    const rs = rulesOf(groups);
    const h = new Hash64().int(rs.length);
    for (const r of rs) {
      h.int(r.ports.length);
      for (const p of r.ports) h.int(p);
      h.int(r.principals.length);
      for (const p of r.principals) {
        const packed = principalHash(p);
        h.int(packed % LANE).int(Math.floor(packed / LANE));
      }
    }
    groups.lanes = h.lanes();
  }
  return groups.lanes;
}

/** No principals. */
export const NO_GROUPS = new PrincipalGroups();

/** The AccessIntent of a destination: its service, and the principals allowed and denied. */
export function buildAccess(
  rec: ServiceRecord,
  allow: PrincipalGroups,
  deny: PrincipalGroups,
  allowLocalTrustDomain: boolean,
): Intent {
  const value: AccessIntent = {
    $typeName: "isthmus.v1.AccessIntent",
    namespace: rec.service.namespace,
    service: rec.service.name,
    selector: sortedMap(rec.service.selector),
    allow: rulesOf(allow),
    deny: rulesOf(deny),
    allowLocalTrustDomain,
  };
  const h = new Hash64().str("access").str(value.namespace).str(value.service);
  const keys = Object.keys(value.selector);
  h.int(keys.length);
  for (const k of keys) h.str(k).str(value.selector[k]!);
  const [a1, a2] = lanesOf(allow);
  const [d1, d2] = lanesOf(deny);
  h.int(a1)
    .int(a2)
    .int(d1)
    .int(d2)
    .int(allowLocalTrustDomain ? 1 : 0);
  return {
    $typeName: "isthmus.v1.Intent",
    name: accessIntentName(value.namespace, value.service),
    version: h.hex(),
    kind: { case: "accessIntent", value },
  };
}
