import { type Logger, silentLogger } from "@isthmus/logging";
import type { Service, WorkloadIdentity } from "@isthmus/proto";
import type { KubeClient } from "../kube/client.js";
import {
  AUTHORIZATION_POLICIES,
  CONFIG_MAPS,
  DESTINATION_RULES,
  ENDPOINT_SLICES,
  GATEWAYS,
  NAMESPACES,
  NODES,
  PODS,
  RENDERED_KINDS,
  type Resource,
  SERVICE_ENTRIES,
  SERVICES,
} from "../kube/resources.js";
import type { KubeObject } from "../kube-object.js";
import { canonicalJson } from "../kube-object.js";
import type { LocalFacts, LocalServiceEndpoints } from "../local-facts.js";
import {
  accessSelectorOf,
  buildIdentity,
  buildService,
  type CatalogDelta,
  type CatalogSnapshot,
  DEFAULT_SERVICE_ACCOUNT,
  diffCatalog,
  endpointsOf,
  keyOf,
  namespaceInMesh,
} from "./catalog.js";
import { createInformer, type Delay, type Informer, type InformerStatus } from "./informer.js";
import {
  buildMesh,
  EAST_WEST_GATEWAY_LABEL,
  EAST_WEST_GATEWAY_VALUE,
  type MeshView,
} from "./mesh.js";
import {
  type EndpointSliceView,
  matchesSelector,
  type PodView,
  SERVICE_NAME_LABEL,
  type ServiceView,
  slimEndpointSlice,
  slimMeta,
  slimPod,
  slimRendered,
  slimService,
} from "./objects.js";

export interface ClusterCacheOptions {
  client: KubeClient;
  clusterId: string;
  /** Namespace of the Istio control plane. Default istio-system. */
  istioNamespace?: string;
  /** Cluster locality (region/zone); default from the nodes' topology labels. */
  locality?: string;
  delay?: Delay;
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
  onInformerStatus?: (status: InformerStatus) => void;
  /** Clock for catalog origin times. */
  now?: () => Date;
}

/** A catalog delta and when it began (not the policy engine's `CatalogChange`, one change
 * of a hub-wide catalog). */
export interface TimedCatalogDelta {
  delta: CatalogDelta;
  /** When the earliest change in the delta was observed (watch event time). */
  originTime: Date;
}

export type RenderedEvent = "add" | "update" | "delete";

