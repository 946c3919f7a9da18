import { create } from "@bufbuild/protobuf";
import {
  isEnforceableService,
  type LabelSet,
  LabelSetSchema,
  type Service,
  type ServicePort,
  ServicePortSchema,
  ServiceSchema,
  Visibility,
  type WorkloadIdentity,
  WorkloadIdentitySchema,
} from "@isthmus/proto";
import { canonicalJson } from "../kube-object.js";
import type { LocalServiceEndpoints } from "../local-facts.js";
import {
  type EndpointSliceView,
  matchesSelector,
  type PodView,
  type ServiceView,
} from "./objects.js";

/** Namespace labels that put a namespace in the mesh (sidecar injection or ambient). */
export function namespaceInMesh(labels: Record<string, string> | undefined): boolean {
  if (labels === undefined) return false;
  if (labels["istio-injection"] === "enabled") return true;
  if (labels["istio.io/rev"] !== undefined && labels["istio.io/rev"] !== "") return true;
  return labels["istio.io/dataplane-mode"] === "ambient";
}

const knownAppProtocols = new Set([
  "http",
  "http2",
  "https",
  "grpc",
  "grpc-web",
  "tls",
  "tcp",
  "mongo",
  "redis",
  "mysql",
  "udp",
]);

/** appProtocol, or the protocol a port name prefix names (`http-web` -> `http`). */
export function appProtocolOf(port: { name?: string; appProtocol?: string }): string {
  if (port.appProtocol !== undefined && port.appProtocol !== "") return port.appProtocol;
  const name = (port.name ?? "").toLowerCase();
  if (knownAppProtocols.has(name)) return name;
  if (name.startsWith("grpc-web")) return "grpc-web";
  const prefix = name.split("-")[0] ?? "";
  return name.includes("-") && knownAppProtocols.has(prefix) ? prefix : "";
}

/** The ports of a Service as the catalog reports them (the policy engine has its own
 * `servicePorts`: the distinct port numbers a decision is kept for). */
export function catalogPorts(svc: ServiceView): ServicePort[] {
  return (svc.spec.ports ?? []).map((p) =>
    create(ServicePortSchema, {
      name: p.name ?? "",
      port: p.port,
      protocol: p.protocol ?? "TCP",
      targetPort: p.targetPort === undefined ? String(p.port) : String(p.targetPort),
      appProtocol: appProtocolOf(p),
    }),
  );
}

