// The store's indexes, events and reads (see StoreIndex); store.ts adds the writes.

import type { FieldOwners } from "./field-owners.js";
import { listPage } from "./list-page.js";
import type { KubeObject } from "./object.js";
import { clone } from "./object.js";
import type { ResourceType } from "./resources.js";
import {
  builtinResourceTypes,
  parseApiVersion,
  resourceKey,
  resourceTypeFromCrd,
} from "./resources.js";
import { gone, KubeSimError, notFound, statusFailure } from "./status.js";
import type {
  Collection,
  ListOptions,
  ListResult,
  Stored,
  StoreEvent,
  StoreOptions,
} from "./store-types.js";
import { keyOf } from "./store-types.js";

/**
 * The in-memory object store's reading half: one collection per resource type with
 * per-namespace indexes, one global resourceVersion counter, a bounded event history for
 * watch resume, and the served types. Writes (validation, defaults, patches, apply) are
 * Store's, in store.ts.
 */
export class StoreIndex {
  readonly types = new Map<string, ResourceType>();
  readonly collections = new Map<string, Collection>();
  protected readonly byKind = new Map<string, ResourceType>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly typeListeners = new Set<() => void>();
  private history: StoreEvent[] = [];
  private historyStart = 0;
  /** Events with rv <= compactedRv may be missing from the history. */
  compactedRv = 0;
  rv = 0;
  /** Bumped whenever the set of served types changes (discovery and OpenAPI hashes). */
  typesGeneration = 1;

  constructor(protected readonly options: StoreOptions) {
    for (const t of builtinResourceTypes()) this.addType(t);
  }

  // ---- types ------------------------------------------------------------------------------

  addType(t: ResourceType): void {
    const key = resourceKey(t.group, t.resource);
    this.types.set(key, t);
    this.byKind.set(`${t.group}/${t.kind}`, t);
    if (!this.collections.has(key)) {
      this.collections.set(key, {
        type: t,
        byKey: new Map(),
        byNamespace: new Map(),
        sorted: undefined,
        sortedByNamespace: new Map(),
      });
    } else {
      const c = this.collections.get(key)!;
      this.collections.set(key, { ...c, type: t });
    }
    this.typesGeneration++;
    for (const l of this.typeListeners) l();
  }

  protected removeType(t: ResourceType): void {
    const key = resourceKey(t.group, t.resource);
    const c = this.collections.get(key);
    if (c !== undefined) {
      for (const s of [...c.byKey.values()]) this.remove(c, s);
    }
    this.types.delete(key);
    this.collections.delete(key);
    this.byKind.delete(`${t.group}/${t.kind}`);
    this.typesGeneration++;
    for (const l of this.typeListeners) l();
  }

  onTypesChanged(l: () => void): () => void {
    this.typeListeners.add(l);
    return () => this.typeListeners.delete(l);
  }

  /** The type for a URL: group, version and plural resource name. */
  typeFor(group: string, version: string, resource: string): ResourceType | undefined {
    const t = this.types.get(resourceKey(group, resource));
    return t?.versions.includes(version) ? t : undefined;
  }

  /** The type of an object by apiVersion and kind, or a 404 like the REST mapper's error. */
  typeForObject(apiVersion: string, kind: string): ResourceType {
    const { group, version } = parseApiVersion(apiVersion);
    const t = this.byKind.get(`${group}/${kind}`);
    if (t === undefined || !t.versions.includes(version)) {
      throw new KubeSimError(
        statusFailure(404, "NotFound", `no matches for kind "${kind}" in version "${apiVersion}"`),
      );
    }
    return t;
  }

  collection(t: ResourceType): Collection {
    return this.collections.get(resourceKey(t.group, t.resource))!;
  }

  // ---- events -----------------------------------------------------------------------------

