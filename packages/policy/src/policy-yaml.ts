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
import { type Document, LineCounter, parseAllDocuments, stringify } from "yaml";
import { PolicyError } from "./errors.js";
import { normalizePolicy } from "./policy-canonical.js";
import { type FieldPath, formatPath, policyViolations } from "./policy-validate.js";

/** apiVersion of ConnectionPolicy documents. */
export const POLICY_API_VERSION = "isthmus.dev/v1alpha1";
/** kind of ConnectionPolicy documents. */
export const POLICY_KIND = "ConnectionPolicy";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A structural problem found while reading a document (path in document terms). */
class DocumentProblem extends Error {
  constructor(
    readonly path: FieldPath,
    readonly problem: string,
  ) {
    super(problem);
  }
}

function isMap(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: Json | undefined): string {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function expectMap(v: Json | undefined, path: FieldPath): { [key: string]: Json } {
  if (!isMap(v)) throw new DocumentProblem(path, `must be a mapping, got ${describe(v)}`);
  return v;
}

function checkKeys(map: { [key: string]: Json }, path: FieldPath, allowed: readonly string[]) {
  for (const key of Object.keys(map)) {
    if (!allowed.includes(key)) {
      throw new DocumentProblem(
        [...path, key],
        `unknown field (expected one of ${allowed.join(", ")})`,
      );
    }
  }
}

function stringList(v: Json | undefined, path: FieldPath): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    throw new DocumentProblem(path, `must be a list of strings, got ${describe(v)}`);
  return v.map((item, i) => {
    if (typeof item !== "string") {
      throw new DocumentProblem([...path, i], `must be a string, got ${describe(item)}`);
    }
    return item;
  });
}

function portList(v: Json | undefined, path: FieldPath): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    throw new DocumentProblem(path, `must be a list of port numbers, got ${describe(v)}`);
  return v.map((item, i) => {
    if (typeof item !== "number" || !Number.isInteger(item)) {
      throw new DocumentProblem([...path, i], `must be a port number, got ${describe(item)}`);
    }
    return item;
  });
}

function labelMap(v: Json | undefined, path: FieldPath): Record<string, string> {
  if (v === undefined || v === null) return {};
  const map = expectMap(v, path);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(map)) {
    if (typeof val !== "string") {
      const hint =
        typeof val === "number" || typeof val === "boolean" ? ` (quote it: "${val}")` : "";
      throw new DocumentProblem([...path, k], `must be a string, got ${describe(val)}${hint}`);
    }
    out[k] = val;
  }
  return out;
}

const SOURCE_FIELDS = [
  "clusters",
  "clusterLabels",
  "namespaces",
  "services",
  "workloadLabels",
  "serviceAccounts",
] as const;
const DESTINATION_FIELDS = [
  "clusters",
  "clusterLabels",
  "namespaces",
  "services",
  "ports",
] as const;

function sourceSelector(v: Json, path: FieldPath): SourceSelector {
  const map = expectMap(v, path);
  checkKeys(map, path, SOURCE_FIELDS);
  return create(SourceSelectorSchema, {
    clusters: stringList(map.clusters, [...path, "clusters"]),
    clusterLabels: labelMap(map.clusterLabels, [...path, "clusterLabels"]),
    namespaces: stringList(map.namespaces, [...path, "namespaces"]),
    services: stringList(map.services, [...path, "services"]),
    workloadLabels: labelMap(map.workloadLabels, [...path, "workloadLabels"]),
    serviceAccounts: stringList(map.serviceAccounts, [...path, "serviceAccounts"]),
  });
}

function destinationSelector(v: Json, path: FieldPath): DestinationSelector {
  const map = expectMap(v, path);
  checkKeys(map, path, DESTINATION_FIELDS);
  return create(DestinationSelectorSchema, {
    clusters: stringList(map.clusters, [...path, "clusters"]),
    clusterLabels: labelMap(map.clusterLabels, [...path, "clusterLabels"]),
    namespaces: stringList(map.namespaces, [...path, "namespaces"]),
    services: stringList(map.services, [...path, "services"]),
    ports: portList(map.ports, [...path, "ports"]),
  });
}

