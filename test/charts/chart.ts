// The charts as files: values against the values schema (with ajv, the JSON Schema draft helm
// uses) and the templates as text. render.ts renders them. See charts/README.md.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ErrorObject } from "ajv";
import { parse } from "yaml";

export const CHARTS_DIR = fileURLToPath(new URL("../../charts/", import.meta.url));

export type Values = Record<string, unknown>;

export interface Chart {
  name: string;
  dir: string;
  chartYaml: Record<string, unknown>;
  /** values.yaml, parsed. */
  values: Values;
  schema: Record<string, unknown>;
  readme: string;
  /** templates/_helpers.tpl */
  helpers: string;
  /** Every other file of templates/, by file name. */
  templates: Map<string, string>;
}

export function loadChart(name: string): Chart {
  const dir = join(CHARTS_DIR, name);
  const read = (file: string) => readFileSync(join(dir, file), "utf8");
  const templates = new Map<string, string>();
  for (const file of readdirSync(join(dir, "templates")).sort()) {
    if (file !== "_helpers.tpl") templates.set(file, read(join("templates", file)));
  }
  return {
    name,
    dir,
    chartYaml: parse(read("Chart.yaml")) as Record<string, unknown>,
    values: parse(read("values.yaml")) as Values,
    schema: JSON.parse(read("values.schema.json")) as Record<string, unknown>,
    readme: read("README.md"),
    helpers: read("templates/_helpers.tpl"),
    templates,
  };
}

/** The templates that render Kubernetes objects (not NOTES.txt). */
export function manifestTemplates(chart: Chart): [string, string][] {
  return [...chart.templates].filter(([file]) => file.endsWith(".yaml"));
}

function isObject(v: unknown): v is Values {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Helm's merge of user values over the chart defaults: maps merge key by key, anything
 * else replaces, null removes the key. */
export function mergeValues(defaults: Values, override: Values): Values {
  const out: Values = { ...defaults };
  for (const [key, value] of Object.entries(override)) {
    const base = out[key];
    if (value === null) delete out[key];
    else if (isObject(base) && isObject(value)) out[key] = mergeValues(base, value);
    else out[key] = value;
  }
  return out;
}

function describe(e: ErrorObject): string {
  const path = e.instancePath === "" ? "(root)" : e.instancePath;
  if (e.keyword === "additionalProperties") {
    return `${path}: unknown value "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  return `${path}: ${e.message}`;
}

/** A validator of a chart's values: returns every violation as "path: problem" (empty when
 * the values are valid). */
export function valuesValidator(chart: Chart): (values: Values) => string[] {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  const validate = ajv.compile(chart.schema);
  return (values) => (validate(values) ? [] : (validate.errors ?? []).map(describe));
}

/** Every `.Values.a.b` path a template refers to. */
export function valueRefs(text: string): string[] {
  return [...text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((m) => m[1]!.slice(1));
}

/** The names of the templates `include`d. */
export function includes(text: string): string[] {
  return [...text.matchAll(/include\s+"([^"]+)"/g)].map((m) => m[1]!);
}

/** The names `define`d. */
export function defines(text: string): string[] {
  return [...text.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]!);
}

/** The value at a dotted path (`a.b.c`), or undefined. */
export function at(values: unknown, path: string): unknown {
  let node: unknown = values;
  for (const key of path.split(".")) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

/** Every dotted path of values.yaml, descending into mappings except at `opaque` paths
 * (Kubernetes fields passed through whole). Mappings are listed as well as their keys. */
export function valuePaths(values: Values, opaque: ReadonlySet<string>, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    out.push(path);
    if (isObject(value) && !opaque.has(path)) out.push(...valuePaths(value, opaque, path));
  }
  return out;
}

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  $ref?: string;
  definitions?: Record<string, SchemaNode>;
}

/**
 * Object schemas that leave unknown keys open: any node with `properties` but without
 * `additionalProperties: false`, and any `type: object` node with neither properties nor a
 * typed additionalProperties, unless its path is in `opaque`. Follows $ref into definitions.
 */
export function openObjects(
  schema: Record<string, unknown>,
  opaque: ReadonlySet<string>,
): string[] {
  const root = schema as SchemaNode;
  const open: string[] = [];
  const resolve = (node: SchemaNode): SchemaNode => {
    if (node.$ref === undefined) return node;
    const name = node.$ref.replace("#/definitions/", "");
    const target = root.definitions?.[name];
    if (target === undefined) throw new Error(`unresolved $ref ${node.$ref}`);
    return resolve(target);
  };
  const walk = (raw: SchemaNode, path: string) => {
    const node = resolve(raw);
    const isObj = node.type === "object" || node.properties !== undefined;
    if (isObj && !opaque.has(path)) {
      const ap = node.additionalProperties;
      if (node.properties !== undefined) {
        if (ap !== false) open.push(path || "(root)");
      } else if (ap === undefined || ap === true) {
        open.push(path || "(root)");
      }
    }
    for (const [key, child] of Object.entries(node.properties ?? {}))
      walk(child, path === "" ? key : `${path}.${key}`);
    if (node.items !== undefined) walk(node.items, `${path}[]`);
  };
  walk(root, "");
  return open;
}
