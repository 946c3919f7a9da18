import type { ImportBackend } from "@isthmus/proto";
import type { IServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import type { LocalFacts, LocalServiceEndpoints } from "../local-facts.js";
import type { RenderedPort } from "./ports.js";

/** Default port of the east-west gateway's AUTO_PASSTHROUGH listener. */
export const DEFAULT_GATEWAY_PORT = 15443;

export const TLS_MODE_LABEL = "security.istio.io/tlsMode";

/** One ServiceEntry endpoint (networking.istio.io/v1 WorkloadEntry shape). */
export interface SeEndpoint {
  address: string;
  ports: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  locality?: string;
  weight?: number;
}

/** Endpoints for the local ready pods of a Service: pod IP and target port per port name. */
export function localEndpoints(
  facts: LocalFacts,
  local: LocalServiceEndpoints | undefined,
  ports: readonly RenderedPort[],
): SeEndpoint[] {
  if (local === undefined) return [];
  const portMap: Record<string, number> = {};
  for (const p of ports) {
    portMap[p.name] = local.targetPorts[p.serviceName] ?? p.numericTarget ?? p.number;
  }
  return [...local.addresses].sort().map((address) => {
    const ep: SeEndpoint = { address, ports: { ...portMap } };
    if (local.inMesh) ep.labels = { [TLS_MODE_LABEL]: "istio" };
    if (facts.network !== "") ep.network = facts.network;
    if (facts.locality !== "") ep.locality = facts.locality;
    return ep;
  });
}

/**
 * Endpoints for one remote backing cluster: one per east-west gateway address, every port
 * mapped to the gateway's AUTO_PASSTHROUGH port, labelled for Istio mTLS, with the cluster's
 * network and locality. The cluster's weight (its ready endpoint count) is split between its
 * gateways; a weight of 0 means unknown and is left out.
 */
export function gatewayEndpoints(backend: ImportBackend, ports: readonly RenderedPort[]) {
  const gateways = [...backend.gateways].sort(
    (a, b) => a.address.localeCompare(b.address) || a.port - b.port,
  );
  const n = gateways.length;
  return gateways.map((gw) => {
    const gwPort = gw.port > 0 ? gw.port : DEFAULT_GATEWAY_PORT;
    const portMap: Record<string, number> = {};
    for (const p of ports) portMap[p.name] = gwPort;
    const ep: SeEndpoint = {
      address: gw.address,
      ports: portMap,
      labels: { [TLS_MODE_LABEL]: "istio" },
    };
    if (backend.network !== "") ep.network = backend.network;
    if (backend.locality !== "") ep.locality = backend.locality;
    if (backend.weight > 0) ep.weight = Math.max(1, Math.round(backend.weight / n));
    return ep;
  });
}

/** A ServiceEntry spec, type-checked against Istio's CRD schema (@kubernetes-models/istio). */
export function seSpec(
  hosts: string[],
  ports: readonly RenderedPort[],
  endpoints: SeEndpoint[],
): IServiceEntry["spec"] {
  return {
    hosts,
    location: "MESH_INTERNAL",
    resolution: "STATIC",
    ports: ports.map((p) => ({ number: p.number, name: p.name, protocol: p.protocol })),
    endpoints,
  };
}
