// The live objects the mesh model reads (packages/mesh-model/README.md, "Input"), listed from
// one cluster: what `isthmus verify` judges, read with a kubeconfig by the CLI or by the agent
// on the hub's request (ObjectsRequest). Nothing is written.
import { isKubeApiError, type KubeClient } from "../kube/client.js";
import {
  AUTHORIZATION_POLICIES,
  CONFIG_MAPS,
  DESTINATION_RULES,
  ENDPOINT_SLICES,
  GATEWAYS,
  NAMESPACES,
  PEER_AUTHENTICATIONS,
  PODS,
  type Resource,
  SERVICE_ENTRIES,
  SERVICES,
} from "../kube/resources.js";
import type { KubeObject } from "../kube-object.js";

export const DEPLOYMENTS: Resource = {
  group: "apps",
  version: "v1",
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};
export const SIDECARS: Resource = {
  group: "networking.istio.io",
  version: "v1",
  plural: "sidecars",
  kind: "Sidecar",
  namespaced: true,
};

/** Kinds read across all namespaces. */
const CLUSTER_WIDE: readonly Resource[] = [
  NAMESPACES,
  SERVICES,
  PODS,
  ENDPOINT_SLICES,
  GATEWAYS,
  AUTHORIZATION_POLICIES,
  PEER_AUTHENTICATIONS,
  SERVICE_ENTRIES,
  DESTINATION_RULES,
  SIDECARS,
];
/** Kinds the model reads only in Istio's namespace (the mesh config, istiod's Deployment). */
const ISTIO_NAMESPACE_ONLY: readonly Resource[] = [CONFIG_MAPS, DEPLOYMENTS];

/** A 404 on a collection: its CRD is not installed, so the cluster has none of that kind. */
function isNotServed(err: unknown): boolean {
  return isKubeApiError(err) && err.code === 404;
}

async function listOrNone(
  kube: KubeClient,
  clusterId: string,
  res: Resource,
  namespace?: string,
): Promise<KubeObject[]> {
  try {
    return (await kube.list(res, namespace === undefined ? {} : { namespace })).items;
  } catch (err) {
    if (isNotServed(err)) return [];
    throw new Error(
      `cluster ${clusterId}: cannot list ${res.plural}${namespace === undefined ? "" : ` in ${namespace}`}: ${(err as Error).message}`,
    );
  }
}

/** Every object the model needs from one cluster; throws naming the cluster and kind. */
export async function readClusterObjects(
  kube: KubeClient,
  clusterId: string,
  istioNamespace: string,
): Promise<KubeObject[]> {
  const lists = await Promise.all([
    ...CLUSTER_WIDE.map((res) => listOrNone(kube, clusterId, res)),
    ...ISTIO_NAMESPACE_ONLY.map((res) => listOrNone(kube, clusterId, res, istioNamespace)),
  ]);
  return lists.flat();
}

/** What the model does not read and a report need not carry. */
function lean(o: KubeObject): KubeObject {
  const metadata = { ...o.metadata };
  delete metadata.managedFields;
  if (metadata.annotations !== undefined) {
    const annotations = { ...metadata.annotations };
    delete annotations["kubectl.kubernetes.io/last-applied-configuration"];
    metadata.annotations = annotations;
  }
  return { ...o, metadata };
}

/**
 * The objects with every local pod IP replaced by a stand-in from 240.0.0.0/4 (reserved,
 * never routed): the same stand-in for the same address in every object, so that the model
 * still finds a pod behind an EndpointSlice or ServiceEntry endpoint; gateway addresses are
 * not pod IPs and stay. Pod IPs stay in their cluster (DESIGN.md section 5).
 */
export function maskPodAddresses(objects: readonly KubeObject[]): KubeObject[] {
  const standIns = new Map<string, string>();
  const standIn = (ip: string) => {
    let s = standIns.get(ip);
    if (s === undefined) {
      const n = standIns.size + 1;
      s = `240.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
      standIns.set(ip, s);
    }
    return s;
  };
  for (const o of objects) {
    if (o.kind !== "Pod") continue;
    const status = (o.status ?? {}) as { podIP?: string; podIPs?: { ip?: string }[] };
    if (typeof status.podIP === "string") standIn(status.podIP);
    for (const p of status.podIPs ?? []) if (typeof p.ip === "string") standIn(p.ip);
  }
  const mask = (v: unknown): unknown => {
    if (typeof v === "string") return standIns.get(v) ?? v;
    if (Array.isArray(v)) return v.map(mask);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = k === "metadata" ? x : mask(x);
      return out;
    }
    return v;
  };
  return objects.map((o) => mask(lean(o)) as KubeObject);
}
