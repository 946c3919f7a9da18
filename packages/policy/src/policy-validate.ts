import { create } from "@bufbuild/protobuf";
import {
  Action,
  type ConnectionPolicy,
  ConnectionPolicySchema,
  type DestinationSelector,
  DestinationSelectorSchema,
  type SourceSelector,
  SourceSelectorSchema,
} from "@isthmus/proto";
import { PolicyError } from "./errors.js";
import { compileGlob } from "./glob.js";
import {
  LABEL_KEY_PATTERN,
  LABEL_PATTERN,
  LABEL_VALUE_PATTERN,
  MAX_DESCRIPTION,
  MAX_ITEMS,
  MAX_LABELS,
  MAX_PORTS,
  MAX_SELECTORS,
  SUBDOMAIN_PATTERN,
} from "./policy-schema.js";

/** A field path: proto (camelCase) field names and list indexes, e.g. from, 1, clusters, 0. */
export type FieldPath = readonly (string | number)[];

/** One problem of a policy, at a field. */
export interface Violation {
  path: FieldPath;
  problem: string;
}

// The patterns of policy-schema.ts carry the length limits too.
const NAME_RE = new RegExp(SUBDOMAIN_PATTERN);
const LABEL_RE = new RegExp(LABEL_PATTERN);
const LABEL_KEY_RE = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE_RE = new RegExp(LABEL_VALUE_PATTERN);

/** Whether a pattern uses glob syntax rather than naming one object. */
export function isGlob(pattern: string): boolean {
  return /[*?[\]{}()!+@]/.test(pattern);
}

/** `from[1].clusters[0]`, `to[0].clusterLabels.env`. */
export function formatPath(path: FieldPath): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (out === "") out = seg;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function checkPatterns(
  out: Violation[],
  path: FieldPath,
  values: readonly string[],
  kind: "label" | "subdomain",
): void {
  if (values.length > MAX_ITEMS) {
    out.push({ path, problem: `at most ${MAX_ITEMS} entries, got ${values.length}` });
  }
  values.forEach((v, i) => {
    const at = [...path, i];
    if (typeof v !== "string" || v === "") {
      out.push({ path: at, problem: "must not be empty" });
      return;
    }
    if (isGlob(v)) {
      try {
        compileGlob(v);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        const shown = v.length > 64 ? `${JSON.stringify(v.slice(0, 61))}...` : JSON.stringify(v);
        out.push({ path: at, problem: `invalid glob ${shown}: ${why}` });
      }
      return;
    }
    const re = kind === "label" ? LABEL_RE : NAME_RE;
    if (!re.test(v)) {
      const what = kind === "label" ? "DNS-1123 label" : "DNS-1123 subdomain";
      out.push({ path: at, problem: `${JSON.stringify(v)} is neither a ${what} nor a glob` });
    }
  });
}

function checkLabels(out: Violation[], path: FieldPath, labels: Record<string, string>): void {
  const count = Object.keys(labels).length;
  if (count > MAX_LABELS) out.push({ path, problem: `at most ${MAX_LABELS} labels, got ${count}` });
  for (const [key, value] of Object.entries(labels)) {
    const at = [...path, key];
    if (!LABEL_KEY_RE.test(key)) {
      out.push({ path: at, problem: `invalid label key ${JSON.stringify(key)}` });
    } else if (typeof value !== "string") {
      out.push({ path: at, problem: "must be a string" });
    } else if (!LABEL_VALUE_RE.test(value)) {
      out.push({ path: at, problem: `invalid label value ${JSON.stringify(value)}` });
    }
  }
}

