// Where a caller's sidecar sends a request for a host and port, after istio.io's ServiceEntry,
// DestinationRule and Sidecar references and the multi-network docs; endpoint and gateway
// resolution checked against istiod's split-horizon EDS (pilot/pkg/xds/endpoints/ep_filters.go):
// an endpoint on another network goes through a gateway istiod knows for that network, and
// straight to its address when it knows none.
import { asList, asRecord, hostMatch, matchesLabels, str, stringList } from "./fields.js";
import {
  type ClusterView,
  ISTIO_SYSTEM,
  type PodView,
  podPort,
  refOf,
  type ServiceView,
} from "./mesh.js";
import type { Caller, KubeObject } from "./types.js";

export const TLS_MODE_LABEL = "security.istio.io/tlsMode";

export type TlsKind = "ISTIO_MUTUAL" | "PLAINTEXT" | "OTHER_TLS";

/** One endpoint of a host as the caller's sidecar gets it. */
export interface Endpoint {
  address: string;
  port: number;
  network: string;
  /** Labelled `security.istio.io/tlsMode: istio` (auto mTLS uses Istio mTLS). */
  istioTls: boolean;
  /** Service account of a ServiceEntry endpoint (for the client-side SAN check). */
  serviceAccount?: string;
}

/** A host known to a proxy: a Kubernetes Service or a ServiceEntry. */
export interface HostEntry {
  host: string;
  /** `Service ns/name` or `ServiceEntry ns/name`. */
  ref: string;
  namespace: string;
  ports: { name: string; number: number }[];
  endpoints(portNumber: number): Endpoint[];
  /** ServiceEntry `subjectAltNames`. */
  subjectAltNames: string[];
  /** Unmodelled parts (resolution other than STATIC, workloadSelector). */
  unknown?: string;
}

export function kubeHost(svc: ServiceView): string {
  return `${svc.name}.${svc.namespace}.svc.cluster.local`;
}

/** A Kubernetes Service as istiod sees it: its EndpointSlices' ready addresses and ports. */
function serviceHost(cluster: ClusterView, svc: ServiceView): HostEntry {
  return {
    host: kubeHost(svc),
    ref: `Service ${svc.namespace}/${svc.name}`,
    namespace: svc.namespace,
    ports: svc.ports.map((p) => ({ name: p.name, number: p.port })),
    subjectAltNames: [],
    endpoints(number) {
      const port = svc.ports.find((p) => p.port === number);
      if (port === undefined) return [];
      return svc.endpoints.addresses.flatMap((address) => {
        const pod = cluster.podsByIp.get(address);
        const target =
          svc.endpoints.ports.get(port.name) ??
          (pod === undefined ? undefined : podPort(pod, port)) ??
          (typeof port.targetPort === "number" ? port.targetPort : undefined);
        if (target === undefined) return [];
        return [
          { address, port: target, network: cluster.network, istioTls: pod?.inMesh === true },
        ];
      });
    },
  };
}

function serviceEntryHosts(se: KubeObject): HostEntry[] {
  const spec = asRecord(se.spec);
  const ports = asList(spec.ports).map((p) => ({
    name: str(asRecord(p).name),
    number: Number(asRecord(p).number),
    targetPort: asRecord(p).targetPort === undefined ? undefined : Number(asRecord(p).targetPort),
  }));
  const resolution = str(spec.resolution) || "NONE";
  const unknown =
    spec.workloadSelector !== undefined
      ? "ServiceEntry workloadSelector is not modelled"
      : resolution !== "STATIC"
        ? `ServiceEntry resolution ${resolution} is not modelled`
        : undefined;
  const endpoints = asList(spec.endpoints).map(asRecord);
  return asList(spec.hosts).map((h) => ({
    host: str(h),
    ref: refOf(se),
    namespace: se.metadata?.namespace ?? "",
    ports,
    subjectAltNames: stringList(spec.subjectAltNames) ?? [],
    ...(unknown === undefined ? {} : { unknown }),
    endpoints(number: number) {
      const port = ports.find((p) => p.number === number);
      if (port === undefined) return [];
      return endpoints.map((e) => {
        const mapped = asRecord(e.ports)[port.name];
        const ep: Endpoint = {
          address: str(e.address),
          port: mapped !== undefined ? Number(mapped) : (port.targetPort ?? port.number),
          network: str(e.network),
          istioTls: asRecord(e.labels)[TLS_MODE_LABEL] === "istio",
        };
        if (str(e.serviceAccount) !== "") ep.serviceAccount = str(e.serviceAccount);
        return ep;
      });
    },
  }));
}