function selectorList<T>(
  v: Json | undefined,
  path: FieldPath,
  one: (v: Json, p: FieldPath) => T,
): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    throw new DocumentProblem(path, `must be a list of selectors, got ${describe(v)}`);
  return v.map((item, i) => one(item, [...path, i]));
}

/** Reads one document into a policy; the name is returned as soon as it is known. */
function readDocument(value: Json, named: (name: string) => void): ConnectionPolicy {
  const root = expectMap(value, []);
  checkKeys(root, [], ["apiVersion", "kind", "metadata", "spec"]);
  if (root.apiVersion !== POLICY_API_VERSION) {
    throw new DocumentProblem(
      ["apiVersion"],
      `must be ${JSON.stringify(POLICY_API_VERSION)}, got ${describe(root.apiVersion)}`,
    );
  }
  if (root.kind !== POLICY_KIND) {
    throw new DocumentProblem(
      ["kind"],
      `must be ${JSON.stringify(POLICY_KIND)}, got ${describe(root.kind)}`,
    );
  }
  const metadata = expectMap(root.metadata, ["metadata"]);
  checkKeys(metadata, ["metadata"], ["name", "labels", "annotations", "resourceVersion"]);
  if (typeof metadata.name !== "string" || metadata.name === "") {
    throw new DocumentProblem(["metadata", "name"], "required");
  }
  const name = metadata.name;
  named(name);
  labelMap(metadata.labels, ["metadata", "labels"]);
  labelMap(metadata.annotations, ["metadata", "annotations"]);
  const resourceVersion = metadata.resourceVersion ?? "";
  if (typeof resourceVersion !== "string") {
    throw new DocumentProblem(
      ["metadata", "resourceVersion"],
      `must be a string, got ${describe(resourceVersion)}`,
    );
  }
  const spec = expectMap(root.spec, ["spec"]);
  checkKeys(spec, ["spec"], ["priority", "action", "description", "from", "to"]);
  const priority = spec.priority ?? 0;
  if (typeof priority !== "number" || !Number.isInteger(priority)) {
    throw new DocumentProblem(
      ["spec", "priority"],
      `must be an integer, got ${describe(priority)}`,
    );
  }
  let action: Action;
  if (spec.action === "ALLOW") action = Action.ALLOW;
  else if (spec.action === "DENY") action = Action.DENY;
  else if (spec.action === undefined)
    throw new DocumentProblem(["spec", "action"], "required (ALLOW or DENY)");
  else
    throw new DocumentProblem(
      ["spec", "action"],
      `must be ALLOW or DENY, got ${describe(spec.action)}`,
    );
  const description = spec.description ?? "";
  if (typeof description !== "string") {
    throw new DocumentProblem(
      ["spec", "description"],
      `must be a string, got ${describe(description)}`,
    );
  }
  return create(ConnectionPolicySchema, {
    name,
    priority,
    action,
    description,
    resourceVersion,
    from: selectorList(spec.from, ["spec", "from"], sourceSelector),
    to: selectorList(spec.to, ["spec", "to"], destinationSelector),
  });
}

/** Where a violation of the proto form sits in the document. */
function documentPath(path: FieldPath): FieldPath {
  if (path[0] === "name") return ["metadata", "name"];
  return ["spec", ...path];
}

function lineOf(doc: Document, lines: LineCounter, path: FieldPath): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range !== undefined) return lines.linePos(range[0]).line;
  }
  return undefined;
}

/**
 * Parses ConnectionPolicy documents (multi-document YAML). Empty documents are skipped.
 * Every policy is validated and normalized; names must be unique within the text.
 * Throws a PolicyError naming the source, the document (1-based), its line and the field.
 */