function checkSource(out: Violation[], path: FieldPath, s: SourceSelector): void {
  const empty =
    s.clusters.length === 0 &&
    Object.keys(s.clusterLabels).length === 0 &&
    s.namespaces.length === 0 &&
    s.services.length === 0 &&
    Object.keys(s.workloadLabels).length === 0 &&
    s.serviceAccounts.length === 0;
  if (empty) {
    out.push({
      path,
      problem: 'empty selector; to select every source write clusters: ["*"]',
    });
    return;
  }
  checkPatterns(out, [...path, "clusters"], s.clusters, "label");
  checkLabels(out, [...path, "clusterLabels"], s.clusterLabels);
  checkPatterns(out, [...path, "namespaces"], s.namespaces, "label");
  checkPatterns(out, [...path, "services"], s.services, "label");
  checkLabels(out, [...path, "workloadLabels"], s.workloadLabels);
  checkPatterns(out, [...path, "serviceAccounts"], s.serviceAccounts, "subdomain");
}

function checkDestination(out: Violation[], path: FieldPath, d: DestinationSelector): void {
  const empty =
    d.clusters.length === 0 &&
    Object.keys(d.clusterLabels).length === 0 &&
    d.namespaces.length === 0 &&
    d.services.length === 0 &&
    d.ports.length === 0;
  if (empty) {
    out.push({
      path,
      problem: 'empty selector; to select every destination write clusters: ["*"]',
    });
    return;
  }
  checkPatterns(out, [...path, "clusters"], d.clusters, "label");
  checkLabels(out, [...path, "clusterLabels"], d.clusterLabels);
  checkPatterns(out, [...path, "namespaces"], d.namespaces, "label");
  checkPatterns(out, [...path, "services"], d.services, "label");
  if (d.ports.length > MAX_PORTS) {
    out.push({
      path: [...path, "ports"],
      problem: `at most ${MAX_PORTS} entries, got ${d.ports.length}`,
    });
  }
  d.ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      out.push({
        path: [...path, "ports", i],
        problem: `must be a port number between 1 and 65535, got ${p}`,
      });
    }
  });
}

/** Every problem of one policy, in field order. */
export function policyViolations(p: ConnectionPolicy): Violation[] {
  const out: Violation[] = [];
  if (p.name === "") out.push({ path: ["name"], problem: "required" });
  else if (!NAME_RE.test(p.name)) {
    out.push({
      path: ["name"],
      problem: "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')",
    });
  }
  if (!Number.isInteger(p.priority) || p.priority < -(2 ** 31) || p.priority >= 2 ** 31) {
    out.push({ path: ["priority"], problem: `must be a 32-bit integer, got ${p.priority}` });
  }
  if (p.action !== Action.ALLOW && p.action !== Action.DENY) {
    out.push({ path: ["action"], problem: "must be ALLOW or DENY" });
  }
  if (p.from.length === 0) {
    out.push({ path: ["from"], problem: "at least one source selector is required" });
  } else if (p.from.length > MAX_SELECTORS) {
    out.push({
      path: ["from"],
      problem: `at most ${MAX_SELECTORS} selectors, got ${p.from.length}`,
    });
  }
  p.from.forEach((s, i) => {
    checkSource(out, ["from", i], s);
  });
  if (p.to.length === 0) {
    out.push({ path: ["to"], problem: "at least one destination selector is required" });
  } else if (p.to.length > MAX_SELECTORS) {
    out.push({ path: ["to"], problem: `at most ${MAX_SELECTORS} selectors, got ${p.to.length}` });
  }
  p.to.forEach((d, i) => {
    checkDestination(out, ["to", i], d);
  });
  if (p.description.length > MAX_DESCRIPTION) {
    out.push({
      path: ["description"],
      problem: `at most ${MAX_DESCRIPTION} characters, got ${p.description.length}`,
    });
  }
  checkLabels(out, ["labels"], p.labels);
  return out;
}

/** Throws the first problem of one policy as a PolicyError. */
export function validatePolicy(p: ConnectionPolicy): void {
  const [first] = policyViolations(p);
  if (first !== undefined) {
    throw new PolicyError(
      `invalid policy ${JSON.stringify(p.name)}: ${formatPath(first.path)}: ${first.problem}`,
      "invalid-policy",
    );
  }
}

