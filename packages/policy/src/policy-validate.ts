// Validation of ConnectionPolicies: every problem of a policy with its field path, and the
// checks of a set (unique names). Their canonical form and comparison: policy-canonical.ts.
import {
  Action,
  type ConnectionPolicy,
  type DestinationSelector,
  type SourceSelector,
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
