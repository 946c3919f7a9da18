// A ConnectionPolicy object (the Kubernetes-style document, parsed) to and from the proto
// form. Reading reports every problem of the object, each at its field path, checked
// against the one description of the document in policy-schema.ts.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Action,
  type ConnectionPolicy,
  ConnectionPolicySchema,
  type DestinationSelectorSchema,
  type SourceSelectorSchema,
} from "@isthmus/proto";
import {
  DESTINATION_FIELDS,
  LABEL_KEY_PATTERN,
  METADATA_FIELDS,
  POLICY_API_VERSION,
  POLICY_KIND,
  type SelectorField,
  SOURCE_FIELDS,
  SPEC_FIELDS,
  TOP_FIELDS,
} from "./policy-schema.js";
import { type FieldPath, normalizePolicy, policyViolations } from "./policy-validate.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonMap = { [key: string]: Json };

const ANNOTATION_KEY_RE = new RegExp(LABEL_KEY_PATTERN);

/** One problem of a document, at a path in document terms (spec.from[0].clusters). */
export interface DocumentProblem {
  path: FieldPath;
  problem: string;
  /** "invalid-document": not the shape of a ConnectionPolicy; "invalid-policy": a value. */
  code: "invalid-document" | "invalid-policy";
}

/** What reading one object gave: the policy when it has no problem, else every problem. */
export interface ReadPolicy {
  policy?: ConnectionPolicy;
  /** metadata.name when it is a string, to name the policy in messages. */
  name?: string;
  problems: DocumentProblem[];
}

function isMap(v: Json | undefined): v is JsonMap {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function describe(v: Json | undefined): string {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Collects problems while reading; each reader returns a value even when it finds one. */
class Reader {
  readonly problems: DocumentProblem[] = [];

  fail(path: FieldPath, problem: string): void {
    this.problems.push({ path, problem, code: "invalid-document" });
  }

  map(v: Json | undefined, path: FieldPath, allowed?: readonly string[]): JsonMap | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isMap(v)) {
      this.fail(path, `must be a mapping, got ${describe(v)}`);
      return undefined;
    }
    if (allowed !== undefined) {
      for (const key of Object.keys(v)) {
        if (!allowed.includes(key))
          this.fail([...path, key], `unknown field (expected one of ${allowed.join(", ")})`);
      }
    }
    return v;
  }

  list(v: Json | undefined, path: FieldPath, what: string): Json[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(path, `must be a list of ${what}, got ${describe(v)}`);
      return [];
    }
    return v;
  }

  strings(v: Json | undefined, path: FieldPath): string[] {
    const out: string[] = [];
    this.list(v, path, "strings").forEach((item, i) => {
      if (typeof item === "string") out.push(item);
      else this.fail([...path, i], `must be a string, got ${describe(item)}`);
    });
    return out;
  }

  ports(v: Json | undefined, path: FieldPath): number[] {
    const out: number[] = [];
    this.list(v, path, "port numbers").forEach((item, i) => {
      if (typeof item === "number" && Number.isInteger(item)) out.push(item);
      else this.fail([...path, i], `must be a port number, got ${describe(item)}`);
    });
    return out;
  }

  labels(v: Json | undefined, path: FieldPath): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(this.map(v, path) ?? {})) {
      if (typeof val === "string") out[k] = val;
      else {
        const hint =
          typeof val === "number" || typeof val === "boolean" ? ` (quote it: "${val}")` : "";
        this.fail([...path, k], `must be a string, got ${describe(val)}${hint}`);
      }
    }
    return out;
  }

  selector(
    v: Json,
    path: FieldPath,
    fields: Record<string, SelectorField>,
  ): Record<string, unknown> {
    const map = this.map(v, path, Object.keys(fields));
    if (map === undefined && (v === null || v === undefined))
      this.fail(path, "must be a mapping, got null");
    const out: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(fields)) {
      const at = [...path, name];
      const value = map?.[name];
      if (field.type === "names") out[name] = this.strings(value, at);
      else if (field.type === "labels") out[name] = this.labels(value, at);
      else out[name] = this.ports(value, at);
    }
    return out;
  }
}

function readAction(r: Reader, v: Json | undefined): Action {
  if (v === "ALLOW") return Action.ALLOW;
  if (v === "DENY") return Action.DENY;
  if (v === undefined || v === null) r.fail(["spec", "action"], "required (ALLOW or DENY)");
  else r.fail(["spec", "action"], `must be ALLOW or DENY, got ${describe(v)}`);
  return Action.UNSPECIFIED;
}

/** Where a violation of the proto form sits in the document. */
function documentPath(path: FieldPath): FieldPath {
  if (path[0] === "name") return ["metadata", "name"];
  if (path[0] === "labels") return ["metadata", ...path];
  return ["spec", ...path];
}

