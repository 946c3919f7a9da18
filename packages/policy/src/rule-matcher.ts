import type { Catalog, ClusterFacts, IdentityRecord, ServiceRecord } from "@isthmus/model";
import {
  Action,
  type ConnectionPolicy,
  type DestinationSelector,
  type SourceSelector,
  type WorkloadIdentity,
} from "@isthmus/proto";
import { contentJson } from "./content-hash.js";
import { compileGlob, type Glob } from "./glob.js";
import { isGlob } from "./policy-validate.js";

/** Names and globs of one selector field; `null` stands for an empty field (matches all). */
export interface NameMatcher {
  exact: Set<string>;
  globs: Glob[];
}

export function compileNames(values: readonly string[]): NameMatcher | null {
  if (values.length === 0) return null;
  const exact = new Set<string>();
  const globs: Glob[] = [];
  for (const v of values) {
    if (isGlob(v)) globs.push(compileGlob(v));
    else exact.add(v);
  }
  return { exact, globs };
}

export function matchName(m: NameMatcher | null, value: string): boolean {
  if (m === null || m.exact.has(value)) return true;
  for (const glob of m.globs) if (glob.test(value)) return true;
  return false;
}

function matchLabels(want: readonly [string, string][], have: Record<string, string>): boolean {
  for (const [k, v] of want) if (have[k] !== v) return false;
  return true;
}

export interface SourceMatcher {
  clusters: NameMatcher | null;
  clusterLabels: [string, string][];
  namespaces: NameMatcher | null;
  services: NameMatcher | null;
  serviceAccounts: NameMatcher | null;
  workloadLabels: [string, string][];
}

export interface DestinationMatcher {
  clusters: NameMatcher | null;
  clusterLabels: [string, string][];
  namespaces: NameMatcher | null;
  services: NameMatcher | null;
  ports: Set<number> | null;
}

/** A policy compiled for matching. Engines attach their own state next to it. */
export interface CompiledRule {
  name: string;
  priority: number;
  deny: boolean;
  /** The normalized policy (description and resource version may change in place). */
  policy: ConnectionPolicy;
  /** What decides matching: priority, action, from, to. Equal signatures, equal behaviour. */
  signature: string;
  from: SourceMatcher[];
  to: DestinationMatcher[];
}

function compileSource(s: SourceSelector): SourceMatcher {
  return {
    clusters: compileNames(s.clusters),
    clusterLabels: Object.entries(s.clusterLabels),
    namespaces: compileNames(s.namespaces),
    services: compileNames(s.services),
    serviceAccounts: compileNames(s.serviceAccounts),
    workloadLabels: Object.entries(s.workloadLabels),
  };
}

function compileDestination(d: DestinationSelector): DestinationMatcher {
  return {
    clusters: compileNames(d.clusters),
    clusterLabels: Object.entries(d.clusterLabels),
    namespaces: compileNames(d.namespaces),
    services: compileNames(d.services),
    ports: d.ports.length === 0 ? null : new Set(d.ports),
  };
}

/** Compiles a validated, normalized policy. */
export function compileRule(p: ConnectionPolicy): CompiledRule {
  return {
    name: p.name,
    priority: p.priority,
    deny: p.action === Action.DENY,
    policy: p,
    signature: contentJson({ priority: p.priority, action: p.action, from: p.from, to: p.to }),
    from: p.from.map(compileSource),
    to: p.to.map(compileDestination),
  };
}

/** Evaluation order: priority, then name. */
export function compareRules(a: CompiledRule, b: CompiledRule): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A source: an identity of a cluster (possibly hypothetical, for explain). */
export interface SourceSubject {
  clusterId: string;
  facts: ClusterFacts;
  identity: WorkloadIdentity;
}

export function subjectOf(catalog: Catalog, rec: IdentityRecord): SourceSubject | undefined {
  const facts = catalog.cluster(rec.clusterId);
  return facts === undefined
    ? undefined
    : { clusterId: rec.clusterId, facts, identity: rec.identity };
}

