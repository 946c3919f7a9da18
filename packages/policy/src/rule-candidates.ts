// The catalog records a rule may match, read from the catalog's indexes (the smallest index
// part each selector narrows to), so that resolving a rule does not scan the whole catalog.
import type { Catalog, IdentityRecord, ServiceRecord } from "@isthmus/model";
import { type CompiledRule, matchLabels, matchName, type NameMatcher } from "./rule-matcher.js";

interface Candidates<T> {
  size: number;
  parts: (ReadonlySet<T> | ReadonlyMap<string, T>)[];
}

function smallest<T>(options: Candidates<T>[]): Candidates<T> | null {
  let best: Candidates<T> | null = null;
  for (const o of options) if (best === null || o.size < best.size) best = o;
  return best;
}

function unionOf<T>(sets: Iterable<ReadonlySet<T> | ReadonlyMap<string, T>>): Candidates<T> {
  const parts = [...sets];
  let size = 0;
  for (const p of parts) size += p.size;
  return { size, parts };
}

function namesIn(m: NameMatcher, keys: () => Iterable<string>): string[] {
  if (m.globs.length === 0) return [...m.exact];
  const out: string[] = [];
  for (const k of keys()) if (matchName(m, k)) out.push(k);
  return out;
}

function clustersMatching(
  catalog: Catalog,
  names: NameMatcher | null,
  labels: [string, string][],
): string[] {
  const out: string[] = [];
  if (names !== null && names.globs.length === 0) {
    for (const id of names.exact) {
      const f = catalog.cluster(id);
      if (f !== undefined && matchLabels(labels, f.labels)) out.push(id);
    }
    return out;
  }
  for (const id of catalog.clusterIds()) {
    if (matchName(names, id) && matchLabels(labels, catalog.cluster(id)!.labels)) out.push(id);
  }
  return out;
}

/**
 * Adds records to `out`, each once. The parts of one index never overlap, so only several
 * selectors can repeat a record: with one, no set of keys is kept.
 */
function collector<T extends { key: string }>(selectors: number, out: T[]): (x: T) => void {
  if (selectors === 1) {
    return (x) => {
      out.push(x);
    };
  }
  const seen = new Set<string>();
  return (x) => {
    if (!seen.has(x.key)) {
      seen.add(x.key);
      out.push(x);
    }
  };
}

/**
 * Identities that a rule's sources may match (a superset), drawn from the smallest index
 * each selector narrows to; callers confirm with ruleMatchesSource.
 */
export function sourceCandidates(rule: CompiledRule, catalog: Catalog): IdentityRecord[] {
  const out: IdentityRecord[] = [];
  const put = collector(rule.from.length, out);
  for (const m of rule.from) {
    const options: Candidates<IdentityRecord>[] = [];
    const consider = (c: Candidates<IdentityRecord>) => options.push(c);
    if (m.clusters !== null || m.clusterLabels.length > 0) {
      consider(
        unionOf(
          clustersMatching(catalog, m.clusters, m.clusterLabels).map((c) =>
            catalog.identitiesIn(c),
          ),
        ),
      );
    }
    if (m.namespaces !== null) {
      consider(
        unionOf(
          namesIn(m.namespaces, () => catalog.identityNamespaces()).map((ns) =>
            catalog.identitiesInNamespace(ns),
          ),
        ),
      );
    }
    if (
      m.namespaces !== null &&
      m.serviceAccounts !== null &&
      m.namespaces.globs.length === 0 &&
      m.serviceAccounts.globs.length === 0
    ) {
      const parts: ReadonlySet<IdentityRecord>[] = [];
      for (const ns of m.namespaces.exact) {
        for (const sa of m.serviceAccounts.exact) {
          parts.push(catalog.identitiesWithNamespaceAndAccount(ns, sa));
        }
      }
      consider(unionOf(parts));
    }
    if (m.serviceAccounts !== null) {
      consider(
        unionOf(
          namesIn(m.serviceAccounts, () => catalog.serviceAccountNames()).map((sa) =>
            catalog.identitiesWithServiceAccount(sa),
          ),
        ),
      );
    }
    if (m.services !== null) {
      const found = new Map<string, IdentityRecord>();
      for (const name of namesIn(m.services, () => catalog.serviceNames())) {
        for (const s of catalog.servicesNamed(name)) {
          for (const sa of s.service.serviceAccounts) {
            const id = catalog.identity(s.clusterId, s.service.namespace, sa);
            if (id !== undefined) found.set(id.key, id);
          }
        }
      }
      consider({ size: found.size, parts: [found] });
    }
    const chosen = smallest(options);
    if (chosen === null) for (const id of catalog.allIdentities()) put(id);
    else for (const part of chosen.parts) for (const id of part.values()) put(id);
  }
  return out;
}

/** Services that a rule's destinations may match (a superset), from the smallest index. */
export function destinationCandidates(rule: CompiledRule, catalog: Catalog): ServiceRecord[] {
  const out: ServiceRecord[] = [];
  const put = collector(rule.to.length, out);
  for (const m of rule.to) {
    const options: Candidates<ServiceRecord>[] = [];
    const consider = (c: Candidates<ServiceRecord>) => options.push(c);
    if (m.clusters !== null || m.clusterLabels.length > 0) {
      consider(
        unionOf(
          clustersMatching(catalog, m.clusters, m.clusterLabels).map((c) => catalog.servicesIn(c)),
        ),
      );
    }
    if (m.namespaces !== null) {
      consider(
        unionOf(
          namesIn(m.namespaces, () => catalog.serviceNamespaces()).map((ns) =>
            catalog.servicesInNamespace(ns),
          ),
        ),
      );
    }
    if (m.services !== null) {
      consider(
        unionOf(
          namesIn(m.services, () => catalog.serviceNames()).map((n) => catalog.servicesNamed(n)),
        ),
      );
    }
    const chosen = smallest(options);
    if (chosen === null) for (const s of catalog.allServices()) put(s);
    else for (const part of chosen.parts) for (const s of part.values()) put(s);
  }
  return out;
}