export function parsePolicyYaml(text: string, source: string): ConnectionPolicy[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    prettyErrors: true,
    uniqueKeys: true,
  });
  if (!Array.isArray(docs)) {
    // parseAllDocuments returns an EmptyStream for empty input.
    return [];
  }
  const out: ConnectionPolicy[] = [];
  const names = new Map<string, number>();
  docs.forEach((doc, i) => {
    const n = i + 1;
    const where = (line: number | undefined) =>
      `${source}: document ${n}${line === undefined || Number.isNaN(line) ? "" : `, line ${line}`}`;
    const [err] = doc.errors;
    if (err !== undefined) {
      const first = err.message.split("\n")[0]!;
      const line =
        err.linePos?.[0]?.line ?? Number(/ at line (\d+)/.exec(first)?.[1] ?? Number.NaN);
      const message = first.replace(/ at line \d+, column \d+:?$/, "");
      throw new PolicyError(`${where(line)}: invalid YAML: ${message}`, "invalid-yaml", {
        cause: err,
      });
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as Json | undefined;
    if (value === null || value === undefined) return;
    let name: string | undefined;
    let policy: ConnectionPolicy;
    try {
      policy = readDocument(value, (v) => {
        name = v;
      });
    } catch (e) {
      if (!(e instanceof DocumentProblem)) throw PolicyError.from(e, "invalid-document");
      const subject =
        name === undefined ? "invalid policy document" : `invalid policy ${JSON.stringify(name)}`;
      const field = e.path.length === 0 ? "" : `${formatPath(e.path)}: `;
      throw new PolicyError(
        `${where(lineOf(doc, lines, e.path))}: ${subject}: ${field}${e.problem}`,
        "invalid-document",
      );
    }
    const [violation] = policyViolations(policy);
    if (violation !== undefined) {
      const path = documentPath(violation.path);
      throw new PolicyError(
        `${where(lineOf(doc, lines, path))}: invalid policy ${JSON.stringify(policy.name)}: ${formatPath(path)}: ${violation.problem}`,
        "invalid-policy",
      );
    }
    const prev = names.get(policy.name);
    if (prev !== undefined) {
      throw new PolicyError(
        `${where(lineOf(doc, lines, ["metadata", "name"]))}: duplicate policy ${JSON.stringify(policy.name)}: also defined in document ${prev}`,
        "duplicate-policy",
      );
    }
    names.set(policy.name, n);
    out.push(normalizePolicy(policy));
  });
  return out;
}

function nonEmpty<T extends object>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(obj) as [keyof T, unknown][]) {
    if (
      Array.isArray(v)
        ? v.length > 0
        : typeof v === "object" && v !== null
          ? Object.keys(v).length > 0
          : true
    ) {
      out[k] = v as T[keyof T];
    }
  }
  return out;
}

/** The YAML document of a policy (for `policy get -o yaml`); parsePolicyYaml reads it back. */
export function policyToYaml(p: ConnectionPolicy): string {
  const metadata: Record<string, string> = { name: p.name };
  if (p.resourceVersion !== "") metadata.resourceVersion = p.resourceVersion;
  const spec: Record<string, unknown> = {
    priority: p.priority,
    action: p.action === Action.DENY ? "DENY" : p.action === Action.ALLOW ? "ALLOW" : "UNSPECIFIED",
  };
  if (p.description !== "") spec.description = p.description;
  spec.from = p.from.map((s) =>
    nonEmpty({
      clusters: s.clusters,
      clusterLabels: s.clusterLabels,
      namespaces: s.namespaces,
      services: s.services,
      workloadLabels: s.workloadLabels,
      serviceAccounts: s.serviceAccounts,
    }),
  );
  spec.to = p.to.map((d) =>
    nonEmpty({
      clusters: d.clusters,
      clusterLabels: d.clusterLabels,
      namespaces: d.namespaces,
      services: d.services,
      ports: d.ports,
    }),
  );
  return stringify(
    { apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, metadata, spec },
    { lineWidth: 0 },
  );
}
