import type { KubeObject } from "../kube-object.js";
import {
  CONTENT_HASH_ANNOTATION,
  contentHash,
  INTENT_LABEL,
  INTENT_NAME_ANNOTATION,
  INTENT_VERSION_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  sha256Hex,
} from "../ownership.js";

export const CLUSTERSET_DOMAIN = "svc.clusterset.local";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
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
