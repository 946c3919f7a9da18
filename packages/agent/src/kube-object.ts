// A Kubernetes object as the agent handles it (plain JSON), and the canonical JSON that its
// hashes and cache keys are computed from. Below render/, kube/ and discovery/: all use it.
/** A Kubernetes object as JSON: what the renderer produces and the applier writes. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  [key: string]: unknown;
}

/** "Kind namespace/name", the way objects are named in errors and work queue keys. */
export function objectRef(o: { kind: string; metadata: { name: string; namespace?: string } }) {
  return `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}

/** JSON with object keys sorted, so that equal content gives equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  // One string built in place (no entry arrays): every rendered object is hashed this way.
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      // An element JSON cannot hold (undefined, a function) stays empty, as in `join`.
      out += canonicalJson(value[i]) ?? "";
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  // Sorted in UTF-16 code units, as the default sort (and `<`) orders strings; a few keys
  // (nearly every object here) by insertion in place, since Array.prototype.sort allocates
  // a work area per call: every rendered object is hashed this way, and the garbage adds up.
  if (keys.length > 32) keys.sort();
  else
    for (let i = 1; i < keys.length; i++) {
      const k = keys[i]!;
      let j = i - 1;
      for (; j >= 0 && keys[j]! > k; j--) keys[j + 1] = keys[j]!;
      keys[j + 1] = k;
    }
  let out = "{";
  for (const k of keys) {
    const v = record[k];
    if (v === undefined) continue;
    if (out.length > 1) out += ",";
    out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}
