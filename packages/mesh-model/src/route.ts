// The caller's side of a connection: the hosts its sidecar knows, the endpoints and TLS it
// picks, where each endpoint lands (a pod, or an east-west gateway that passes the SNI on),
// and the client's SAN check.
import { type ClusterView, clusterOf, injectionEnabled, type Mesh, type PodView } from "./mesh.js";
import {
  callerHosts,
  destinationTls,
  type Endpoint,
  endpointTarget,
  type HostEntry,
  knownHosts,
  landAt,
  passthrough,
  type TlsSettings,
} from "./routing.js";
import { principalOf } from "./trust-domain.js";
import type { Caller, ConnectResult } from "./types.js";

/** One pod a connection lands on, and how it got there. */
export interface Arrival {
  cluster: ClusterView;
  pod: PodView;
  port: number;
  tls: "ISTIO_MUTUAL" | "PLAINTEXT" | "OTHER_TLS";
  objects: string[];
}

/** `cluster: Kind ns/name` */
export const q = (c: ClusterView, ref: string) => `${c.id}: ${ref}`;

export function result(
  outcome: ConnectResult["outcome"],
  stage: ConnectResult["stage"],
  reason: string,
  objects: string[],
): ConnectResult {
  return { outcome, stage, reason, objects: [...new Set(objects)] };
}

/** Whether the caller's workloads carry a sidecar (its namespace enables injection). */
function callerInMesh(c: ClusterView, caller: Caller): boolean {
  const pods = c.pods.filter(
    (p) => p.namespace === caller.namespace && p.serviceAccount === caller.serviceAccount,
  );
  if (pods.length > 0) return pods.every((p) => p.inMesh);
  return injectionEnabled(c.namespaces.get(caller.namespace));
}

function tlsFor(
  c: ClusterView,
  caller: Caller,
  host: HostEntry,
  port: number,
  istioTls: boolean,
): TlsSettings {
  if (caller.plaintext === true)
    return { kind: "PLAINTEXT", by: "plaintext caller", subjectAltNames: [] };
  const dr = destinationTls(c, caller.namespace, host.host, port);
  if (dr !== undefined) return dr;
  return { kind: istioTls ? "ISTIO_MUTUAL" : "PLAINTEXT", by: "auto mTLS", subjectAltNames: [] };
}

/** The client-side SAN check: the server's SPIFFE id must be one the client expects, if any. */
function sanProblem(
  c: ClusterView,
  host: HostEntry,
  tls: TlsSettings,
  server: { cluster: ClusterView; pod: PodView },
  endpointSa: string | undefined,
): string | undefined {
  if (tls.kind !== "ISTIO_MUTUAL") return undefined;
  const sans =
    tls.subjectAltNames.length > 0
      ? tls.subjectAltNames
      : host.subjectAltNames.length > 0
        ? host.subjectAltNames
        : endpointSa !== undefined
          ? [`spiffe://${principalOf(c.mesh.trustDomain, host.namespace, endpointSa)}`]
          : [];
  const { cluster, pod } = server;
  const spiffe = `spiffe://${principalOf(cluster.mesh.trustDomain, pod.namespace, pod.serviceAccount)}`;
  if (sans.length === 0 || sans.includes(spiffe)) return undefined;
  return `server identity ${spiffe} is not among the expected subject alt names ${sans.join(", ")}`;
}

interface Routed {
  arrivals: Arrival[];
  failures: ConnectResult[];
}

/** Without a sidecar only kube-proxy routes: the cluster's own Services, in plaintext. */
function routeWithoutSidecar(c: ClusterView, caller: Caller, host: string, port: number): Routed {
  const svc = knownHosts(c, caller.namespace).find(
    (h) =>
      h.ref.startsWith("Service ") && h.host === host && h.ports.some((p) => p.number === port),
  );
  if (svc === undefined) {
    const why = `caller has no sidecar and ${host}:${port} is no Service port of cluster ${c.id}`;
    return { arrivals: [], failures: [result("UNROUTABLE", "routing", why, [])] };
  }
  const arrivals: Arrival[] = [];
  for (const ep of svc.endpoints(port)) {
    const pod = c.podsByIp.get(ep.address);
    if (pod !== undefined)
      arrivals.push({ cluster: c, pod, port: ep.port, tls: "PLAINTEXT", objects: [q(c, svc.ref)] });
  }
  return { arrivals, failures: [] };
}

