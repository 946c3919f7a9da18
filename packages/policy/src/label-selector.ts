// Kubernetes label selectors (`kubectl -l`): `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
// `k notin (a,b)`, `k`, `!k`, joined by commas (AND). Used by `policy apply --prune -l`.
import { PolicyError } from "./errors.js";
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from "./policy-schema.js";

type Requirement =
  | { op: "in" | "notin"; key: string; values: string[] }
  | { op: "exists" | "absent"; key: string };

/** A parsed selector: matches a label set when every requirement holds. */
export interface LabelSelector {
  readonly text: string;
  matches(labels: Readonly<Record<string, string>>): boolean;
}

const KEY_RE = new RegExp(LABEL_KEY_PATTERN);
const VALUE_RE = new RegExp(LABEL_VALUE_PATTERN);

function fail(text: string, why: string): never {
  throw new PolicyError(`invalid label selector ${JSON.stringify(text)}: ${why}`, "invalid-policy");
}

/** Splits at commas outside parentheses. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")") depth--;
    else if (text[i] === "," && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((t) => t.trim());
}

function requirement(text: string, term: string): Requirement {
  const check = (key: string, values: string[]) => {
    if (!KEY_RE.test(key)) fail(text, `invalid label key ${JSON.stringify(key)}`);
    for (const v of values)
      if (!VALUE_RE.test(v)) fail(text, `invalid label value ${JSON.stringify(v)}`);
  };
  let m = /^(!?)\s*([^\s=!(),]+)$/.exec(term);
  if (m !== null) {
    check(m[2]!, []);
    return { op: m[1] === "!" ? "absent" : "exists", key: m[2]! };
  }
  m = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(term);
  if (m !== null) {
    check(m[1]!, [m[3]!]);
    return { op: m[2] === "!=" ? "notin" : "in", key: m[1]!, values: [m[3]!] };
  }
  m = /^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term);
  if (m !== null) {
    const values = m[3]!.split(",").map((v) => v.trim());
    check(m[1]!, values);
    return { op: m[2] as "in" | "notin", key: m[1]!, values };
  }
  return fail(
    text,
    `cannot read ${JSON.stringify(term)} (expected k=v, k!=v, k in (a,b), k notin (a,b), k or !k)`,
  );
}

/** Parses a selector; throws a PolicyError naming the term it cannot read. */
export function parseLabelSelector(text: string): LabelSelector {
  if (text.trim() === "") fail(text, "empty");
  const reqs = terms(text).map((t) => {
    if (t === "") fail(text, "empty term");
    return requirement(text, t);
  });
  return {
    text,
    matches(labels) {
      return reqs.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        if (r.op === "exists") return has;
        if (r.op === "absent") return !has;
        if (r.op === "in") return has && r.values.includes(labels[r.key]!);
        if (r.op === "notin") return !has || !r.values.includes(labels[r.key]!);
        return false;
      });
    },
  };
}
