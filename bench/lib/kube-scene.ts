// The policy benchmark's scene as the Kubernetes objects a cluster would hold (Istio install,
// namespaces, Services with one sidecar-injected pod each, their EndpointSlices, a pod per
// workload identity), for the mesh model to judge what the agents render into it.

import { istioScene, type KubeObject } from "@isthmus/kubesim";
import type { ClusterFacts } from "@isthmus/model";
import type { Service, WorkloadIdentity } from "@isthmus/proto";

const SIDECAR = { name: "istio-proxy", image: "docker.io/istio/proxyv2:1.29.2" };

function pod(
  namespace: string,
  name: string,
  ip: string,
  serviceAccount: string,
  labels: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { ...labels, "security.istio.io/tlsMode": "istio" } },
    spec: { serviceAccountName: serviceAccount, containers: [{ name: "app" }, SIDECAR] },
    status: { phase: "Running", podIP: ip, conditions: [{ type: "Ready", status: "True" }] },
  };
}

/** Every object of one cluster of the scene but those the agent renders. */
export function clusterObjects(
  facts: ClusterFacts,
  index: number,
  services: readonly Service[],
  identities: readonly WorkloadIdentity[],
  trustDomains: readonly string[],
): KubeObject[] {
  let n = 0;
  const ip = () => `10.${index}.${(n >> 8) & 255}.${n++ & 255}`;
  const namespaces = new Set([...services, ...identities].map((x) => x.namespace));
  const out: KubeObject[] = istioScene({
    clusterId: facts.id,
    network: facts.network,
    trustDomain: facts.trustDomain,
    eastWestAddress: facts.gateways[0]?.address ?? "",
    trustDomains: [...trustDomains],
  });
  for (const name of namespaces) {
    out.push({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name, labels: { "istio-injection": "enabled" } },
    });
  }
  for (const s of services) {
    const sa = s.serviceAccounts[0] ?? "default";
    const p = pod(s.namespace, `${s.name}-0`, ip(), sa, { ...s.selector });
    out.push(p, {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: s.name, namespace: s.namespace },
      spec: {
        selector: { ...s.selector },
        ports: s.ports.map((x) => ({
          name: x.name,
          port: x.port,
          targetPort: Number(x.targetPort),
        })),
      },
    });
    out.push({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: `${s.name}-0`,
        namespace: s.namespace,
        labels: { "kubernetes.io/service-name": s.name },
      },
      addressType: "IPv4",
      endpoints: [
        { addresses: [(p.status as { podIP: string }).podIP], conditions: { ready: true } },
      ],
      ports: s.ports.map((x) => ({ name: x.name, port: Number(x.targetPort), protocol: "TCP" })),
    });
  }
  for (const id of identities) {
    for (const [i, set] of id.labelSets.entries()) {
      out.push(pod(id.namespace, `${id.serviceAccount}-${i}`, ip(), id.serviceAccount, set.labels));
    }
  }
  return out;
}
