// Reading untrusted JSON: every accessor accepts anything and returns the shape it promises.
import type { KubeObject, Labels } from "./types.js";

export function asRecord(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : {};
}

export function asList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A string field, "" when absent or not a string. */
export function asString(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** Any scalar as a string ("" for absent and objects). */
export function str(v: unknown): string {
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : "";
}

/** A list of strings; undefined when the field is absent or an empty list (Istio: unset). */
export function stringList(v: unknown): string[] | undefined {
  const list = asList(v).map(str);
  return list.length > 0 ? list : undefined;
}

export function labelsOf(o: KubeObject): Labels {
  return o.metadata?.labels ?? {};
}

/** Every selector label is on the object (an empty selector selects everything). */
export function matchesLabels(selector: Labels, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/**
 * Istio's string match for authorization values: `*` matches any non-empty value, `abc*` a
 * prefix, `*abc` a suffix, anything else exactly.
 */
export function istioMatch(pattern: string, value: string): boolean {
  if (pattern === "*") return value !== "";
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  return pattern === value;
}

/** A match with `*` anywhere (Istio's namespace matcher joins the literal parts with `.*`). */
export function globMatch(pattern: string, value: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === value;
  if (!value.startsWith(parts[0]!) || !value.endsWith(parts[parts.length - 1]!)) return false;
  let at = parts[0]!.length;
  const end = value.length - parts[parts.length - 1]!.length;
  for (const mid of parts.slice(1, -1)) {
    const i = value.indexOf(mid, at);
    if (i < 0 || i + mid.length > end) return false;
    at = i + mid.length;
  }
  return at <= end;
}

/** Host match as Istio does for Sidecar egress and Gateway hosts: `*.x` matches any name under x. */
export function hostMatch(pattern: string, host: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*")) return host.endsWith(pattern.slice(1));
  return pattern === host;
}
