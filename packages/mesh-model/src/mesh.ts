import { parse } from "yaml";
import { asList, asRecord, asString, labelsOf, matchesLabels, str } from "./fields.js";
import { type ClusterInput, type KubeObject, type Labels, MeshModelError } from "./types.js";

export const ISTIO_SYSTEM = "istio-system";
export const NETWORK_LABEL = "topology.istio.io/network";
export const DEFAULT_TRUST_DOMAIN = "cluster.local";
export const SKIP_VALIDATE_TRUST_DOMAIN = "PILOT_SKIP_VALIDATE_TRUST_DOMAIN";
/** Port of the east-west gateway's AUTO_PASSTHROUGH listener unless a Service says otherwise. */
export const DEFAULT_GATEWAY_PORT = 15443;

export interface ContainerPort {
  name: string;
  port: number;
}

export interface PodView {
  name: string;
  namespace: string;
  labels: Labels;
  serviceAccount: string;
  ip: string;
  /** Pending or Running (Succeeded and Failed pods serve nothing). */
  active: boolean;
  /** A sidecar is injected: the namespace enables injection and the pod does not opt out. */
  inMesh: boolean;
  containerPorts: ContainerPort[];
}

export interface ServicePortView {
  name: string;
  port: number;
  /** A number, or the name of a container port. */
  targetPort: number | string;
}

/** Ready addresses and ports (by port name) of a Service's EndpointSlices. */
export interface SliceEndpoints {
  addresses: string[];
  ports: Map<string, number>;
}

export interface ServiceView {
  name: string;
  namespace: string;
  /** From the EndpointSlices labelled `kubernetes.io/service-name`; Istio's endpoints. */
  endpoints: SliceEndpoints;
  /** Undefined: a Service without selector (its endpoints are managed by hand). */
  selector: Labels | undefined;
  ports: ServicePortView[];
}

/** The mesh config fields that decide identities (MeshConfig of the `istio` ConfigMap). */
export interface MeshSettings {
  trustDomain: string;
  trustDomainAliases: string[];
  /** Every `caCertificates[].trustDomains` entry. */
  caTrustDomains: string[];
  rootNamespace: string;
  /** meshNetworks gateways by network (address, port). */
  networkGateways: Map<string, { address: string; port: number }[]>;
}

/** The east-west gateway: addresses of its Service and the AUTO_PASSTHROUGH listener. */
export interface EastWestGateway {
  service: string;
  addresses: string[];
  /** Service port in front of the AUTO_PASSTHROUGH listener. */
  port: number;
  /** The Gateway object and its server hosts (`*.local`...). */
  gateway: string;
  hosts: string[];
}

export interface ClusterView {
  id: string;
  mesh: MeshSettings;
  meshConfigRef: string;
  /** istiod runs with PILOT_SKIP_VALIDATE_TRUST_DOMAIN=true. */
  skipValidateTrustDomain: boolean;
  /** The cluster's network (label of istio-system); "" when unlabelled. */
  network: string;
  namespaces: Map<string, Labels>;
  pods: PodView[];
  podsByIp: Map<string, PodView>;
  services: ServiceView[];
  /** Services labelled with a network and an address: the gateways istiod knows by network. */
  networkGatewayServices: Map<string, { address: string; port: number }[]>;
  eastWest: EastWestGateway | undefined;
  authorizationPolicies: KubeObject[];
  peerAuthentications: KubeObject[];
  serviceEntries: KubeObject[];
  destinationRules: KubeObject[];
  sidecars: KubeObject[];
}

export interface Mesh {
  clusters: Map<string, ClusterView>;
}