  subscribe(l: (e: StoreEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  protected emit(e: StoreEvent): void {
    this.history.push(e);
    const overflow = this.history.length - this.historyStart - this.options.historySize;
    if (overflow > 0) {
      this.compactedRv = this.history[this.historyStart + overflow - 1]!.rv;
      this.historyStart += overflow;
      if (this.historyStart > 4096 && this.historyStart * 2 > this.history.length) {
        this.history = this.history.slice(this.historyStart);
        this.historyStart = 0;
      }
    }
    for (const l of this.listeners) l(e);
  }

  /** Drops the whole event history: a watch from any older resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.historyStart = 0;
    this.compactedRv = this.rv;
  }

  /** Events after `rv` for the collection, or a 410 Expired error if they are gone. */
  eventsSince(rv: number, c: Collection): StoreEvent[] {
    if (rv < this.compactedRv) {
      throw gone(`too old resource version: ${rv} (${this.compactedRv})`);
    }
    const out: StoreEvent[] = [];
    for (let i = this.history.length - 1; i >= this.historyStart; i--) {
      const e = this.history[i]!;
      if (e.rv <= rv) break;
      if (e.collection.byKey === c.byKey) out.push(e);
    }
    return out.reverse();
  }

  // ---- reads ------------------------------------------------------------------------------

  getStored(t: ResourceType, namespace: string | undefined, name: string): Stored {
    const s = this.collection(t).byKey.get(keyOf(t.namespaced ? namespace : undefined, name));
    if (s === undefined) throw notFound(t.group, t.resource, name);
    return s;
  }

  list(t: ResourceType, opts: ListOptions): ListResult {
    return listPage(this.collection(t), t, opts, this.rv, this.compactedRv);
  }

  namespaceExists(ns: string): boolean {
    return this.collection(this.types.get("namespaces")!).byKey.has(ns);
  }

  // ---- indexes ---------------------------------------------------------------------------

  protected put(
    c: Collection,
    obj: KubeObject,
    prev: Stored | undefined,
    owners: FieldOwners | undefined,
    creator: string,
  ): Stored {
    const s: Stored = {
      obj,
      rv: Number(obj.metadata.resourceVersion),
      json: undefined,
      owners,
      creator,
    };
    const ns = c.type.namespaced ? (obj.metadata.namespace ?? "") : "";
    const key = keyOf(ns, obj.metadata.name);
    c.byKey.set(key, s);
    let nsMap = c.byNamespace.get(ns);
    if (nsMap === undefined) {
      nsMap = new Map();
      c.byNamespace.set(ns, nsMap);
    }
    nsMap.set(obj.metadata.name, s);
    if (prev === undefined) {
      c.sorted = undefined;
      c.sortedByNamespace.delete(ns);
    }
    return s;
  }

  protected remove(c: Collection, s: Stored): Stored {
    const ns = c.type.namespaced ? (s.obj.metadata.namespace ?? "") : "";
    c.byKey.delete(keyOf(ns, s.obj.metadata.name));
    const nsMap = c.byNamespace.get(ns);
    nsMap?.delete(s.obj.metadata.name);
    if (nsMap !== undefined && nsMap.size === 0) c.byNamespace.delete(ns);
    c.sorted = undefined;
    c.sortedByNamespace.delete(ns);
    const obj = clone(s.obj);
    obj.metadata.resourceVersion = String(++this.rv);
    const gone: Stored = {
      obj,
      rv: this.rv,
      json: undefined,
      owners: undefined,
      creator: s.creator,
    };
    this.emit({ type: "DELETED", rv: this.rv, collection: c, object: gone, previous: s.obj });
    if (
      c.type.group === "apiextensions.k8s.io" &&
      c.type.resource === "customresourcedefinitions"
    ) {
      const t = resourceTypeFromCrd(s.obj);
      if (typeof t !== "string") {
        const existing = this.types.get(resourceKey(t.group, t.resource));
        if (existing?.crdName === s.obj.metadata.name) this.removeType(existing);
      }
    }
    if (c.type.group === "" && c.type.resource === "namespaces") {
      for (const other of this.collections.values()) {
        if (!other.type.namespaced) continue;
        const inNs = other.byNamespace.get(s.obj.metadata.name);
        if (inNs !== undefined) for (const o of [...inNs.values()]) this.remove(other, o);
      }
    }
    return gone;
  }
}
