// Drift: what someone else did to an object the agent owns, and the object that undoes it.

import type { KubeObject } from "../kube-object.js";
import { MANAGED_BY_LABEL } from "../ownership.js";

/** "changed": the live content differed from what the agent wrote; "deleted": it was gone. */
export type DriftChange = "changed" | "deleted";

/** One owned object the agent restored after someone else changed or deleted it. */
export interface DriftRepair {
  intentName: string;
  /** "Kind namespace/name". */
  object: string;
  kind: string;
  change: DriftChange;
  time: Date;
}

const isIsthmusKey = (k: string) => k === MANAGED_BY_LABEL || k.startsWith("isthmus.dev/");

/** Others' keys of `live` with the rendered ones over them; Isthmus keys only as rendered. */
function mergeKeys(
  live: Record<string, string> | undefined,
  rendered: Record<string, string> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(live ?? {})) if (!isIsthmusKey(k)) out[k] = v;
  return Object.assign(out, rendered);
}

/**
 * The whole object to PUT when server-side apply left someone else's fields in place (a
 * field that `kubectl edit` added belongs to that manager, and an apply that omits it keeps
 * it): the server's object with the rendered spec and Isthmus labels and annotations, others'
 * labels and annotations kept. Conditional on the server object's resourceVersion.
 * `managedFields` is left out, so that the server keeps the field owners it has.
 */
export function restoredObject(server: KubeObject, rendered: KubeObject): KubeObject {
  const { managedFields: _owners, ...meta } = server.metadata;
  const out: KubeObject = {
    apiVersion: server.apiVersion,
    kind: server.kind,
    metadata: {
      ...meta,
      labels: mergeKeys(server.metadata.labels, rendered.metadata.labels),
      annotations: mergeKeys(server.metadata.annotations, rendered.metadata.annotations),
    },
  };
  for (const k of Object.keys(rendered)) {
    if (k !== "apiVersion" && k !== "kind" && k !== "metadata") out[k] = rendered[k];
  }
  if (server.status !== undefined) out.status = server.status;
  return out;
}