/** `Kind ns/name` */
export function refOf(o: KubeObject): string {
  return `${o.kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
}

/** Whether a namespace's labels enable sidecar injection. */
export function injectionEnabled(labels: Labels | undefined): boolean {
  if (labels === undefined) return false;
  if (labels["istio-injection"] === "disabled") return false;
  return labels["istio-injection"] === "enabled" || (labels["istio.io/rev"] ?? "") !== "";
}

function readMeshConfig(cluster: string, cm: KubeObject | undefined): MeshSettings {
  const settings: MeshSettings = {
    trustDomain: DEFAULT_TRUST_DOMAIN,
    trustDomainAliases: [],
    caTrustDomains: [],
    rootNamespace: ISTIO_SYSTEM,
    networkGateways: new Map(),
  };
  if (cm === undefined) return settings;
  const data = asRecord(cm.data);
  const at = `cluster "${cluster}": ConfigMap ${ISTIO_SYSTEM}/istio`;
  const yaml = (key: string): Record<string, unknown> => {
    const text = data[key];
    if (text === undefined) return {};
    try {
      return asRecord(parse(String(text)));
    } catch (err) {
      throw new MeshModelError(`${at}: data.${key}: ${(err as Error).message.split("\n")[0]}`);
    }
  };
  const mesh = yaml("mesh");
  settings.trustDomain = asString(mesh.trustDomain) || DEFAULT_TRUST_DOMAIN;
  settings.trustDomainAliases = asList(mesh.trustDomainAliases).map(String);
  settings.caTrustDomains = asList(mesh.caCertificates).flatMap((c) =>
    asList(asRecord(c).trustDomains).map(String),
  );
  settings.rootNamespace = asString(mesh.rootNamespace) || ISTIO_SYSTEM;
  const networks = asRecord(yaml("meshNetworks").networks);
  for (const [name, n] of Object.entries(networks)) {
    const gws = asList(asRecord(n).gateways)
      .map(asRecord)
      .filter((g) => typeof g.address === "string")
      .map((g) => ({ address: String(g.address), port: Number(g.port ?? DEFAULT_GATEWAY_PORT) }));
    settings.networkGateways.set(name, gws);
  }
  return settings;
}

function skipValidation(objects: readonly KubeObject[]): boolean {
  const istiod = objects.find(
    (o) =>
      o.kind === "Deployment" &&
      o.metadata?.namespace === ISTIO_SYSTEM &&
      o.metadata?.name === "istiod",
  );
  const template = asRecord(asRecord(asRecord(istiod?.spec).template).spec);
  return asList(template.containers).some((c) =>
    asList(asRecord(c).env).some((e) => {
      const env = asRecord(e);
      return env.name === SKIP_VALIDATE_TRUST_DOMAIN && str(env.value).toLowerCase() === "true";
    }),
  );
}

function podView(o: KubeObject, namespaces: Map<string, Labels>): PodView {
  const spec = asRecord(o.spec);
  const status = asRecord(o.status);
  const namespace = o.metadata?.namespace ?? "";
  const labels = labelsOf(o);
  const inject =
    o.metadata?.annotations?.["sidecar.istio.io/inject"] ?? labels["sidecar.istio.io/inject"];
  const phase = str(status.phase);
  return {
    name: o.metadata?.name ?? "",
    namespace,
    labels,
    serviceAccount: asString(spec.serviceAccountName) || "default",
    ip: str(status.podIP),
    active: phase !== "Succeeded" && phase !== "Failed",
    inMesh:
      inject === "true" || (inject !== "false" && injectionEnabled(namespaces.get(namespace))),
    containerPorts: asList(spec.containers).flatMap((c) =>
      asList(asRecord(c).ports).map((p) => ({
        name: str(asRecord(p).name),
        port: Number(asRecord(p).containerPort),
      })),
    ),
  };
}

function sliceEndpoints(slices: readonly KubeObject[]): SliceEndpoints {
  const addresses = new Set<string>();
  const ports = new Map<string, number>();
  for (const s of slices) {
    for (const e of asList(s.endpoints).map(asRecord)) {
      // A nil `ready` condition means ready (EndpointSlice API).
      if (asRecord(e.conditions).ready === false) continue;
      for (const a of asList(e.addresses)) addresses.add(str(a));
    }
    for (const p of asList(s.ports).map(asRecord)) ports.set(str(p.name), Number(p.port));
  }
  return { addresses: [...addresses].sort(), ports };
}

function serviceView(o: KubeObject, slices: readonly KubeObject[]): ServiceView {
  const spec = asRecord(o.spec);
  const mine = slices.filter(
    (s) =>
      s.metadata?.namespace === o.metadata?.namespace &&
      s.metadata?.labels?.["kubernetes.io/service-name"] === o.metadata?.name,
  );
  const selector = spec.selector === undefined ? undefined : (asRecord(spec.selector) as Labels);
  return {
    name: o.metadata?.name ?? "",
    namespace: o.metadata?.namespace ?? "",
    endpoints: sliceEndpoints(mine),
    selector: selector !== undefined && Object.keys(selector).length > 0 ? selector : undefined,
    ports: asList(spec.ports).map((p) => {
      const port = asRecord(p);
      const target = port.targetPort ?? port.port;
      return {
        name: str(port.name),
        port: Number(port.port),
        targetPort:
          typeof target === "number" || /^[0-9]+$/.test(String(target))
            ? Number(target)
            : String(target),
      };
    }),
  };
}

function lbAddresses(o: KubeObject): string[] {
  const ingress = asList(asRecord(asRecord(o.status).loadBalancer).ingress);
  return ingress
    .map((i) => str(asRecord(i).ip) || str(asRecord(i).hostname))
    .filter((a) => a !== "");
}

/** The east-west gateway: an istio-system Service whose pods an AUTO_PASSTHROUGH Gateway selects. */
function eastWestOf(objects: readonly KubeObject[]): EastWestGateway | undefined {
  const gateways = objects.filter(
    (o) => o.kind === "Gateway" && o.apiVersion?.startsWith("networking.istio.io/"),
  );
  for (const svc of objects) {
    if (svc.kind !== "Service" || svc.metadata?.namespace !== ISTIO_SYSTEM) continue;
    const selector = asRecord(asRecord(svc.spec).selector) as Labels;
    if (Object.keys(selector).length === 0) continue;
    for (const gw of gateways) {
      const gwSelector = asRecord(asRecord(gw.spec).selector) as Labels;
      if (!matchesLabels(gwSelector, selector)) continue;
      for (const server of asList(asRecord(gw.spec).servers).map(asRecord)) {
        if (str(asRecord(server.tls).mode) !== "AUTO_PASSTHROUGH") continue;
        const listener = Number(asRecord(server.port).number);
        const port = asList(asRecord(svc.spec).ports)
          .map(asRecord)
          .find((p) => Number(p.targetPort ?? p.port) === listener || Number(p.port) === listener);
        if (port === undefined) continue;
        return {
          service: refOf(svc),
          addresses: lbAddresses(svc),
          port: Number(port.port),
          gateway: refOf(gw),
          hosts: asList(server.hosts).map(String),
        };
      }
    }
  }
  return undefined;
}

function byKind(objects: readonly KubeObject[], group: string, kind: string): KubeObject[] {
  return objects.filter(
    (o) =>
      o.kind === kind &&
      (o.apiVersion ?? "").startsWith(`${group}/`) &&
      o.metadata?.name !== undefined,
  );
}

/** Objects by kind, namespace and name; a later object replaces an earlier one of that key. */
function latest(objects: readonly KubeObject[]): KubeObject[] {
  const byKey = new Map<string, KubeObject>();
  for (const o of objects) {
    const group = (o.apiVersion ?? "").split("/").slice(0, -1).join("/");
    byKey.set(`${group}|${o.kind}|${o.metadata?.namespace ?? ""}|${o.metadata?.name ?? ""}`, o);
  }
  return [...byKey.values()];
}

/**
 * Indexes one cluster's objects (a later object of the same kind, namespace and name replaces
 * an earlier one, as applying them in order would). Throws a MeshModelError naming the object
 * it cannot read.
 */
export function clusterView(input: ClusterInput): ClusterView {
  const id = input.id;
  const objects = latest(input.objects);
  const namespaces = new Map<string, Labels>();
  for (const o of objects)
    if (o.kind === "Namespace") namespaces.set(o.metadata?.name ?? "", labelsOf(o));
  const meshCm = objects.find(
    (o) =>
      o.kind === "ConfigMap" &&
      o.metadata?.namespace === ISTIO_SYSTEM &&
      o.metadata?.name === "istio",
  );
  const pods = objects.filter((o) => o.kind === "Pod").map((o) => podView(o, namespaces));
  const podsByIp = new Map<string, PodView>();
  for (const p of pods) if (p.ip !== "" && p.active) podsByIp.set(p.ip, p);
  const networkGatewayServices = new Map<string, { address: string; port: number }[]>();
  for (const o of objects) {
    const network = o.kind === "Service" ? o.metadata?.labels?.[NETWORK_LABEL] : undefined;
    if (network === undefined) continue;
    const port = Number(
      o.metadata?.annotations?.["networking.istio.io/gatewayPort"] ?? DEFAULT_GATEWAY_PORT,
    );
    const list = networkGatewayServices.get(network) ?? [];
    for (const address of lbAddresses(o)) list.push({ address, port });
    networkGatewayServices.set(network, list);
  }
  return {
    id,
    mesh: readMeshConfig(id, meshCm),
    meshConfigRef: meshCm === undefined ? "(no mesh config)" : refOf(meshCm),
    skipValidateTrustDomain: skipValidation(objects),
    network: namespaces.get(ISTIO_SYSTEM)?.[NETWORK_LABEL] ?? "",
    namespaces,
    pods,
    podsByIp,
    services: objects
      .filter((o) => o.kind === "Service")
      .map((o) =>
        serviceView(
          o,
          objects.filter((s) => s.kind === "EndpointSlice"),
        ),
      ),
    networkGatewayServices,
    eastWest: eastWestOf(objects),
    authorizationPolicies: byKind(objects, "security.istio.io", "AuthorizationPolicy"),
    peerAuthentications: byKind(objects, "security.istio.io", "PeerAuthentication"),
    serviceEntries: byKind(objects, "networking.istio.io", "ServiceEntry"),
    destinationRules: byKind(objects, "networking.istio.io", "DestinationRule"),
    sidecars: byKind(objects, "networking.istio.io", "Sidecar"),
  };
}

/** The model's view of every cluster. */
export function buildMesh(clusters: readonly ClusterInput[]): Mesh {
  const out = new Map<string, ClusterView>();
  for (const c of clusters) {
    if (typeof c.id !== "string" || c.id === "") throw new MeshModelError("cluster without id");
    if (out.has(c.id)) throw new MeshModelError(`cluster "${c.id}" appears twice`);
    out.set(c.id, clusterView(c));
  }
  return { clusters: out };
}

export function clusterOf(mesh: Mesh, id: string): ClusterView {
  const c = mesh.clusters.get(id);
  if (c === undefined) throw new MeshModelError(`unknown cluster "${id}"`);
  return c;
}

/** The port a pod listens on for a Service port: numeric target, or the named container port. */
export function podPort(pod: PodView, port: ServicePortView): number | undefined {
  if (typeof port.targetPort === "number") return port.targetPort;
  return pod.containerPorts.find((c) => c.name === port.targetPort)?.port;
}

/** Active pods a Service selects. */
export function podsOf(cluster: ClusterView, svc: ServiceView): PodView[] {
  const selector = svc.selector;
  if (selector === undefined) return [];
  return cluster.pods.filter(
    (p) => p.active && p.namespace === svc.namespace && matchesLabels(selector, p.labels),
  );
}
