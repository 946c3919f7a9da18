// The fields the API server fills in when an object is created (or, for a namespace's name
// label, on every write), as its defaulting and admission would.
import type { KubeObject } from "./object.js";
import { isPlainObject } from "./object.js";
import type { ResourceType } from "./resources.js";

/** A timestamp as the API server writes them: RFC 3339 in UTC, whole seconds. */
export function timestamp(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** `kubernetes.io/metadata.name`: the label the API server puts on every namespace (its name),
 * so that a namespace selector can pick one namespace by name. */
export function nameLabel(ns: KubeObject): void {
  ns.metadata.labels = { ...ns.metadata.labels, "kubernetes.io/metadata.name": ns.metadata.name };
}

/** Server-side defaults the real API server sets on create; `clusterIp` allocates a Service's
 * ClusterIP. */
export function applyServerDefaults(
  t: ResourceType,
  obj: KubeObject,
  trusted: boolean,
  clusterIp: () => string,
): void {
  if (t.group !== "") return;
  if (t.kind === "Namespace") {
    nameLabel(obj);
    obj.spec = { finalizers: ["kubernetes"], ...(isPlainObject(obj.spec) ? obj.spec : {}) };
    if (!trusted || obj.status === undefined) obj.status = { phase: "Active" };
  } else if (t.kind === "Service") {
    const spec: Record<string, unknown> = isPlainObject(obj.spec) ? obj.spec : {};
    obj.spec = spec;
    spec.type ??= "ClusterIP";
    spec.sessionAffinity ??= "None";
    if (spec.type !== "ExternalName" && spec.clusterIP === undefined) {
      spec.clusterIP = clusterIp();
    }
    if (typeof spec.clusterIP === "string") spec.clusterIPs ??= [spec.clusterIP];
    if (Array.isArray(spec.ports)) {
      spec.ports = spec.ports.map((p: unknown) =>
        isPlainObject(p) ? { protocol: "TCP", targetPort: p.port, ...p } : p,
      );
    }
    if (!trusted || obj.status === undefined) obj.status = { loadBalancer: {} };
  } else if (t.kind === "Pod") {
    if (!trusted || obj.status === undefined)
      obj.status = { phase: "Pending", qosClass: "BestEffort" };
    const spec = obj.spec as Record<string, unknown>;
    spec.serviceAccountName ??= "default";
    spec.restartPolicy ??= "Always";
    spec.dnsPolicy ??= "ClusterFirst";
  } else if (t.kind === "Secret") {
    if (obj.type === undefined || obj.type === "") obj.type = "Opaque";
  }
}
