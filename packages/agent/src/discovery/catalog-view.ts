import type { Service, WorkloadIdentity } from "@isthmus/proto";
import type { KubeObject } from "../kube-object.js";
import {
  accessSelectorOf,
  buildIdentity,
  buildService,
  type CatalogDelta,
  type CatalogSnapshot,
  diffCatalog,
  keyOf,
} from "./catalog.js";
import type { Informer } from "./informer.js";
import type { EndpointSliceView, PodView, ServiceView } from "./objects.js";

/** A catalog delta and when it began (not the policy engine's `CatalogChange`, one change
 * of a hub-wide catalog). */
export interface TimedCatalogDelta {
  delta: CatalogDelta;
  /** When the earliest change in the delta was observed (watch event time). */
  originTime: Date;
}

/** What the catalog is built from: the cluster cache's informers and indexes. */
export interface CatalogSources {
  services: Informer<ServiceView>;
  pods: Informer<PodView>;
  namespaces: Informer<KubeObject>;
  /** Pods by identity key (`namespace/serviceaccount`), kept by the cluster cache. */
  podsByIdentity: ReadonlyMap<string, ReadonlyMap<string, PodView>>;
  /** The EndpointSlices of a Service (`namespace/name` key), kept by the cluster cache. */
  slicesOf(svcKey: string, ns: string): EndpointSliceView[];
  /** Clock for catalog origin times. */
  now(): Date;
  /** The first change since the last snapshot or delta was marked. */
  onFirstChange(): void;
}

/**
 * The catalog built from the informers: the baseline last reported (a full snapshot or the
 * last delta applied to it), the services and identities marked changed since, and the
 * access targets of DefaultAccessIntents. The cluster cache marks changes; the catalog
 * sender takes them.
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share the reported baseline and the changes marked since; none is over 80 lines
export function createCatalogView(sources: CatalogSources) {
  const { services, pods, namespaces, podsByIdentity, slicesOf, now } = sources;
  let reported: CatalogSnapshot = { services: new Map(), identities: new Map() };
  const dirtyServices = new Set<string>();
  const dirtyIdentities = new Set<string>();
  let dirtySince: Date | undefined;

  function markDirty(kind: "service" | "identity", key: string): void {
    (kind === "service" ? dirtyServices : dirtyIdentities).add(key);
    if (dirtySince === undefined) {
      dirtySince = now();
      sources.onFirstChange();
    }
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
    markDirty,
    fullSnapshot(): { snapshot: CatalogSnapshot; originTime: Date } {
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
    takeDelta(): TimedCatalogDelta | undefined {
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
    accessTarget(ns: string, name: string): Readonly<Record<string, string>> | undefined {
      const svc = services.get(name, ns);
      return svc === undefined ? undefined : accessSelector(svc);
    },
    accessTargets(): Map<string, Readonly<Record<string, string>>> {
      const out = new Map<string, Readonly<Record<string, string>>>();
      for (const svc of services.list()) {
        const selector = accessSelector(svc);
        if (selector !== undefined)
          out.set(keyOf(svc.metadata.namespace ?? "", svc.metadata.name), selector);
      }
      return out;
    },
  };
}

export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}
