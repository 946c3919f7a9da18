import { createHash } from "node:crypto";
import type { KubeObject } from "./types.js";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "isthmus";
export const INTENT_LABEL = "isthmus.dev/intent";
export const INTENT_NAME_ANNOTATION = "isthmus.dev/intent-name";
export const INTENT_VERSION_ANNOTATION = "isthmus.dev/intent-version";
export const CONTENT_HASH_ANNOTATION = "isthmus.dev/content-hash";
/** JSON of the intent an Import or Export object was rendered from, so that a restarted
 * agent can re-render it when local endpoints change without asking the hub. */
export const INTENT_SOURCE_ANNOTATION = "isthmus.dev/intent-source";

export const CLUSTERSET_DOMAIN = "svc.clusterset.local";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** `<name>.<ns>.svc.clusterset.local` */
export function clustersetHost(namespace: string, service: string): string {
  return `${service}.${namespace}.${CLUSTERSET_DOMAIN}`;
}

/** `<cluster>.<name>.<ns>.svc.clusterset.local` */
export function clusterHost(cluster: string, namespace: string, service: string): string {
  return `${cluster}.${service}.${namespace}.${CLUSTERSET_DOMAIN}`;
}

/**
 * A deterministic DNS-1123 label `isthmus-<prefix>-<parts…>`. Names with more than one part,
 * or longer than 63 characters, end in a hash of the parts, so that two different part
 * lists never give the same readable name (`a` + `b-c` vs `a-b` + `c`).
 */
export function objectName(prefix: string, ...parts: string[]): string {
  const readable = `isthmus-${prefix}-${parts.join("-")}`;
  if (parts.length === 1 && readable.length <= 63) return readable;
  const hash = sha256Hex(JSON.stringify([prefix, ...parts])).slice(0, 8);
  return `${readable.slice(0, 63 - 9).replace(/-+$/, "")}-${hash}`;
}

/**
 * The intent name as a label value: `/` becomes `.`; other characters a label value cannot
 * hold become `_`; names longer than 63 characters are cut and end in a hash. The exact name
 * is kept in the `isthmus.dev/intent-name` annotation.
 */
export function escapeIntentName(name: string): string {
  let v = name.replaceAll("/", ".").replace(/[^-A-Za-z0-9_.]/g, "_");
  if (v.length > 63 || !LABEL_VALUE.test(v)) {
    const hash = sha256Hex(name).slice(0, 8);
    v = `${v
      .slice(0, 54)
      .replace(/^[^A-Za-z0-9]+/, "")
      .replace(/[^A-Za-z0-9]+$/, "")}-${hash}`;
    if (!/^[A-Za-z0-9]/.test(v)) v = `i${v}`;
  }
  return v;
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

/**
 * The content hash of a rendered object: everything the agent writes (spec, labels,
 * annotations) except the hash annotation itself. Equal hashes mean a write would be a no-op.
 */
export function contentHash(obj: KubeObject): string {
  let annotations = obj.metadata.annotations ?? {};
  if (annotations[CONTENT_HASH_ANNOTATION] !== undefined) {
    annotations = { ...annotations };
    delete annotations[CONTENT_HASH_ANNOTATION];
  }
  const content: Record<string, unknown> = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace,
    labels: obj.metadata.labels,
    annotations,
  };
  for (const k of Object.keys(obj)) {
    if (k !== "metadata" && k !== "apiVersion" && k !== "kind") content[k] = obj[k];
  }
  return sha256Hex(canonicalJson(content)).slice(0, 32);
}

/** Completes an object with the ownership labels, version and content hash. */
export function finish(
  obj: KubeObject & { metadata: { name: string; namespace: string } },
  intentName: string,
  intentVersion: string,
  extraAnnotations: Record<string, string> = {},
): KubeObject {
  const out: KubeObject = {
    ...obj,
    metadata: {
      ...obj.metadata,
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [INTENT_LABEL]: escapeIntentName(intentName),
      },
      annotations: {
        [INTENT_NAME_ANNOTATION]: intentName,
        [INTENT_VERSION_ANNOTATION]: intentVersion,
        ...extraAnnotations,
      },
    },
  };
  out.metadata.annotations![CONTENT_HASH_ANNOTATION] = contentHash(out);
  return out;
}

/** Whether a live object carries the Isthmus ownership label. */
export function isOwned(obj: { metadata?: { labels?: Record<string, string> } }): boolean {
  return obj.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}
