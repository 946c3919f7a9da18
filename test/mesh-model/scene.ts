import { istioScene, type KubeObject, type SampleAppOptions, sampleApp } from "@isthmus/kubesim";
import { buildMesh, type ClusterInput, type Mesh } from "@isthmus/mesh-model";

export interface TestCluster {
  id: string;
  trustDomain?: string;
  /** Extra accepted trust domains (caCertificates[].trustDomains). */
  trustDomains?: string[];
  apps?: SampleAppOptions[];
  objects?: KubeObject[];
  istiodEnv?: { name: string; value: string }[];
}

/** Clusters as the sandbox seeds them (Istio install, sample apps) plus extra objects. */
export function clusterInput(c: TestCluster, index: number): ClusterInput {
  return {
    id: c.id,
    objects: [
      ...istioScene({
        clusterId: c.id,
        network: `network-${c.id}`,
        trustDomain: c.trustDomain ?? `${c.id}.local`,
        eastWestAddress: `192.0.2.${index + 1}`,
        ...(c.trustDomains === undefined ? {} : { trustDomains: c.trustDomains }),
        ...(c.istiodEnv === undefined ? {} : { istiodEnv: c.istiodEnv }),
      }),
      ...(c.apps ?? []).flatMap((a, j) => sampleApp({ podIpPrefix: `10.${index + 1}.${j}`, ...a })),
      ...(c.objects ?? []),
    ],
  };
}

export function meshOf(...clusters: TestCluster[]): Mesh {
  return buildMesh(clusters.map(clusterInput));
}

/** An Istio object of a kind (security or networking group by kind). */
export function istio(
  kind: string,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
): KubeObject {
  const group = ["AuthorizationPolicy", "PeerAuthentication"].includes(kind)
    ? "security.istio.io/v1"
    : "networking.istio.io/v1";
  return {
    apiVersion: group,
    kind,
    metadata: { name, namespace, ...(annotations === undefined ? {} : { annotations }) },
    spec,
  };
}