/** The agent's view of its cluster: informer caches, indexes, the catalog and mesh facts. */
export interface ClusterCache {
  /** Starts every informer; resolves once all have listed. */
  start(): Promise<void>;
  stop(): Promise<void>;
  informerStatuses(): InformerStatus[];
  /** Every informer listed and none failing. */
  healthy(): boolean;
  mesh(): MeshView;
  /** Local facts for rendering, reading the live cache. */
  facts(): LocalFacts;
  /** Builds the whole catalog and makes it the baseline of later deltas. */
  fullSnapshot(): { snapshot: CatalogSnapshot; originTime: Date };
  /** The changes since the last snapshot or delta, undefined when nothing changed. */
  takeDelta(): TimedCatalogDelta | undefined;
  /** A live Istio object of a rendered kind (owned or not): apiVersion, kind and metadata
   * (name, namespace, labels, annotations, resourceVersion, uid), without spec; an owned one
   * carries the hash of its live content (`liveHashOf`). */
  liveObject(kind: string, namespace: string, name: string): KubeObject | undefined;
  /** Every live object of the rendered kinds. */
  liveObjects(): KubeObject[];
  /** A ConfigMap of the Istio namespace (`istio`, `istio-ca-root-cert`), as listed. */
  istioConfigMap(name: string): KubeObject | undefined;
  /** The pod selector of a Service a DefaultAccessIntent covers (it exists, its namespace is
   * in the mesh, its selector is not empty), else undefined. */
  accessTarget(namespace: string, service: string): Readonly<Record<string, string>> | undefined;
  /** Every Service a DefaultAccessIntent covers, as `namespace/name` -> its selector. */
  accessTargets(): Map<string, Readonly<Record<string, string>>>;
  /** Local endpoints of a Service changed (slices, the Service, or its namespace). */
  onEndpoints(cb: (namespace: string, service: string) => void): void;
  /** The catalog has pending changes. */
  onCatalog(cb: () => void): void;
  /** Mesh facts or warnings changed. */
  onMesh(cb: (mesh: MeshView) => void): void;
  /** A live object of a rendered kind changed. */
  onRendered(cb: (event: RenderedEvent, obj: KubeObject) => void): void;
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * Long as a closure, not as one job: its inner functions share the informers, their indexes and
 * the catalog baseline; none is over about 80 lines.
 */
export function createClusterCache(options: ClusterCacheOptions): ClusterCache {
  const logger = options.logger ?? silentLogger;
  const istioNs = options.istioNamespace ?? "istio-system";
  const now = options.now ?? (() => new Date());
  const common = {
    client: options.client,
    logger,
    ...(options.delay === undefined ? {} : { delay: options.delay }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.onInformerStatus === undefined ? {} : { onStatus: options.onInformerStatus }),
  };
  const make = <T extends KubeObject>(
    resource: Resource,
    extra: { namespace?: string; transform?: (o: KubeObject) => T; name?: string } = {},
  ) => createInformer<T>({ ...common, resource, ...extra });

  const services = make<ServiceView>(SERVICES, { transform: slimService });
  const slices = make<EndpointSliceView>(ENDPOINT_SLICES, { transform: slimEndpointSlice });
  const pods = make<PodView>(PODS, { transform: slimPod });
  const namespaces = make(NAMESPACES, { transform: slimMeta });
  const nodes = make(NODES, { transform: slimMeta });
  const configMaps = make(CONFIG_MAPS, { namespace: istioNs, name: "istio-configmaps" });
  const gateways = make(GATEWAYS);
  // The reconciler reads only the metadata of the objects it renders (ownership label,
  // intent annotations and content hash, uid) and a hash of their live content: their spec
  // and managedFields are not kept.
  const rendered: Record<string, Informer<KubeObject>> = {
    ServiceEntry: make(SERVICE_ENTRIES, { transform: slimRendered }),
    DestinationRule: make(DESTINATION_RULES, { transform: slimRendered }),
    AuthorizationPolicy: make(AUTHORIZATION_POLICIES, { transform: slimRendered }),
  };
  const all: Informer<KubeObject>[] = [
    services,
    slices,
    pods,
    namespaces,
    nodes,
    configMaps,
    gateways,
    ...Object.values(rendered),
  ] as Informer<KubeObject>[];

  const endpointListeners: ((ns: string, name: string) => void)[] = [];
  const catalogListeners: (() => void)[] = [];
  const meshListeners: ((m: MeshView) => void)[] = [];
  const renderedListeners: ((e: RenderedEvent, o: KubeObject) => void)[] = [];

  // Indexes kept up to date from the first listed item on.
  const sliceOwner = new Map<string, string>(); // slice key -> service key
  const slicesByService = new Map<string, Set<string>>(); // service key -> slice names
  const podIdentity = new Map<string, string>(); // pod key -> identity key
  const podsByIdentity = new Map<string, Map<string, PodView>>();

  // Catalog tracking: what was last reported, and what changed since.
  let started = false;
  let reported: CatalogSnapshot = { services: new Map(), identities: new Map() };
  const dirtyServices = new Set<string>();
  const dirtyIdentities = new Set<string>();
  let dirtySince: Date | undefined;
  let meshView: MeshView = computeMesh();
  let meshKey = canonicalJson(meshView);

  function markDirty(kind: "service" | "identity", key: string): void {
    if (!started) return;
    (kind === "service" ? dirtyServices : dirtyIdentities).add(key);
    if (dirtySince === undefined) {
      dirtySince = now();
      for (const cb of catalogListeners) cb();
    }
  }

  function servicesInNamespace(ns: string): readonly ServiceView[] {
    return services.list(ns);
  }

  function onPod(pod: PodView, deleted: boolean): void {
    const ns = pod.metadata.namespace ?? "";
    const key = keyOf(ns, pod.metadata.name);
    const oldId = podIdentity.get(key);
    const newId = keyOf(ns, pod.spec.serviceAccountName ?? DEFAULT_SERVICE_ACCOUNT);
    if (oldId !== undefined && (deleted || oldId !== newId)) {
      const set = podsByIdentity.get(oldId);
      set?.delete(key);
      if (set?.size === 0) podsByIdentity.delete(oldId);
      podIdentity.delete(key);
      markDirty("identity", oldId);
    }
    if (!deleted) {
      podIdentity.set(key, newId);
      getOrCreate(podsByIdentity, newId, () => new Map()).set(key, pod);
      markDirty("identity", newId);
    }
    if (!started) return;
    // The service accounts behind a Service come from the pods its selector matches.
    for (const svc of servicesInNamespace(ns)) {
      if (matchesSelector(svc.spec.selector, pod.metadata.labels))
        markDirty("service", keyOf(ns, svc.metadata.name));
    }
  }

  function onSlice(slice: EndpointSliceView, deleted: boolean): void {
    const ns = slice.metadata.namespace ?? "";
    const sliceKey = keyOf(ns, slice.metadata.name);
    const owner = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    const newSvc = owner === undefined || deleted ? undefined : keyOf(ns, owner);
    const oldSvc = sliceOwner.get(sliceKey);
    const touched = new Set<string>();
    if (oldSvc !== undefined && oldSvc !== newSvc) {
      slicesByService.get(oldSvc)?.delete(slice.metadata.name);
      if (slicesByService.get(oldSvc)?.size === 0) slicesByService.delete(oldSvc);
      sliceOwner.delete(sliceKey);
      touched.add(oldSvc);
    }
    if (newSvc !== undefined) {
      sliceOwner.set(sliceKey, newSvc);
      getOrCreate(slicesByService, newSvc, () => new Set()).add(slice.metadata.name);
      touched.add(newSvc);
    }
    if (!started) return;
    for (const k of touched) {
      markDirty("service", k);
      const i = k.indexOf("/");
      for (const cb of endpointListeners) cb(k.slice(0, i), k.slice(i + 1));
    }
  }

  function onService(svc: ServiceView): void {
    if (svc.metadata.labels?.[EAST_WEST_GATEWAY_LABEL] === EAST_WEST_GATEWAY_VALUE) refreshMesh();
    if (!started) return;
    const ns = svc.metadata.namespace ?? "";
    markDirty("service", keyOf(ns, svc.metadata.name));
    for (const cb of endpointListeners) cb(ns, svc.metadata.name);
  }

  function onNamespace(ns: KubeObject): void {
    if (ns.metadata.name === istioNs) refreshMesh();
    if (!started) return;
    for (const svc of servicesInNamespace(ns.metadata.name)) {
      markDirty("service", keyOf(ns.metadata.name, svc.metadata.name));
      for (const cb of endpointListeners) cb(ns.metadata.name, svc.metadata.name);
    }
  }

  function computeMesh(): MeshView {
    const input: Parameters<typeof buildMesh>[0] = {
      istioNamespace: istioNs,
      istioSystem: namespaces?.get(istioNs),
      meshConfig: configMaps?.get("istio", istioNs),
      eastWestServices: (services?.list() ?? []).filter(
        (s) => s.metadata.labels?.[EAST_WEST_GATEWAY_LABEL] === EAST_WEST_GATEWAY_VALUE,
      ),
      gateways: gateways?.list() ?? [],
      nodes: nodes?.list() ?? [],
    };
    if (options.locality !== undefined) input.locality = options.locality;
    return buildMesh(input);
  }

  function refreshMesh(): void {
    if (!started) return;
    const next = computeMesh();
    const key = canonicalJson(next);
    if (key === meshKey) return;
    meshView = next;
    meshKey = key;
    for (const cb of meshListeners) cb(next);
  }

  pods.on("add", (p) => onPod(p, false));
  pods.on("update", (p) => onPod(p, false));
  pods.on("delete", (p) => onPod(p, true));
  slices.on("add", (s) => onSlice(s, false));
  slices.on("update", (s) => onSlice(s, false));
  slices.on("delete", (s) => onSlice(s, true));
  for (const ev of ["add", "update", "delete"] as const) {
    services.on(ev, onService);
    namespaces.on(ev, onNamespace);
    configMaps.on(ev, refreshMesh);
    gateways.on(ev, refreshMesh);
    nodes.on(ev, refreshMesh);
    for (const inf of Object.values(rendered)) {
      inf.on(ev, (o) => {
        if (started) for (const cb of renderedListeners) cb(ev, o);
      });
    }
  }

  function slicesOf(svcKey: string, ns: string): EndpointSliceView[] {
    const names = slicesByService.get(svcKey);
    if (names === undefined) return [];
    const out: EndpointSliceView[] = [];
    for (const n of names) {
      const s = slices.get(n, ns);
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  function serviceEntry(svc: ServiceView, podsInNs: readonly PodView[]): Service {
    const ns = svc.metadata.namespace ?? "";
    return buildService(
      svc,
      slicesOf(keyOf(ns, svc.metadata.name), ns),
      podsInNs,
      namespaces.get(ns)?.metadata.labels,
    );
  }

  function identityEntry(key: string): WorkloadIdentity | undefined {
    const set = podsByIdentity.get(key);
    if (set === undefined || set.size === 0) return undefined;
    const i = key.indexOf("/");
    const ns = key.slice(0, i);
    const id = buildIdentity(
      ns,
      key.slice(i + 1),
      [...set.values()],
      namespaces.get(ns)?.metadata.labels,
    );
    return id.podCount > 0 ? id : undefined;
  }

  const accessSelector = (svc: ServiceView) =>
    accessSelectorOf(svc, namespaces.get(svc.metadata.namespace ?? "")?.metadata.labels);

  function podsByNamespace(): Map<string, PodView[]> {
    const out = new Map<string, PodView[]>();
    for (const p of pods.list()) {
      const ns = p.metadata.namespace ?? "";
      getOrCreate(out, ns, () => []).push(p);
    }
    return out;
  }

  return {
    async start() {
      await Promise.all(all.map((i) => i.start()));
      started = true;
      meshView = computeMesh();
      meshKey = canonicalJson(meshView);
      logger.info("informers synced", { informers: all.length });
    },
    async stop() {
      started = false;
      await Promise.all(all.map((i) => i.stop()));
    },
    informerStatuses: () => all.map((i) => i.status()),
    healthy: () => all.every((i) => i.status().healthy),
    mesh: () => meshView,
    facts() {
      const mesh = meshView.facts;
      return {
        clusterId: options.clusterId,
        trustDomain: mesh.trustDomain,
        network: mesh.network,
        locality: mesh.locality,
        endpoints(ns: string, name: string): LocalServiceEndpoints | undefined {
          const service = services.get(name, ns);
          if (service === undefined) return undefined;
          return endpointsOf(
            slicesOf(keyOf(ns, name), ns),
            namespaceInMesh(namespaces.get(ns)?.metadata.labels),
            service.spec.ports,
          );
        },
      };
    },
    fullSnapshot() {
      const byNs = podsByNamespace();
      const snapshot: CatalogSnapshot = { services: new Map(), identities: new Map() };
      for (const svc of services.list()) {
        const ns = svc.metadata.namespace ?? "";
        snapshot.services.set(keyOf(ns, svc.metadata.name), serviceEntry(svc, byNs.get(ns) ?? []));
      }
      for (const key of podsByIdentity.keys()) {
        const id = identityEntry(key);
        if (id !== undefined) snapshot.identities.set(key, id);
      }
      const originTime = dirtySince ?? now();
      reported = snapshot;
      dirtyServices.clear();
      dirtyIdentities.clear();
      dirtySince = undefined;
      return { snapshot, originTime };
    },
    takeDelta() {
      if (dirtySince === undefined) return undefined;
      const next: CatalogSnapshot = {
        services: new Map(reported.services),
        identities: new Map(reported.identities),
      };
      const nsPods = new Map<string, readonly PodView[]>();
      for (const key of dirtyServices) {
        const i = key.indexOf("/");
        const ns = key.slice(0, i);
        const svc = services.get(key.slice(i + 1), ns);
        if (svc === undefined) next.services.delete(key);
        else {
          next.services.set(
            key,
            serviceEntry(
              svc,
              getOrCreate(nsPods, ns, () => pods.list(ns)),
            ),
          );
        }
      }
      for (const key of dirtyIdentities) {
        const id = identityEntry(key);
        if (id === undefined) next.identities.delete(key);
        else next.identities.set(key, id);
      }
      const delta = diffCatalog(reported, next, {
        services: dirtyServices,
        identities: dirtyIdentities,
      });
      const originTime = dirtySince;
      reported = next;
      dirtyServices.clear();
      dirtyIdentities.clear();
      dirtySince = undefined;
      return { delta, originTime };
    },
    accessTarget(ns, name) {
      const svc = services.get(name, ns);
      return svc === undefined ? undefined : accessSelector(svc);
    },
    accessTargets() {
      const out = new Map<string, Readonly<Record<string, string>>>();
      for (const svc of services.list()) {
        const selector = accessSelector(svc);
        if (selector !== undefined)
          out.set(keyOf(svc.metadata.namespace ?? "", svc.metadata.name), selector);
      }
      return out;
    },
    liveObject(kind, ns, name) {
      return rendered[kind]?.get(name, ns);
    },
    liveObjects() {
      return Object.keys(RENDERED_KINDS).flatMap((k) => [...(rendered[k]?.list() ?? [])]);
    },
    istioConfigMap: (name) => configMaps.get(name, istioNs),
    onEndpoints: (cb) => void endpointListeners.push(cb),
    onCatalog: (cb) => void catalogListeners.push(cb),
    onMesh: (cb) => void meshListeners.push(cb),
    onRendered: (cb) => void renderedListeners.push(cb),
  };
}