/** Whether one path is the other or lies inside it. */
function overlaps(a: FieldPath, b: FieldPath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Reads one ConnectionPolicy object (apiVersion, kind, metadata, spec). Every problem is
 * reported; a value check is left out where the field already has a shape problem.
 * The policy returned is normalized (policy-validate.ts normalizePolicy).
 */
export function policyFromObject(value: Json | undefined): ReadPolicy {
  const r = new Reader();
  if (!isMap(value)) {
    r.fail([], `must be a mapping, got ${describe(value)}`);
    return { problems: r.problems };
  }
  if (value.apiVersion !== POLICY_API_VERSION) {
    r.fail(
      ["apiVersion"],
      `must be ${JSON.stringify(POLICY_API_VERSION)}, got ${describe(value.apiVersion)}`,
    );
  } else if (value.kind !== POLICY_KIND) {
    r.fail(["kind"], `must be ${JSON.stringify(POLICY_KIND)}, got ${describe(value.kind)}`);
  }
  // Not a ConnectionPolicy at all: its fields mean nothing.
  if (r.problems.length > 0) return { problems: r.problems };
  r.map(value, [], TOP_FIELDS);
  const metadata = r.map(value.metadata, ["metadata"], METADATA_FIELDS) ?? {};
  const name = typeof metadata.name === "string" ? metadata.name : undefined;
  if (value.metadata === undefined || value.metadata === null) r.fail(["metadata"], "required");
  else if (metadata.name !== undefined && name === undefined)
    r.fail(["metadata", "name"], `must be a string, got ${describe(metadata.name)}`);
  else if (name === undefined || name === "") r.fail(["metadata", "name"], "required");
  const labels = r.labels(metadata.labels, ["metadata", "labels"]);
  // Annotations are read (a kubectl-made document has some) and not kept.
  for (const key of Object.keys(r.labels(metadata.annotations, ["metadata", "annotations"]))) {
    if (!ANNOTATION_KEY_RE.test(key))
      r.fail(["metadata", "annotations", key], `invalid annotation key ${JSON.stringify(key)}`);
  }
  const resourceVersion = metadata.resourceVersion ?? "";
  if (typeof resourceVersion !== "string") {
    r.fail(["metadata", "resourceVersion"], `must be a string, got ${describe(resourceVersion)}`);
  }
  const spec = r.map(value.spec, ["spec"], SPEC_FIELDS) ?? {};
  if (value.spec === undefined) r.fail(["spec"], "required");
  const priority = spec.priority ?? 0;
  if (typeof priority !== "number" || !Number.isInteger(priority))
    r.fail(["spec", "priority"], `must be an integer, got ${describe(priority)}`);
  // No spec at all: that one problem says it; its fields' problems would only repeat it.
  const action = value.spec === undefined ? Action.UNSPECIFIED : readAction(r, spec.action);
  const description = spec.description ?? "";
  if (typeof description !== "string")
    r.fail(["spec", "description"], `must be a string, got ${describe(description)}`);
  const from = r
    .list(spec.from, ["spec", "from"], "selectors")
    .map(
      (s, i) =>
        r.selector(s, ["spec", "from", i], SOURCE_FIELDS) as MessageInitShape<
          typeof SourceSelectorSchema
        >,
    );
  const to = r
    .list(spec.to, ["spec", "to"], "selectors")
    .map(
      (d, i) =>
        r.selector(d, ["spec", "to", i], DESTINATION_FIELDS) as MessageInitShape<
          typeof DestinationSelectorSchema
        >,
    );
  const policy = create(ConnectionPolicySchema, {
    name: name ?? "",
    priority: typeof priority === "number" && Number.isInteger(priority) ? priority : 0,
    action,
    description: typeof description === "string" ? description : "",
    resourceVersion: typeof resourceVersion === "string" ? resourceVersion : "",
    labels,
    from,
    to,
  });
  const shape = [...r.problems];
  for (const v of policyViolations(policy)) {
    const path = documentPath(v.path);
    if (shape.some((p) => overlaps(p.path, path))) continue;
    r.problems.push({ path, problem: v.problem, code: "invalid-policy" });
  }
  if (r.problems.length > 0)
    return { ...(name === undefined ? {} : { name }), problems: r.problems };
  return { policy: normalizePolicy(policy), name: policy.name, problems: [] };
}

function nonEmpty<T extends object>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(obj) as [keyof T, unknown][]) {
    const empty = Array.isArray(v)
      ? v.length === 0
      : typeof v === "object" && v !== null && Object.keys(v).length === 0;
    if (!empty) out[k] = v as T[keyof T];
  }
  return out;
}

const ACTION_WORDS: Record<number, string> = {
  [Action.ALLOW]: "ALLOW",
  [Action.DENY]: "DENY",
  [Action.UNSPECIFIED]: "UNSPECIFIED",
};

/** The ConnectionPolicy object of a policy: what `-o yaml|json` print and apply reads back. */
export function policyToObject(p: ConnectionPolicy): JsonMap {
  const metadata: JsonMap = { name: p.name };
  if (Object.keys(p.labels).length > 0) metadata.labels = { ...p.labels };
  if (p.resourceVersion !== "") metadata.resourceVersion = p.resourceVersion;
  const spec: JsonMap = { priority: p.priority, action: ACTION_WORDS[p.action] ?? "UNSPECIFIED" };
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
  ) as Json[];
  spec.to = p.to.map((d) =>
    nonEmpty({
      clusters: d.clusters,
      clusterLabels: d.clusterLabels,
      namespaces: d.namespaces,
      services: d.services,
      ports: d.ports,
    }),
  ) as Json[];
  return { apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, metadata, spec };
}

/** A list of policies as Kubernetes prints one (`kubectl get -o yaml`); apply reads it back. */
export function policyListObject(policies: readonly ConnectionPolicy[]): JsonMap {
  return { apiVersion: "v1", kind: "List", items: policies.map(policyToObject) };
}