/** `exportTo` of an object: absent or empty means every namespace. */
function exportedTo(o: KubeObject, namespace: string): boolean {
  const list = stringList(asRecord(o.spec).exportTo);
  if (list === undefined) return true;
  return list.some(
    (e) => e === "*" || e === namespace || (e === "." && o.metadata?.namespace === namespace),
  );
}

/** The Sidecar that applies to a workload: its own selector match, its namespace's default, the root one. */
export function sidecarOf(
  cluster: ClusterView,
  namespace: string,
  labels: Record<string, string>,
): KubeObject | undefined {
  const inNs = cluster.sidecars
    .filter((s) => s.metadata?.namespace === namespace)
    .sort((a, b) => refOf(a).localeCompare(refOf(b)));
  const selected = inNs.find((s) => {
    const sel = asRecord(asRecord(asRecord(s.spec).workloadSelector).labels) as Record<
      string,
      string
    >;
    return asRecord(s.spec).workloadSelector !== undefined && matchesLabels(sel, labels);
  });
  const noSelector = (s: KubeObject) => asRecord(s.spec).workloadSelector === undefined;
  return (
    selected ??
    inNs.find(noSelector) ??
    cluster.sidecars
      .filter((s) => s.metadata?.namespace === cluster.mesh.rootNamespace)
      .find(noSelector)
  );
}

/** Whether a Sidecar's egress `hosts` (`ns/host`, `*`, `.`, `~`) lets a host of namespace `ns` in. */
export function sidecarAllows(sidecar: KubeObject, host: string, hostNamespace: string): boolean {
  const own = sidecar.metadata?.namespace ?? "";
  return asList(asRecord(sidecar.spec).egress).some((e) =>
    asList(asRecord(e).hosts).some((h) => {
      const [ns, name] = str(h).includes("/") ? str(h).split("/", 2) : ["*", str(h)];
      const nsOk = ns === "*" || ns === hostNamespace || (ns === "." && hostNamespace === own);
      return nsOk && ns !== "~" && hostMatch(name!, host);
    }),
  );
}

/** Hosts a proxy in `namespace` of `cluster` knows: the cluster's Services and the ServiceEntries exported to it. */
export function knownHosts(cluster: ClusterView, namespace: string): HostEntry[] {
  return [
    ...cluster.services.map((s) => serviceHost(cluster, s)),
    ...cluster.serviceEntries.filter((se) => exportedTo(se, namespace)).flatMap(serviceEntryHosts),
  ];
}

export interface TlsSettings {
  kind: TlsKind;
  /** `DestinationRule ns/name` that set it, or `auto mTLS`. */
  by: string;
  subjectAltNames: string[];
}

/**
 * How well a DestinationRule host names a host: exact beats any wildcard, a longer wildcard
 * suffix beats a shorter one (Istio picks the most specific rule); -1 when it does not match.
 */
function hostSpecificity(pattern: string, host: string): number {
  if (pattern === host) return Number.MAX_SAFE_INTEGER;
  return hostMatch(pattern, host) ? pattern.length : -1;
}

/** The DestinationRule TLS mode of a host and port; undefined: none (auto mTLS decides). */
export function destinationTls(
  cluster: ClusterView,
  callerNamespace: string,
  host: string,
  port: number,
): TlsSettings | undefined {
  const root = cluster.mesh.rootNamespace;
  // Istio looks in the caller's namespace, then the host's and the root namespace's rules
  // exported to the caller; within one namespace the most specific host wins.
  const rank = (d: KubeObject) => {
    const ns = d.metadata?.namespace;
    return ns === callerNamespace ? 0 : ns === root ? 2 : 1;
  };
  const rules = cluster.destinationRules
    .map((d) => ({ d, fit: hostSpecificity(str(asRecord(d.spec).host), host) }))
    .filter(({ d, fit }) => fit >= 0 && exportedTo(d, callerNamespace))
    .sort((a, b) => rank(a.d) - rank(b.d) || b.fit - a.fit || refOf(a.d).localeCompare(refOf(b.d)));
  const dr = rules[0]?.d;
  if (dr === undefined) return undefined;
  const policy = asRecord(asRecord(dr.spec).trafficPolicy);
  const portLevel = asList(policy.portLevelSettings)
    .map(asRecord)
    .find((s) => Number(asRecord(s.port).number) === port);
  const tls = asRecord(portLevel?.tls ?? policy.tls);
  const mode = str(tls.mode);
  if (mode === "") return undefined;
  const kind: TlsKind =
    mode === "ISTIO_MUTUAL" ? "ISTIO_MUTUAL" : mode === "DISABLE" ? "PLAINTEXT" : "OTHER_TLS";
  return { kind, by: refOf(dr), subjectAltNames: stringList(tls.subjectAltNames) ?? [] };
}