/** The error for two policies of one set with the same name, at indexes `prev` and `index`. */
export function duplicatePolicy(name: string, prev: number, index: number): PolicyError {
  return new PolicyError(
    `duplicate policy ${JSON.stringify(name)}: policies[${prev}] and policies[${index}] have the same name`,
    "duplicate-policy",
  );
}

/**
 * Records that `policies[index]` is named `name` (`seen`: name -> index of the policies
 * before it); throws a PolicyError when one of them has the same name.
 */
export function checkUniqueName(seen: Map<string, number>, name: string, index: number): void {
  const prev = seen.get(name);
  if (prev !== undefined) throw duplicatePolicy(name, prev, index);
  seen.set(name, index);
}

/**
 * Validates a whole policy set: every policy (first problem wins) and unique names.
 * Throws a PolicyError; changes nothing.
 */
export function validatePolicies(policies: readonly ConnectionPolicy[]): void {
  const seen = new Map<string, number>();
  policies.forEach((p, i) => {
    validatePolicy(p);
    checkUniqueName(seen, p.name, i);
  });
}

function sortedUnique<T extends string | number>(values: readonly T[]): T[] {
  const out = [...new Set(values)];
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return out;
}

function sortedMap(map: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(map).sort()) out[k] = map[k]!;
  return out;
}

/**
 * The normal form of a policy: lists sorted and deduplicated, label maps in key order, and
 * duplicate selectors dropped (selectors keep their written order).
 */
export function normalizePolicy(p: ConnectionPolicy): ConnectionPolicy {
  const from: SourceSelector[] = [];
  const seenFrom = new Set<string>();
  for (const s of p.from) {
    const n = create(SourceSelectorSchema, {
      clusters: sortedUnique(s.clusters),
      clusterLabels: sortedMap(s.clusterLabels),
      namespaces: sortedUnique(s.namespaces),
      services: sortedUnique(s.services),
      workloadLabels: sortedMap(s.workloadLabels),
      serviceAccounts: sortedUnique(s.serviceAccounts),
    });
    const key = JSON.stringify([
      n.clusters,
      n.clusterLabels,
      n.namespaces,
      n.services,
      n.workloadLabels,
      n.serviceAccounts,
    ]);
    if (seenFrom.has(key)) continue;
    seenFrom.add(key);
    from.push(n);
  }
  const to: DestinationSelector[] = [];
  const seenTo = new Set<string>();
  for (const d of p.to) {
    const n = create(DestinationSelectorSchema, {
      clusters: sortedUnique(d.clusters),
      clusterLabels: sortedMap(d.clusterLabels),
      namespaces: sortedUnique(d.namespaces),
      services: sortedUnique(d.services),
      ports: sortedUnique(d.ports),
    });
    const key = JSON.stringify([n.clusters, n.clusterLabels, n.namespaces, n.services, n.ports]);
    if (seenTo.has(key)) continue;
    seenTo.add(key);
    to.push(n);
  }
  return create(ConnectionPolicySchema, {
    name: p.name,
    priority: p.priority,
    action: p.action,
    from,
    to,
    description: p.description,
    resourceVersion: p.resourceVersion,
    labels: sortedMap(p.labels),
  });
}

/** Evaluation order: by priority (lower first), then by name. */
export function comparePolicies(
  a: { priority: number; name: string },
  b: { priority: number; name: string },
): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A copy of the policies in evaluation order. */
export function sortPolicies(policies: readonly ConnectionPolicy[]): ConnectionPolicy[] {
  return [...policies].sort(comparePolicies);
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  // Counted, not listed: called for every policy of every setPolicies.
  let size = 0;
  for (const k in a) {
    if (a[k] !== b[k]) return false;
    size++;
  }
  for (const _ in b) size--;
  return size === 0;
}

