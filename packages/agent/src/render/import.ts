import type { ImportBackend, ImportBackendIntent, ImportIntent } from "@isthmus/proto";
import type { IDestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import type { KubeObject } from "../kube-object.js";
import type { LocalFacts } from "../local-facts.js";
import { clusterHost, clustersetHost, finish, objectName } from "./meta.js";
import { renderPorts } from "./ports.js";
import { gatewayEndpoints, localEndpoints, seSpec } from "./service-entry.js";

export interface IntentHeader {
  name: string;
  version: string;
  /** Extra annotations for the intent's primary (first) object: the intent source of
   * Import and Export intents, read back when a restarted agent adopts its objects. */
  primaryAnnotations: Record<string, string>;
}

/** Outlier detection that ejects failing endpoints so that locality failover kicks in. */
export const OUTLIER_DETECTION = {
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: 5,
  interval: "10s",
  baseEjectionTime: "30s",
  maxEjectionPercent: 100,
};

/**
 * ImportIntent and its backends -> a ServiceEntry for `<svc>.<ns>.svc.clusterset.local`
 * whose endpoints are the local ready pods (when the cluster backs the service itself) and
 * one endpoint per remote east-west gateway; a ServiceEntry for this cluster's own
 * `<cluster>.<svc>.<ns>.svc.clusterset.local` host when it backs the service; and a
 * DestinationRule for the clusterset host (Istio mTLS, locality load balancing with outlier
 * detection). The per-cluster hosts of the remote backends are their own intents'
 * (`renderImportBackend`).
 */
export function renderImport(
  header: IntentHeader,
  intent: ImportIntent,
  backends: readonly ImportBackend[],
  facts: LocalFacts,
): KubeObject[] {
  const { namespace, service } = intent;
  const ports = renderPorts(intent.ports);
  const local = intent.localBackend
    ? localEndpoints(facts, facts.endpoints(namespace, service), ports)
    : [];
  const remote = remoteBackends(backends, facts).flatMap((b) => gatewayEndpoints(b, ports));
  const host = clustersetHost(namespace, service);
  const done = (o: KubeObject & { metadata: { name: string; namespace: string } }) =>
    finish(o, header.name, header.version);
  const objects: KubeObject[] = [
    finish(
      {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: objectName("import", service), namespace },
        spec: seSpec([host], ports, [...local, ...remote]),
      },
      header.name,
      header.version,
      header.primaryAnnotations,
    ),
  ];
  if (intent.localBackend) {
    // This cluster backs the service too: its own per-cluster host reaches the local pods.
    objects.push(
      done({
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: objectName("import", service, facts.clusterId), namespace },
        spec: seSpec(
          [clusterHost(facts.clusterId, namespace, service)],
          ports,
          structuredClone(local),
        ),
      }),
    );
  }
  objects.push(
    done({
      apiVersion: "networking.istio.io/v1",
      kind: "DestinationRule",
      metadata: { name: objectName("import", service), namespace },
      spec: {
        host,
        trafficPolicy: {
          tls: { mode: "ISTIO_MUTUAL" },
          loadBalancer: { localityLbSetting: { enabled: true } },
          outlierDetection: OUTLIER_DETECTION,
        },
      } satisfies IDestinationRule["spec"],
    }),
  );
  return objects;
}

/** The backends of other clusters, by cluster id (this cluster's pods are local endpoints). */
function remoteBackends(backends: readonly ImportBackend[], facts: LocalFacts): ImportBackend[] {
  return backends
    .filter((b) => b.clusterId !== facts.clusterId)
    .sort((a, b) => a.clusterId.localeCompare(b.clusterId));
}

/**
 * ImportBackendIntent -> the ServiceEntry for the backing cluster's own host
 * `<cluster>.<svc>.<ns>.svc.clusterset.local`, reached through its east-west gateways; nothing
 * when the backend is this cluster.
 */
export function renderImportBackend(
  header: IntentHeader,
  intent: ImportBackendIntent,
  facts: LocalFacts,
): KubeObject[] {
  const { namespace, service, backend } = intent;
  if (backend === undefined || backend.clusterId === facts.clusterId) return [];
  const ports = renderPorts(intent.ports);
  return [
    finish(
      {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: objectName("import", service, backend.clusterId), namespace },
        spec: seSpec(
          [clusterHost(backend.clusterId, namespace, service)],
          ports,
          gatewayEndpoints(backend, ports),
        ),
      },
      header.name,
      header.version,
      header.primaryAnnotations,
    ),
  ];
}
