// kubectl's JSONPath templates for `-o jsonpath=<template>`: literal text with `{expr}`
// blocks, `{range expr}…{end}` loops and string literals (`{"\n"}`). Written here rather than
// taken from a JSONPath library: those (jsonpath-plus, jsonpath) parse `$.a.b` expressions, not
// kubectl's template syntax around them, and the subset users type is small:
// `.field`, `['field']`, `[n]` (negative from the end), `[*]`, `[a:b]`, `..field`, `@`.
import { UsageError } from "./usage-error.js";

type Step =
  | { kind: "field"; name: string }
  | { kind: "index"; index: number }
  | { kind: "slice"; start: number | undefined; end: number | undefined }
  | { kind: "wildcard" }
  | { kind: "recursive"; name: string };

type Node =
  | { kind: "text"; text: string }
  | { kind: "path"; steps: Step[] }
  | { kind: "range"; steps: Step[]; body: Node[] };

function syntax(template: string, why: string): UsageError {
  return new UsageError(`-o jsonpath=${template}: ${why}`);
}

/** Each step's syntax and the step a match makes, tried in order. */
const STEP_SYNTAX: [RegExp, (m: RegExpExecArray) => Step | undefined][] = [
  [/^\.\.([A-Za-z0-9_-]+)/, (m) => ({ kind: "recursive", name: m[1]! })],
  [/^\.([A-Za-z0-9_-]+)/, (m) => ({ kind: "field", name: m[1]! })],
  [/^\.?\[\*\]|^\.\*/, () => ({ kind: "wildcard" })],
  [
    /^\.?\[\s*'([^']*)'\s*\]|^\.?\[\s*"([^"]*)"\s*\]/,
    (m) => ({ kind: "field", name: m[1] ?? m[2]! }),
  ],
  [/^\.?\[\s*(-?\d+)\s*\]/, (m) => ({ kind: "index", index: Number(m[1]) })],
  [
    /^\.?\[\s*(-?\d+)?\s*:\s*(-?\d+)?\s*\]/,
    (m) => ({
      kind: "slice",
      start: m[1] === undefined ? undefined : Number(m[1]),
      end: m[2] === undefined ? undefined : Number(m[2]),
    }),
  ],
  // A lone "." (`{.}`) is the value itself.
  [/^\.$/, () => undefined],
];

function parseSteps(expr: string, template: string): Step[] {
  const steps: Step[] = [];
  let rest = expr.trim().replace(/^[$@]/, "");
  while (rest.length > 0) {
    const found = STEP_SYNTAX.map(([re, make]) => [re.exec(rest), make] as const).find(
      ([m]) => m !== null,
    );
    if (found === undefined)
      throw syntax(
        template,
        `unsupported expression at "${rest}" (supported: .field, ['field'], [n], [*], [a:b], ..field)`,
      );
    const [m, make] = found;
    const step = make(m!);
    if (step !== undefined) steps.push(step);
    rest = rest.slice(m![0].length);
  }
  return steps;
}

/** Parses a kubectl JSONPath template; errors name the template and the unsupported part. */
export function parseTemplate(template: string): Node[] {
  const root: Node[] = [];
  const stack: Node[][] = [root];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    const current = stack[stack.length - 1]!;
    if (open < 0) {
      current.push({ kind: "text", text: template.slice(i) });
      break;
    }
    if (open > i) current.push({ kind: "text", text: template.slice(i, open) });
    const close = template.indexOf("}", open);
    if (close < 0) throw syntax(template, "unclosed {");
    const inner = template.slice(open + 1, close).trim();
    i = close + 1;
    const literal = /^"((?:[^"\\]|\\.)*)"$|^'([^']*)'$/.exec(inner);
    if (literal !== null) {
      const text =
        literal[1] === undefined ? literal[2]! : (JSON.parse(`"${literal[1]}"`) as string);
      current.push({ kind: "text", text });
    } else if (inner.startsWith("range ")) {
      const body: Node[] = [];
      current.push({ kind: "range", steps: parseSteps(inner.slice(6), template), body });
      stack.push(body);
    } else if (inner === "end") {
      if (stack.length === 1) throw syntax(template, "{end} without {range}");
      stack.pop();
    } else {
      current.push({ kind: "path", steps: parseSteps(inner, template) });
    }
  }
  if (stack.length > 1) throw syntax(template, "{range} without {end}");
  return root;
}

function apply(step: Step, values: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const v of values) {
    if (step.kind === "field") {
      if (v !== null && typeof v === "object" && !Array.isArray(v) && step.name in v)
        out.push((v as Record<string, unknown>)[step.name]);
    } else if (step.kind === "index") {
      if (Array.isArray(v)) {
        const item = v[step.index < 0 ? v.length + step.index : step.index];
        if (item !== undefined) out.push(item);
      }
    } else if (step.kind === "slice") {
      if (Array.isArray(v)) out.push(...v.slice(step.start, step.end));
    } else if (step.kind === "wildcard") {
      if (Array.isArray(v)) out.push(...v);
      else if (v !== null && typeof v === "object") out.push(...Object.values(v));
    } else {
      const visit = (x: unknown): void => {
        if (x === null || typeof x !== "object") return;
        if (!Array.isArray(x) && step.name in x)
          out.push((x as Record<string, unknown>)[step.name]);
        for (const child of Object.values(x)) visit(child);
      };
      visit(v);
    }
  }
  return out;
}

function evaluate(steps: Step[], value: unknown): unknown[] {
  return steps.reduce<unknown[]>((values, step) => apply(step, values), [value]);
}

function show(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function render(nodes: Node[], value: unknown): string {
  let out = "";
  for (const node of nodes) {
    if (node.kind === "text") out += node.text;
    else if (node.kind === "path") out += evaluate(node.steps, value).map(show).join(" ");
    else for (const item of evaluate(node.steps, value)) out += render(node.body, item);
  }
  return out;
}

/** The template applied to a JSON value, as `kubectl -o jsonpath=` prints it: several results
 * of one expression joined by a space, objects and arrays as JSON, a missing field as nothing. */
export function jsonPath(template: string, value: unknown): string {
  return render(parseTemplate(template), value);
}
