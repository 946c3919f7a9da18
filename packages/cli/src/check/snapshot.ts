// What `isthmus check` reads from one cluster, read once; the checks themselves
// (checks.ts) are pure functions of it. A read that fails is kept as its error, so that
// only the checks that need it fail (a 403 on Secrets leaves the network check standing).
import type { KubeClient, KubeObject, Resource } from "@isthmus/agent";
import { CONFIG_MAPS, GATEWAYS, NAMESPACES, PODS, SECRETS, SERVICES } from "@isthmus/agent";

export type Read<T> = { value: T } | { error: string };

export const CACERTS_SECRET = "cacerts";
export const MESH_CONFIG_MAP = "istio";
export const ROOT_CONFIG_MAP = "istio-ca-root-cert";
export const ISTIOD_SELECTOR = "app=istiod";
export const PEER_AUTHENTICATIONS: Resource = {
  group: "security.istio.io",
  version: "v1",
  plural: "peerauthentications",
  kind: "PeerAuthentication",
  namespaced: true,
};
/** The label Istio's injector puts on every pod with a sidecar. */
export const SIDECAR_POD_SELECTOR = "security.istio.io/tlsMode=istio";

export interface ClusterSnapshot {
  istioNamespace: string;
  /** The Istio namespace; undefined when it does not exist. */
  namespace: KubeObject | undefined;
  cacerts: Read<KubeObject | undefined>;
  meshConfig: Read<KubeObject | undefined>;
  /** `istio-ca-root-cert` ConfigMaps of every namespace. */
  rootConfigMaps: Read<KubeObject[]>;
  /** Namespaces that run (or will run) sidecars: injection labels, or pods with sidecars. */
  workloadNamespaces: Read<string[]>;
  /** istiod's pods: their environment is what istiod runs with. */
  istiodPods: Read<KubeObject[]>;
  gateways: Read<KubeObject[]>;
  services: Read<KubeObject[]>;
  peerAuthentications: Read<KubeObject[]>;
}

async function read<T>(fn: () => Promise<T>): Promise<Read<T>> {
  try {
    return { value: await fn() };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function injectionEnabled(ns: KubeObject): boolean {
  const labels = ns.metadata.labels ?? {};
  return labels["istio-injection"] === "enabled" || labels["istio.io/rev"] !== undefined;
}

async function workloadNamespaces(kube: KubeClient, istioNamespace: string): Promise<string[]> {
  const [namespaces, pods] = await Promise.all([
    kube.list(NAMESPACES),
    kube.list(PODS, { labelSelector: SIDECAR_POD_SELECTOR }),
  ]);
  const names = new Set<string>();
  for (const ns of namespaces.items) if (injectionEnabled(ns)) names.add(ns.metadata.name);
  for (const pod of pods.items) names.add(pod.metadata.namespace ?? "default");
  names.delete(istioNamespace);
  return [...names].sort();
}

/**
 * Reads what the checks need. Throws only when the API server cannot be asked at all (the
 * first read, the Istio namespace, fails): then no check can say anything.
 */
export async function readSnapshot(
  kube: KubeClient,
  istioNamespace: string,
): Promise<ClusterSnapshot> {
  const namespace = await kube.get(NAMESPACES, istioNamespace);
  const [
    cacerts,
    meshConfig,
    rootConfigMaps,
    workloads,
    istiodPods,
    gateways,
    services,
    peerAuthentications,
  ] = await Promise.all([
    read(() => kube.get(SECRETS, CACERTS_SECRET, istioNamespace)),
    read(() => kube.get(CONFIG_MAPS, MESH_CONFIG_MAP, istioNamespace)),
    read(
      async () =>
        (await kube.list(CONFIG_MAPS, { fieldSelector: `metadata.name=${ROOT_CONFIG_MAP}` })).items,
    ),
    read(() => workloadNamespaces(kube, istioNamespace)),
    read(
      async () =>
        (await kube.list(PODS, { namespace: istioNamespace, labelSelector: ISTIOD_SELECTOR }))
          .items,
    ),
    read(async () => (await kube.list(GATEWAYS)).items),
    read(async () => (await kube.list(SERVICES)).items),
    read(async () => (await kube.list(PEER_AUTHENTICATIONS)).items),
  ]);
  return {
    istioNamespace,
    namespace,
    cacerts,
    meshConfig,
    rootConfigMaps,
    workloadNamespaces: workloads,
    istiodPods,
    gateways,
    services,
    peerAuthentications,
  };
}