/** One endpoint of a host: where it lands, through the east-west gateway when it is one. */
function followEndpoint(
  mesh: Mesh,
  c: ClusterView,
  caller: Caller,
  h: HostEntry,
  ep: Endpoint,
  port: number,
  into: Routed,
): void {
  const tls = tlsFor(c, caller, h, port, ep.istioTls);
  const objects = [q(c, h.ref), ...(tls.by.startsWith("DestinationRule") ? [q(c, tls.by)] : [])];
  const target = endpointTarget(c, ep);
  if (target.viaNetworkGateway && tls.kind !== "ISTIO_MUTUAL") return; // istiod drops it
  const landing = landAt(mesh.clusters.values(), c, target.address, target.port);
  const arrive = (cluster: ClusterView, pod: PodView, podPort: number, via: string[]) => {
    const san = sanProblem(c, h, tls, { cluster, pod }, ep.serviceAccount);
    if (san !== undefined) into.failures.push(result("TLS_FAILED", "client-tls", san, via));
    else into.arrivals.push({ cluster, pod, port: podPort, tls: tls.kind, objects: via });
  };
  if (landing.kind === "nowhere") {
    into.failures.push(result("UNROUTABLE", "routing", landing.reason, objects));
  } else if (landing.kind === "pod") {
    arrive(landing.cluster, landing.pod, landing.port, objects);
  } else if (tls.kind !== "ISTIO_MUTUAL") {
    const why = `the east-west gateway of ${landing.cluster.id} routes by SNI and needs Istio mTLS, got ${tls.kind} (${tls.by})`;
    into.failures.push(result("UNROUTABLE", "gateway", why, objects));
  } else {
    const pass = passthrough(landing.cluster, h.host, port);
    const via = [...objects, ...pass.via.map((r) => q(landing.cluster, r))];
    if (pass.pods.length === 0)
      into.failures.push(result("UNROUTABLE", "gateway", pass.reason, via));
    for (const p of pass.pods) arrive(landing.cluster, p.pod, p.port, via);
  }
}

/** Every pod a request of `caller` for `host:port` lands on, and the failures on the way. */
export function route(mesh: Mesh, caller: Caller, host: string, port: number): Routed {
  const c = clusterOf(mesh, caller.cluster);
  if (!callerInMesh(c, caller)) return routeWithoutSidecar(c, caller, host, port);
  const { hosts, sidecar } = callerHosts(c, caller);
  const sidecarRef =
    sidecar === undefined
      ? []
      : [q(c, `Sidecar ${sidecar.metadata?.namespace}/${sidecar.metadata?.name}`)];
  const entries = hosts.filter((h) => h.host === host && h.ports.some((p) => p.number === port));
  const routed: Routed = { arrivals: [], failures: [] };
  if (entries.length === 0) {
    const who = `${caller.cluster}/${caller.namespace}/${caller.serviceAccount}`;
    const why = `the sidecar of ${who} knows no host ${host} with port ${port}`;
    routed.failures.push(result("UNROUTABLE", "routing", why, sidecarRef));
  }
  for (const h of entries) {
    if (h.unknown !== undefined) {
      routed.failures.push(result("UNKNOWN", "routing", h.unknown, [...sidecarRef, q(c, h.ref)]));
      continue;
    }
    const endpoints = h.endpoints(port);
    if (endpoints.length === 0) {
      const why = `${h.ref} has no endpoints for ${host}:${port}`;
      routed.failures.push(result("UNROUTABLE", "routing", why, [q(c, h.ref)]));
    }
    for (const ep of endpoints) followEndpoint(mesh, c, caller, h, ep, port, routed);
  }
  for (const r of [...routed.arrivals, ...routed.failures]) r.objects.unshift(...sidecarRef);
  return routed;
}
