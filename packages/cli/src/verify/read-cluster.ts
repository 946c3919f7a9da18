// What `isthmus verify` reads from one cluster: every object of the kinds the mesh model
// reads (packages/mesh-model/README.md, "Input"). Nothing is written.
import type { KubeClient, KubeObject, Resource } from "@isthmus/agent";
import {
  AUTHORIZATION_POLICIES,
  CONFIG_MAPS,
  DESTINATION_RULES,
  ENDPOINT_SLICES,
  GATEWAYS,
  isKubeApiError,
  NAMESPACES,
  PODS,
  SERVICE_ENTRIES,
  SERVICES,
} from "@isthmus/agent";
import { PEER_AUTHENTICATIONS } from "../check/snapshot.js";

const DEPLOYMENTS: Resource = {
  group: "apps",
  version: "v1",
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};
const SIDECARS: Resource = {
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
