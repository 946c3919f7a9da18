// The labels and annotations that mark an object as the agent's: ownership, the intent it
// was rendered from, and the content hash that tells whether a write would change anything.
import { createHash } from "node:crypto";
import { canonicalJson, type KubeObject } from "./kube-object.js";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "isthmus";
export const INTENT_LABEL = "isthmus.dev/intent";
export const INTENT_NAME_ANNOTATION = "isthmus.dev/intent-name";
export const INTENT_VERSION_ANNOTATION = "isthmus.dev/intent-version";
export const CONTENT_HASH_ANNOTATION = "isthmus.dev/content-hash";
/** JSON of the intent an Import or Export object was rendered from, so that a restarted
 * agent can re-render it when local endpoints change without asking the hub. */
export const INTENT_SOURCE_ANNOTATION = "isthmus.dev/intent-source";

export function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
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

/** Whether a live object carries the Isthmus ownership label. */
export function isOwned(obj: { metadata?: { labels?: Record<string, string> } }): boolean {
  return obj.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}
