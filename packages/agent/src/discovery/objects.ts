import { assignDefined } from "../assign-defined.js";
import type { KubeObject, ObjectMeta } from "../kube-object.js";
import { CONTENT_HASH_ANNOTATION, contentHash, isOwned, MANAGED_BY_LABEL } from "../ownership.js";

type Meta = ObjectMeta;

export interface PodView extends KubeObject {
  spec: { serviceAccountName?: string; nodeName?: string };
  /** `istio`: the pod runs with Istio (see `podHasIstio`). */
  status: { phase?: string; podIP?: string; ready: boolean; istio: boolean };
}

/**
 * Whether a pod's traffic goes through Istio: a sidecar (`istio-proxy`, as a container or a
 * native sidecar init container), the injector's status annotation, or ambient mode on the pod.
 * The namespace's injection label is not enough: pods created before it have no sidecar.
 */
export function podHasIstio(o: KubeObject): boolean {
  const spec = (o.spec ?? {}) as {
    containers?: { name?: string }[];
    initContainers?: { name?: string }[];
  };
  const isProxy = (c: { name?: string }) => c.name === "istio-proxy";
  return (
    (spec.containers?.some(isProxy) ?? false) ||
    (spec.initContainers?.some(isProxy) ?? false) ||
    o.metadata.annotations?.["sidecar.istio.io/status"] !== undefined ||
    o.metadata.labels?.["istio.io/dataplane-mode"] === "ambient"
  );
}

export interface ServiceView extends KubeObject {
  spec: {
    type?: string;
    selector?: Record<string, string>;
    ports?: {
      name?: string;
      port: number;
      protocol?: string;
      targetPort?: number | string;
      appProtocol?: string;
    }[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } } | undefined;
}

export interface EndpointSliceView extends KubeObject {
  addressType?: string;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null } }[];
  ports?: { name?: string; port?: number; protocol?: string }[];
}

const pick = (m: Record<string, unknown>): Meta => {
  const out: Meta = { name: m.name as string };
  for (const k of ["namespace", "labels", "annotations", "resourceVersion", "uid"] as const) {
    if (m[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = m[k];
  }
  return out;
};

/** A pod reduced to identity and readiness (50k pods must fit in a few hundred MiB). */
export function slimPod(o: KubeObject): PodView {
  const spec = (o.spec ?? {}) as {
    serviceAccountName?: string;
    serviceAccount?: string;
    nodeName?: string;
  };
  const status = (o.status ?? {}) as {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
  };
  const meta = pick(o.metadata);
  delete meta.annotations;
  const view: PodView = {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: meta,
    spec: {},
    status: {
      ready: status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
      istio: podHasIstio(o),
    },
  };
  const sa = spec.serviceAccountName ?? spec.serviceAccount;
  if (sa !== undefined) view.spec.serviceAccountName = sa;
  assignDefined(view.spec, { nodeName: spec.nodeName });
  assignDefined(view.status, { phase: status.phase, podIP: status.podIP });
  return view;
}

export function slimService(o: KubeObject): ServiceView {
  const spec = (o.spec ?? {}) as ServiceView["spec"];
  const view: ServiceView = {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: pick(o.metadata),
    spec: {},
  };
  delete view.metadata.annotations;
  assignDefined(view.spec, { type: spec.type, selector: spec.selector, ports: spec.ports });
  if (o.status !== undefined) view.status = o.status as ServiceView["status"];
  return view;
}

export function slimEndpointSlice(o: KubeObject): EndpointSliceView {
  const s = o as EndpointSliceView;
  const view: EndpointSliceView = {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: pick(o.metadata),
  };
  delete view.metadata.annotations;
  assignDefined(view, { addressType: s.addressType });
  if (s.endpoints !== undefined)
    view.endpoints = s.endpoints.map((e) => {
      const ep: { addresses: string[]; conditions?: { ready?: boolean | null } } = {
        addresses: e.addresses,
      };
      if (e.conditions?.ready !== undefined) ep.conditions = { ready: e.conditions.ready };
      return ep;
    });
  if (s.ports !== undefined) view.ports = s.ports;
  return view;
}

/** Objects reduced to metadata (namespaces, nodes). */
export function slimMeta(o: KubeObject): KubeObject {
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: pick(o.metadata) };
}

/** Where `slimRendered` keeps the content hash computed from an owned object's live content. */
export const LIVE_CONTENT_HASH = "liveContentHash";

/** Isthmus's own label and annotation keys (`isthmus.dev/…`, and the managed-by label). */
const isIsthmusKey = (k: string) => k === MANAGED_BY_LABEL || k.startsWith("isthmus.dev/");

function isthmusEntries(map: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(map ?? {})) if (isIsthmusKey(k)) out[k] = v;
  return out;
}

/**
 * The content hash of what the agent writes, computed from a live object as `contentHash`
 * computes it from a rendered one: the spec (every top-level field but metadata and status),
 * and the Isthmus labels and annotations (others' keys are left out: server-side apply keeps
 * them and they grant nothing). Equal to the object's `isthmus.dev/content-hash` annotation
 * exactly when its content is what the agent rendered, whoever edited it and whatever
 * annotations they kept.
 */
export function liveContentHash(o: KubeObject): string {
  const annotations = isthmusEntries(o.metadata.annotations);
  delete annotations[CONTENT_HASH_ANNOTATION];
  const content: KubeObject = {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: {
      name: o.metadata.name,
      labels: isthmusEntries(o.metadata.labels),
      annotations,
    },
  };
  if (o.metadata.namespace !== undefined) content.metadata.namespace = o.metadata.namespace;
  for (const k of Object.keys(o)) {
    if (k !== "apiVersion" && k !== "kind" && k !== "metadata" && k !== "status") content[k] = o[k];
  }
  return contentHash(content);
}

/**
 * An Istio object of a rendered kind reduced to metadata, plus (when Isthmus owns it) the
 * hash of its live content under `LIVE_CONTENT_HASH`: the reconciler compares content without
 * the cache keeping any spec (32 characters per owned object instead of the whole object).
 */
export function slimRendered(o: KubeObject): KubeObject {
  const view = slimMeta(o);
  if (isOwned(o)) view[LIVE_CONTENT_HASH] = liveContentHash(o);
  return view;
}

/** The live content hash `slimRendered` computed; undefined for a foreign object. */
export function liveHashOf(o: KubeObject): string | undefined {
  const h = o[LIVE_CONTENT_HASH];
  return typeof h === "string" ? h : undefined;
}

export function matchesSelector(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (selector === undefined) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  for (const [k, v] of entries) if (labels?.[k] !== v) return false;
  return true;
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