/** Where an endpoint's traffic lands. */
export type Landing =
  | { kind: "pod"; cluster: ClusterView; pod: PodView; port: number }
  | { kind: "gateway"; cluster: ClusterView; address: string; port: number }
  | { kind: "nowhere"; reason: string };

/** The gateways istiod of `cluster` knows for a network (labelled Services, meshNetworks). */
function gatewaysFor(cluster: ClusterView, network: string): { address: string; port: number }[] {
  return [
    ...(cluster.networkGatewayServices.get(network) ?? []),
    ...(cluster.mesh.networkGateways.get(network) ?? []),
  ];
}

/** An address and port in the mesh: a pod of the caller's network, or an east-west gateway. */
export function landAt(
  clusters: Iterable<ClusterView>,
  from: ClusterView,
  address: string,
  port: number,
): Landing {
  const local = from.podsByIp.get(address);
  if (local !== undefined) return { kind: "pod", cluster: from, pod: local, port };
  for (const c of clusters) {
    if (c.eastWest?.addresses.includes(address) && c.eastWest.port === port)
      return { kind: "gateway", cluster: c, address, port };
  }
  for (const c of clusters) {
    const pod = c.podsByIp.get(address);
    if (pod !== undefined && c.network !== "" && c.network === from.network)
      return { kind: "pod", cluster: c, pod, port };
  }
  return {
    kind: "nowhere",
    reason: `${address}:${port} is no pod of network "${from.network}" and no east-west gateway listener`,
  };
}

/** Where an endpoint goes from a proxy of `from`: its gateway when on another network istiod knows a gateway of. */
export function endpointTarget(
  from: ClusterView,
  ep: Endpoint,
): { address: string; port: number; viaNetworkGateway: boolean } {
  if (ep.network !== "" && from.network !== "" && ep.network !== from.network) {
    const gws = gatewaysFor(from, ep.network);
    if (gws.length > 0)
      return { address: gws[0]!.address, port: gws[0]!.port, viaNetworkGateway: true };
  }
  return { address: ep.address, port: ep.port, viaNetworkGateway: false };
}

/** The hosts a caller's sidecar can send to, with the Sidecar that filtered them (if any). */
export function callerHosts(
  cluster: ClusterView,
  caller: Caller,
): { hosts: HostEntry[]; sidecar: KubeObject | undefined } {
  const sidecar = sidecarOf(cluster, caller.namespace, { ...caller.labels });
  const hosts = knownHosts(cluster, caller.namespace).filter(
    (h) => sidecar === undefined || sidecarAllows(sidecar, h.host, h.namespace),
  );
  return { hosts, sidecar };
}

/**
 * The AUTO_PASSTHROUGH routing of an east-west gateway: the SNI host must match the Gateway's
 * hosts and be known in the gateway's cluster (its Services, ServiceEntries exported to the
 * gateway's namespace) with the port; it routes to that cluster's pods of the host.
 */
export function passthrough(
  cluster: ClusterView,
  host: string,
  port: number,
): { pods: { pod: PodView; port: number }[]; via: string[]; reason: string } {
  const gw = cluster.eastWest;
  if (gw === undefined)
    return {
      pods: [],
      via: [],
      reason: `cluster ${cluster.id} has no AUTO_PASSTHROUGH east-west gateway`,
    };
  if (!gw.hosts.some((h) => hostMatch(h, host)))
    return {
      pods: [],
      via: [gw.gateway],
      reason: `${gw.gateway} hosts ${gw.hosts.join(", ")} do not match ${host}`,
    };
  const entries = knownHosts(cluster, ISTIO_SYSTEM).filter(
    (h) => h.host === host && h.ports.some((p) => p.number === port),
  );
  if (entries.length === 0)
    return {
      pods: [],
      via: [gw.gateway],
      reason: `host ${host} port ${port} is not known in cluster ${cluster.id}`,
    };
  const pods: { pod: PodView; port: number }[] = [];
  for (const e of entries)
    for (const ep of e.endpoints(port)) {
      const pod = cluster.podsByIp.get(ep.address);
      if (pod !== undefined) pods.push({ pod, port: ep.port });
    }
  return {
    pods,
    via: [gw.gateway, ...entries.map((e) => e.ref)],
    reason: pods.length === 0 ? `host ${host} has no pod endpoints in cluster ${cluster.id}` : "",
  };
}