/** Whether a selector matches everything of the source but its workload labels. */
function matchSourceScope(m: SourceMatcher, src: SourceSubject, catalog: Catalog): boolean {
  const id = src.identity;
  if (!matchName(m.clusters, src.clusterId)) return false;
  if (!matchLabels(m.clusterLabels, src.facts.labels)) return false;
  if (!matchName(m.namespaces, id.namespace)) return false;
  if (!matchName(m.serviceAccounts, id.serviceAccount)) return false;
  if (m.services !== null) {
    let any = false;
    for (const s of catalog.servicesWithServiceAccount(
      src.clusterId,
      id.namespace,
      id.serviceAccount,
    )) {
      if (matchName(m.services, s.service.name)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

/**
 * How a rule's sources cover an identity: "all" its pods, "some" (the rule's workload labels
 * split the service account), or "none". An identity without pods is covered only by
 * selectors without workload labels.
 */
export function sourceCoverage(
  rule: CompiledRule,
  src: SourceSubject,
  catalog: Catalog,
): "all" | "some" | "none" {
  const sets = src.identity.labelSets;
  let covered: boolean[] | null = null;
  let count = 0;
  for (const m of rule.from) {
    if (!matchSourceScope(m, src, catalog)) continue;
    if (m.workloadLabels.length === 0) return "all";
    for (let i = 0; i < sets.length; i++) {
      if (covered?.[i] === true) continue;
      if (matchLabels(m.workloadLabels, sets[i]!.labels)) {
        covered ??= new Array<boolean>(sets.length).fill(false);
        covered[i] = true;
        count++;
      }
    }
  }
  if (count === 0) return "none";
  return count === sets.length ? "all" : "some";
}

/**
 * Whether a rule applies to an identity. The enforcement unit is the service account, so a
 * rule whose workload labels split it decides conservatively: a DENY rule applies when it
 * selects some of the pods, an ALLOW rule only when it selects all of them.
 */
export function ruleMatchesSource(
  rule: CompiledRule,
  src: SourceSubject,
  catalog: Catalog,
): boolean {
  const c = sourceCoverage(rule, src, catalog);
  return c === "all" || (c === "some" && rule.deny);
}

function matchDestinationScope(m: DestinationMatcher, rec: ServiceRecord, facts: ClusterFacts) {
  return (
    matchName(m.clusters, rec.clusterId) &&
    matchLabels(m.clusterLabels, facts.labels) &&
    matchName(m.namespaces, rec.service.namespace) &&
    matchName(m.services, rec.service.name)
  );
}

/** The distinct service ports of a service, sorted; slots of decisions. */
export function servicePorts(rec: ServiceRecord): number[] {
  const ports = rec.service.ports;
  // Most services have one port: no set, no sort.
  if (ports.length === 1) return [ports[0]!.port];
  return [...new Set(ports.map((p) => p.port))].sort((a, b) => a - b);
}

/**
 * The port slots of a destination a rule covers (indexes into `ports`; a service without
 * ports has one slot that only port-less selectors cover), or null when it does not match.
 */
export function destinationSlots(
  rule: CompiledRule,
  rec: ServiceRecord,
  facts: ClusterFacts,
  ports: readonly number[],
): number[] | null {
  const slotCount = Math.max(1, ports.length);
  let mask: boolean[] | null = null;
  for (const m of rule.to) {
    if (!matchDestinationScope(m, rec, facts)) continue;
    if (m.ports === null) return Array.from({ length: slotCount }, (_, i) => i);
    for (let i = 0; i < ports.length; i++) {
      if (m.ports.has(ports[i]!)) {
        mask ??= new Array<boolean>(slotCount).fill(false);
        mask[i] = true;
      }
    }
  }
  if (mask === null) return null;
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

/** Whether a rule applies to a destination on one port (0: on some port). */
export function ruleMatchesDestinationPort(
  rule: CompiledRule,
  rec: ServiceRecord,
  facts: ClusterFacts,
  port: number,
): boolean {
  for (const m of rule.to) {
    if (!matchDestinationScope(m, rec, facts)) continue;
    if (m.ports === null || m.ports.has(port)) return true;
  }
  return false;
}

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