function sortedRecord(r: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(r ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

/** Ready addresses and target ports of a Service, from its EndpointSlices. */
export function endpointsOf(
  slices: readonly EndpointSliceView[],
  inMesh: boolean,
  catalogPorts: ServiceView["spec"]["ports"] = [],
): LocalServiceEndpoints {
  const addresses = new Set<string>();
  const targetPorts: Record<string, number> = {};
  for (const s of slices) {
    if (s.addressType !== undefined && s.addressType !== "IPv4" && s.addressType !== "IPv6")
      continue;
    for (const e of s.endpoints ?? []) {
      // EndpointSlice semantics: a nil `ready` condition means ready.
      if (e.conditions?.ready === false) continue;
      for (const a of e.addresses) addresses.add(a);
    }
    for (const p of s.ports ?? []) if (p.port !== undefined) targetPorts[p.name ?? ""] = p.port;
  }
  const podPorts: Record<number, number> = {};
  let podPortsKnown = true;
  for (const p of catalogPorts ?? []) {
    const numeric =
      p.targetPort === undefined
        ? p.port
        : typeof p.targetPort === "number"
          ? p.targetPort
          : /^[0-9]+$/.test(p.targetPort)
            ? Number(p.targetPort)
            : undefined;
    const known = targetPorts[p.name ?? ""] ?? numeric;
    if (known === undefined) podPortsKnown = false;
    podPorts[p.port] = known ?? p.port;
  }
  return { addresses: [...addresses].sort(), targetPorts, inMesh, podPorts, podPortsKnown };
}

export const DEFAULT_SERVICE_ACCOUNT = "default";

function podActive(p: PodView): boolean {
  return p.status.phase !== "Succeeded" && p.status.phase !== "Failed";
}

/**
 * The pod selector of a Service under access control (`isEnforceableService` of the catalog
 * Service `buildService` makes of it, as the hub decides), which a DefaultAccessIntent covers;
 * undefined otherwise.
 */
export function accessSelectorOf(
  svc: ServiceView,
  namespaceLabels: Record<string, string> | undefined,
): Readonly<Record<string, string>> | undefined {
  const selector = svc.spec.selector ?? {};
  const inMesh = namespaceInMesh(namespaceLabels);
  return isEnforceableService({ inMesh, selector }) ? selector : undefined;
}

/** A catalog Service from the cache's view of a Kubernetes Service. */
export function buildService(
  svc: ServiceView,
  slices: readonly EndpointSliceView[],
  podsInNamespace: readonly PodView[],
  namespaceLabels: Record<string, string> | undefined,
): Service {
  const type = svc.spec.type ?? "ClusterIP";
  const selector = svc.spec.selector;
  const accounts = new Set<string>();
  if (selector !== undefined && Object.keys(selector).length > 0) {
    for (const p of podsInNamespace) {
      if (podActive(p) && matchesSelector(selector, p.metadata.labels)) {
        accounts.add(p.spec.serviceAccountName ?? DEFAULT_SERVICE_ACCOUNT);
      }
    }
  }
  const inMesh = namespaceInMesh(namespaceLabels);
  return create(ServiceSchema, {
    namespace: svc.metadata.namespace ?? "",
    name: svc.metadata.name,
    ports: catalogPorts(svc),
    labels: sortedRecord(svc.metadata.labels),
    selector: sortedRecord(selector),
    visibility:
      type === "LoadBalancer" || type === "NodePort" ? Visibility.PUBLIC : Visibility.PRIVATE,
    readyEndpoints: endpointsOf(slices, inMesh).addresses.length,
    serviceAccounts: [...accounts].sort(),
    inMesh,
  });
}

/** Labels that differ between pods of one workload and say nothing about identity. */
const VOLATILE_POD_LABELS = new Set([
  "pod-template-hash",
  "controller-revision-hash",
  "pod-template-generation",
  "statefulset.kubernetes.io/pod-name",
  "apps.kubernetes.io/pod-index",
  "batch.kubernetes.io/controller-uid",
  "controller-uid",
  "batch.kubernetes.io/job-completion-index",
]);

/**
 * A workload identity from the active pods of one service account in one namespace; outside
 * the mesh when some of them run without Istio (their calls carry no identity).
 */
export function buildIdentity(
  namespace: string,
  serviceAccount: string,
  pods: readonly PodView[],
  namespaceLabels?: Record<string, string>,
): WorkloadIdentity {
  const sets = new Map<string, LabelSet>();
  let count = 0;
  const ambient = namespaceLabels?.["istio.io/dataplane-mode"] === "ambient";
  let outsideMesh = false;
  for (const p of pods) {
    if (!podActive(p)) continue;
    count++;
    if (!p.status.istio && !ambient) outsideMesh = true;
    const labels = Object.fromEntries(
      Object.entries(p.metadata.labels ?? {})
        .filter(([k]) => !VOLATILE_POD_LABELS.has(k))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    const key = canonicalJson(labels);
    const set = sets.get(key);
    if (set === undefined) sets.set(key, create(LabelSetSchema, { labels, podCount: 1 }));
    else set.podCount++;
  }
  const labelSets = [...sets.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, s]) => s)
    .slice(0, 1024);
  return create(WorkloadIdentitySchema, {
    namespace,
    serviceAccount,
    labelSets,
    podCount: count,
    outsideMesh,
  });
}

/** `namespace/name` */
export const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

export interface CatalogSnapshot {
  services: Map<string, Service>;
  identities: Map<string, WorkloadIdentity>;
}

export interface CatalogDelta {
  upsertedServices: Service[];
  removedServices: { namespace: string; name: string }[];
  upsertedIdentities: WorkloadIdentity[];
  removedIdentities: { namespace: string; name: string }[];
}

function fingerprint(m: Service | WorkloadIdentity): string {
  const { $typeName: _t, ...rest } = m as unknown as Record<string, unknown>;
  return canonicalJson(rest);
}

function split(key: string): { namespace: string; name: string } {
  const i = key.indexOf("/");
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/**
 * What changed from `prev` to `next`, for the keys in `keys` (all keys of both when
 * undefined): upserts for new or changed entries, removals for entries gone.
 */
export function diffCatalog(
  prev: CatalogSnapshot,
  next: CatalogSnapshot,
  keys?: { services: Iterable<string>; identities: Iterable<string> },
): CatalogDelta {
  const delta: CatalogDelta = {
    upsertedServices: [],
    removedServices: [],
    upsertedIdentities: [],
    removedIdentities: [],
  };
  const svcKeys = keys?.services ?? new Set([...prev.services.keys(), ...next.services.keys()]);
  for (const k of [...svcKeys].sort()) {
    const a = prev.services.get(k);
    const b = next.services.get(k);
    if (b === undefined) {
      if (a !== undefined) delta.removedServices.push(split(k));
    } else if (a === undefined || fingerprint(a) !== fingerprint(b)) delta.upsertedServices.push(b);
  }
  const idKeys =
    keys?.identities ?? new Set([...prev.identities.keys(), ...next.identities.keys()]);
  for (const k of [...idKeys].sort()) {
    const a = prev.identities.get(k);
    const b = next.identities.get(k);
    if (b === undefined) {
      if (a !== undefined) delta.removedIdentities.push(split(k));
    } else if (a === undefined || fingerprint(a) !== fingerprint(b))
      delta.upsertedIdentities.push(b);
  }
  return delta;
}

export function isEmptyDelta(d: CatalogDelta): boolean {
  return (
    d.upsertedServices.length === 0 &&
    d.removedServices.length === 0 &&
    d.upsertedIdentities.length === 0 &&
    d.removedIdentities.length === 0
  );
}
