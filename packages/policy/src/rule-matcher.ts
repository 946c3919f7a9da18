// Compiled rules and the checks of one identity or service against them: name globs, label
// selectors, cluster scopes, port slots. Which records to check at all: rule-candidates.ts.
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

export function matchLabels(
  want: readonly [string, string][],
  have: Record<string, string>,
): boolean {
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

const SHARED_PORTS_MAX = 10_000;
const sharedPorts = new Map<string, readonly number[]>();

/**
 * The distinct service ports of a service, sorted; slots of decisions. One shared, frozen
 * copy per list: every destination keeps its list, and the clusters that back a service
 * report the same ports (a list per destination was about 60 B of heap per service).
 * Bounded as `intern` is.
 */
export function servicePorts(rec: ServiceRecord): readonly number[] {
  const ports = rec.service.ports;
  // Most services have one port: no set, no sort.
  const list =
    ports.length === 1
      ? [ports[0]!.port]
      : [...new Set(ports.map((p) => p.port))].sort((a, b) => a - b);
  const key = list.join(",");
  const known = sharedPorts.get(key);
  if (known !== undefined) return known;
  if (sharedPorts.size >= SHARED_PORTS_MAX) sharedPorts.clear();
  Object.freeze(list);
  sharedPorts.set(key, list);
  return list;
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
