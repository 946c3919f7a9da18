// ConnectionPolicy documents in YAML (JSON too: YAML reads it): one or more documents per
// text, each a ConnectionPolicy or a List of them (`kind: List`, as `kubectl get -o yaml`
// and `isthmus policy list -o yaml` print). Every problem of every document is reported.
import type { ConnectionPolicy } from "@isthmus/proto";
import { type Document, LineCounter, parseAllDocuments, stringify } from "yaml";
import { PolicyError, type PolicyErrorCode } from "./errors.js";
import { describe, type Json, policyFromObject, policyToObject } from "./policy-document.js";
import { POLICY_API_VERSION, POLICY_KIND } from "./policy-schema.js";
import { type FieldPath, formatPath } from "./policy-validate.js";

export { POLICY_API_VERSION, POLICY_KIND } from "./policy-schema.js";

/** A policy read from a text, with where it was written (for messages about it). */
export interface LocatedPolicy {
  policy: ConnectionPolicy;
  /** `rules.yaml: document 2` or `rules.yaml: document 1, items[3]`, then `, line 12`. */
  where: string;
}

/** One problem of a text, as a one-line message naming source, document, line and field. */
export interface TextProblem {
  message: string;
  code: PolicyErrorCode;
}

/** What a text holds: its policies when it has no problem, else every problem. */
export interface ReadPolicies {
  policies: LocatedPolicy[];
  problems: TextProblem[];
}

const LIST_KINDS: Record<string, string> = {
  List: "v1",
  [`${POLICY_KIND}List`]: POLICY_API_VERSION,
};

function lineOf(doc: Document, lines: LineCounter, path: FieldPath): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range !== undefined) return lines.linePos(range[0]).line;
  }
  return undefined;
}

/** The objects of one document: itself, or the items of a List (with their path). */
function objectsOf(
  value: Json,
  fail: (path: FieldPath, problem: string) => void,
): [Json, FieldPath][] {
  const map = typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
  const kind = typeof map.kind === "string" ? map.kind : "";
  const listVersion = LIST_KINDS[kind];
  if (listVersion === undefined) return [[value, []]];
  if (map.apiVersion !== listVersion) {
    fail(["apiVersion"], `must be ${JSON.stringify(listVersion)} for kind ${kind}`);
    return [];
  }
  for (const key of Object.keys(map)) {
    if (!["apiVersion", "kind", "metadata", "items"].includes(key))
      fail([key], "unknown field (expected one of apiVersion, kind, metadata, items)");
  }
  const items = map.items ?? [];
  if (!Array.isArray(items)) {
    fail(["items"], `must be a list of ${POLICY_KIND} objects, got ${describe(items)}`);
    return [];
  }
  return items.map((item, i) => [item, ["items", i]]);
}

/**
 * Reads ConnectionPolicy documents (multi-document YAML or JSON; Lists expanded). Empty
 * documents are skipped. Names must be unique within the text. Reports every problem.
 */
export function readPolicyText(text: string, source: string): ReadPolicies {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    prettyErrors: true,
    uniqueKeys: true,
  });
  const policies: LocatedPolicy[] = [];
  const problems: TextProblem[] = [];
  // parseAllDocuments returns an EmptyStream for empty input.
  if (!Array.isArray(docs)) return { policies, problems };
  const names = new Map<string, string>();
  docs.forEach((doc, i) => {
    const n = i + 1;
    const where = (line: number | undefined, prefix: FieldPath = []) =>
      `${source}: document ${n}${prefix.length > 0 ? `, ${formatPath(prefix)}` : ""}${
        line === undefined || Number.isNaN(line) ? "" : `, line ${line}`
      }`;
    const [err] = doc.errors;
    if (err !== undefined) {
      const first = err.message.split("\n")[0]!;
      const line =
        err.linePos?.[0]?.line ?? Number(/ at line (\d+)/.exec(first)?.[1] ?? Number.NaN);
      const message = first.replace(/ at line \d+, column \d+:?$/, "");
      problems.push({ message: `${where(line)}: invalid YAML: ${message}`, code: "invalid-yaml" });
      return;
    }
    let value: Json | undefined;
    try {
      value = doc.toJS({ maxAliasCount: 100 }) as Json | undefined;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      problems.push({ message: `${where(undefined)}: invalid YAML: ${why}`, code: "invalid-yaml" });
      return;
    }
    if (value === null || value === undefined) return;
    const objects = objectsOf(value, (path, problem) =>
      problems.push({
        message: `${where(lineOf(doc, lines, path))}: invalid list: ${formatPath(path)}: ${problem}`,
        code: "invalid-document",
      }),
    );
    for (const [object, prefix] of objects) {
      const read = policyFromObject(object);
      const subject =
        read.name === undefined
          ? "invalid policy document"
          : `invalid policy ${JSON.stringify(read.name)}`;
      // In the order of the text (a stable sort keeps the order of one line's problems).
      const located = read.problems
        .map((p) => ({ p, line: lineOf(doc, lines, [...prefix, ...p.path]) }))
        .sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
      for (const { p, line } of located) {
        const field = p.path.length === 0 ? "" : `${formatPath(p.path)}: `;
        problems.push({
          message: `${where(line, prefix)}: ${subject}: ${field}${p.problem}`,
          code: p.code,
        });
      }
      if (read.policy === undefined) continue;
      const at = where(lineOf(doc, lines, [...prefix, "metadata", "name"]), prefix);
      const prev = names.get(read.policy.name);
      if (prev !== undefined) {
        problems.push({
          message: `${at}: duplicate policy ${JSON.stringify(read.policy.name)}: also defined in ${prev}`,
          code: "duplicate-policy",
        });
        continue;
      }
      names.set(
        read.policy.name,
        `document ${n}${prefix.length > 0 ? `, ${formatPath(prefix)}` : ""}`,
      );
      policies.push({ policy: read.policy, where: at });
    }
  });
  return { policies, problems };
}

/** A PolicyError carrying every problem: its message has one line per problem. */
export function problemsError(problems: readonly TextProblem[]): PolicyError {
  const err = new PolicyError(problems.map((p) => p.message).join("\n"), problems[0]!.code);
  return Object.assign(err, { problems: problems.map((p) => p.message) });
}

/**
 * Parses ConnectionPolicy documents; throws a PolicyError naming the source, the document
 * (1-based), its line and the field of every problem, one line each.
 */
export function parsePolicyYaml(text: string, source: string): ConnectionPolicy[] {
  const read = readPolicyText(text, source);
  if (read.problems.length > 0) throw problemsError(read.problems);
  return read.policies.map((p) => p.policy);
}

/** The YAML document of a policy (for `policy get -o yaml`); parsePolicyYaml reads it back. */
export function policyToYaml(p: ConnectionPolicy): string {
  return stringify(policyToObject(p), { lineWidth: 0 });
}
