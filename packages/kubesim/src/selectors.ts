import type { KubeObject } from "./object.js";
import { readJsonPath } from "./object.js";
import { badRequest } from "./status.js";

type LabelOp = "=" | "!=" | "in" | "notin" | "exists" | "!exists" | "gt" | "lt";

interface LabelRequirement {
  key: string;
  op: LabelOp;
  values: string[];
}

/** A parsed label selector; `matches` is called once per object per list or event. */
export interface Selector {
  readonly empty: boolean;
  matches(obj: KubeObject): boolean;
}

const everything: Selector = { empty: true, matches: () => true };

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

const keyPattern =
  /^([a-z0-9A-Z]([-a-z0-9A-Z.]*[a-z0-9A-Z])?\/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/;

function checkKey(key: string, selector: string): string {
  if (!keyPattern.test(key)) {
    throw badRequest(`unable to parse requirement: invalid label key "${key}" in "${selector}"`);
  }
  return key;
}

function parseRequirement(req: string, selector: string): LabelRequirement {
  let m = /^!\s*(\S+)$/.exec(req);
  if (m) return { key: checkKey(m[1]!, selector), op: "!exists", values: [] };
  m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(req);
  if (m) {
    const values = m[3]!
      .split(",")
      .map((v) => v.trim())
      .filter((v) => v !== "");
    return { key: checkKey(m[1]!, selector), op: m[2] as "in" | "notin", values };
  }
  m = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$/.exec(req);
  if (m) {
    const raw = m[2]!;
    const op: LabelOp = raw === "!=" ? "!=" : raw === ">" ? "gt" : raw === "<" ? "lt" : "=";
    return { key: checkKey(m[1]!, selector), op, values: [m[3]!] };
  }
  if (/^\S+$/.test(req)) return { key: checkKey(req, selector), op: "exists", values: [] };
  throw badRequest(`unable to parse requirement: "${req}" in label selector "${selector}"`);
}

function matchRequirement(
  labels: Record<string, string> | undefined,
  r: LabelRequirement,
): boolean {
  const has = labels !== undefined && Object.hasOwn(labels, r.key);
  const v = has ? labels[r.key] : undefined;
  switch (r.op) {
    case "=":
      return has && v === r.values[0];
    case "!=":
      return !has || v !== r.values[0];
    case "in":
      return has && r.values.includes(v!);
    case "notin":
      return !has || !r.values.includes(v!);
    case "exists":
      return has;
    case "!exists":
      return !has;
    case "gt":
      return has && Number(v) > Number(r.values[0]);
    case "lt":
      return has && Number(v) < Number(r.values[0]);
  }
}

/** Parses a label selector string (`a=b,c!=d,e in (x,y),!f`); throws 400 BadRequest. */
export function parseLabelSelector(selector: string | undefined): Selector {
  if (selector === undefined || selector.trim() === "") return everything;
  const reqs = splitTopLevel(selector).map((r) => parseRequirement(r, selector));
  return {
    empty: false,
    matches: (obj) => reqs.every((r) => matchRequirement(obj.metadata.labels, r)),
  };
}

const fieldsByKind: Record<string, string[]> = {
  Pod: [
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "spec.hostNetwork",
  ],
  Event: [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
    "source",
  ],
  Secret: ["type"],
  Namespace: ["status.phase"],
  Node: ["spec.unschedulable"],
  Service: ["spec.clusterIP", "spec.type"],
};

/** Parses a field selector; only fields the real server indexes for the kind are accepted. */
export function parseFieldSelector(selector: string | undefined, kind: string): Selector {
  if (selector === undefined || selector.trim() === "") return everything;
  const allowed = new Set(["metadata.name", "metadata.namespace", ...(fieldsByKind[kind] ?? [])]);
  const reqs = selector.split(",").map((part) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const field = m[1]!;
    if (!allowed.has(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    return { field, negate: m[2] === "!=", value: m[3]! };
  });
  return {
    empty: false,
    matches: (obj) =>
      reqs.every((r) => {
        const raw = readJsonPath(obj, r.field);
        const v = raw === undefined || raw === null ? "" : String(raw);
        return r.negate ? v !== r.value : v === r.value;
      }),
  };
}

export function both(a: Selector, b: Selector): Selector {
  if (a.empty) return b;
  if (b.empty) return a;
  return { empty: false, matches: (o) => a.matches(o) && b.matches(o) };
}
