/** Object metadata as the simulator reads and writes it. Unknown fields are kept. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** Any Kubernetes object, as JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A deep copy. Objects are JSON in practice, so plain objects and arrays are copied here by
 * hand: several times cheaper than `structuredClone`, which serializes its input first, and a
 * copy is made on every write. Anything else (a Date, a Buffer) goes through `structuredClone`. */
export function clone<T>(v: T): T {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) {
    const a = new Array(v.length);
    for (let i = 0; i < v.length; i++) a[i] = clone(v[i]);
    return a as T;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return structuredClone(v);
  const o: Record<string, unknown> = proto === null ? Object.create(null) : {};
  for (const k of Object.keys(v)) {
    const c = clone((v as Record<string, unknown>)[k]);
    // JSON.parse makes "__proto__" an own key; an assignment would set the prototype instead.
    if (k === "__proto__")
      Object.defineProperty(o, k, {
        value: c,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else o[k] = c;
  }
  return o as T;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(bo, k) || !deepEqual(ao[k], bo[k])) return false;
  }
  return true;
}

/** Reads `.a.b[0].c` style paths (the subset used by printer columns). */
export function readJsonPath(obj: unknown, path: string): unknown {
  const parts = path.replace(/^\./, "").match(/[^.[\]]+|\[\d+\]/g) ?? [];
  let cur: unknown = obj;
  for (const p of parts) {
    if (cur === null || cur === undefined) return undefined;
    if (p.startsWith("[")) {
      cur = Array.isArray(cur) ? cur[Number(p.slice(1, -1))] : undefined;
    } else {
      cur = isPlainObject(cur) ? cur[p] : undefined;
    }
  }
  return cur;
}