/** Whether two policies are written the same (field by field, lists in order). */
export function samePolicy(a: ConnectionPolicy, b: ConnectionPolicy): boolean {
  if (
    a.name !== b.name ||
    a.priority !== b.priority ||
    a.action !== b.action ||
    a.description !== b.description ||
    a.resourceVersion !== b.resourceVersion ||
    !sameMap(a.labels, b.labels) ||
    a.from.length !== b.from.length ||
    a.to.length !== b.to.length
  ) {
    return false;
  }
  for (let i = 0; i < a.from.length; i++) {
    const x = a.from[i]!;
    const y = b.from[i]!;
    if (
      !sameList(x.clusters, y.clusters) ||
      !sameMap(x.clusterLabels, y.clusterLabels) ||
      !sameList(x.namespaces, y.namespaces) ||
      !sameList(x.services, y.services) ||
      !sameMap(x.workloadLabels, y.workloadLabels) ||
      !sameList(x.serviceAccounts, y.serviceAccounts)
    ) {
      return false;
    }
  }
  for (let i = 0; i < a.to.length; i++) {
    const x = a.to[i]!;
    const y = b.to[i]!;
    if (
      !sameList(x.clusters, y.clusters) ||
      !sameMap(x.clusterLabels, y.clusterLabels) ||
      !sameList(x.namespaces, y.namespaces) ||
      !sameList(x.services, y.services) ||
      !sameList(x.ports, y.ports)
    ) {
      return false;
    }
  }
  return true;
}

/**
 * Freezes a policy and everything in it, and returns it. A frozen policy cannot change, so
 * the engine keeps it as given and, when the same object comes again, knows it unchanged
 * without comparing it field by field (the hub's registry stores its policies frozen).
 */
export function freezePolicy(p: ConnectionPolicy): ConnectionPolicy {
  for (const selector of [...p.from, ...p.to]) freezeWithFields(selector);
  Object.freeze(p.from);
  Object.freeze(p.to);
  Object.freeze(p.labels);
  return Object.freeze(p);
}

/**
 * Whether a policy and everything in it are frozen (as freezePolicy leaves it). Every field
 * of a selector is checked, so a field added to the schema later cannot escape the check.
 */
export function isFrozenPolicy(p: ConnectionPolicy): boolean {
  return (
    Object.isFrozen(p) &&
    Object.isFrozen(p.from) &&
    Object.isFrozen(p.to) &&
    Object.isFrozen(p.labels) &&
    p.from.every(frozenWithFields) &&
    p.to.every(frozenWithFields)
  );
}

/** Freezes an object and the lists and maps in its fields (a selector's). */
function freezeWithFields(o: object): void {
  for (const v of Object.values(o)) if (typeof v === "object" && v !== null) Object.freeze(v);
  Object.freeze(o);
}

function frozenWithFields(o: object): boolean {
  return (
    Object.isFrozen(o) &&
    Object.values(o).every((v) => typeof v !== "object" || v === null || Object.isFrozen(v))
  );
}

/** A deep copy of a policy, so that later changes by the caller do not reach it. */
export function copyPolicy(p: ConnectionPolicy): ConnectionPolicy {
  return create(ConnectionPolicySchema, {
    name: p.name,
    priority: p.priority,
    action: p.action,
    description: p.description,
    resourceVersion: p.resourceVersion,
    labels: { ...p.labels },
    from: p.from.map((s) => ({
      clusters: [...s.clusters],
      clusterLabels: { ...s.clusterLabels },
      namespaces: [...s.namespaces],
      services: [...s.services],
      workloadLabels: { ...s.workloadLabels },
      serviceAccounts: [...s.serviceAccounts],
    })),
    to: p.to.map((d) => ({
      clusters: [...d.clusters],
      clusterLabels: { ...d.clusterLabels },
      namespaces: [...d.namespaces],
      services: [...d.services],
      ports: [...d.ports],
    })),
  });
}
