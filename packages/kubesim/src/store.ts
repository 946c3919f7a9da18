import { randomBytes, randomUUID } from "node:crypto";
import type { FieldOwners } from "./field-owners.js";
import { applyFields, leafPaths, recordUpdate } from "./field-owners.js";
import type { KubeObject } from "./object.js";
import { clone, deepEqual, isPlainObject } from "./object.js";
import { jsonPatch, mergePatch, strategicMergePatch } from "./patch.js";
import type { ResourceType } from "./resources.js";
import {
  builtinResourceTypes,
  parseApiVersion,
  resourceKey,
  resourceTypeFromCrd,
} from "./resources.js";
import type { Selector } from "./selectors.js";
import {
  alreadyExists,
  badRequest,
  conflict,
  gone,
  invalid,
  KubeSimError,
  notFound,
  statusFailure,
  unsupportedMediaType,
} from "./status.js";
import { validateObject } from "./validation.js";

/** One stored object with its cached JSON (the object is never mutated once stored). */
export interface Stored {
  readonly obj: KubeObject;
  readonly rv: number;
  json: Buffer | undefined;
  /** Field owners; materialized lazily from `creator` on the first update or apply. */
  owners: FieldOwners | undefined;
  creator: string;
}

export interface Collection {
  readonly type: ResourceType;
  readonly byKey: Map<string, Stored>;
  readonly byNamespace: Map<string, Map<string, Stored>>;
  /** Keys in list order, computed on demand and dropped when objects come or go. */
  sorted: string[] | undefined;
  readonly sortedByNamespace: Map<string, string[]>;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  readonly type: EventType;
  readonly rv: number;
  readonly collection: Collection;
  readonly object: Stored;
  /** The object before the change (MODIFIED and DELETED), to compute selector transitions. */
  readonly previous: KubeObject | undefined;
}

export type PatchType = "merge" | "json" | "strategic" | "apply";

export interface WriteOptions {
  /** Field manager recorded for the write (apply requires one). */
  fieldManager?: string;
  dryRun?: boolean;
  /**
   * Trusted writes come from in-process seeding (acting as kubelet or a controller): they may
   * set status on create and skip status-subresource rules. HTTP writes are never trusted.
   */
  trusted?: boolean;
  /** Write through the `/status` subresource: only status changes are kept. */
  subresource?: "status";
  force?: boolean;
}

export interface ListOptions {
  namespace?: string | undefined;
  selector?: Selector | undefined;
  limit?: number | undefined;
  continue?: string | undefined;
}

export interface ListResult {
  items: Stored[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface StoreOptions {
  historySize: number;
  validate: boolean;
  now: () => Date;
}

function timestamp(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === "" ? name : `${namespace}/${name}`;
}

const DEFAULT_MANAGER = "unknown";

/**
 * The in-memory object store: one collection per resource type with per-namespace indexes,
 * one global resourceVersion counter, and a bounded event history for watch resume.
 */
/** `kubernetes.io/metadata.name`: the label the API server puts on every namespace (its name),
 * so that a namespace selector can pick one namespace by name. */
function nameLabel(ns: KubeObject): void {
  ns.metadata.labels = { ...ns.metadata.labels, "kubernetes.io/metadata.name": ns.metadata.name };
}

export class Store {
  readonly types = new Map<string, ResourceType>();
  readonly collections = new Map<string, Collection>();
  private readonly byKind = new Map<string, ResourceType>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly typeListeners = new Set<() => void>();
  private history: StoreEvent[] = [];
  private historyStart = 0;
  /** Events with rv <= compactedRv may be missing from the history. */
  compactedRv = 0;
  rv = 0;
  private nextClusterIp = 10;
  /** Bumped whenever the set of served types changes (discovery and OpenAPI hashes). */
  typesGeneration = 1;

  constructor(private readonly options: StoreOptions) {
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

  private removeType(t: ResourceType): void {
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

  private emit(e: StoreEvent): void {
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
    const c = this.collection(t);
    let start = "";
    let listRv = this.rv;
    if (opts.continue !== undefined && opts.continue !== "") {
      const token = decodeContinue(opts.continue);
      if (token.rv < this.compactedRv) {
        throw gone(
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        );
      }
      start = token.start;
      listRv = token.rv;
    }
    let keys: string[];
    if (t.namespaced && opts.namespace !== undefined && opts.namespace !== "") {
      const ns = c.byNamespace.get(opts.namespace);
      let cached = c.sortedByNamespace.get(opts.namespace);
      if (cached === undefined && ns !== undefined) {
        cached = [...ns.keys()].sort().map((n) => `${opts.namespace}/${n}`);
        c.sortedByNamespace.set(opts.namespace, cached);
      }
      keys = cached ?? [];
    } else {
      c.sorted ??= [...c.byKey.keys()].sort();
      keys = c.sorted;
    }
    let i = 0;
    if (start !== "") {
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid]! <= start) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    const limit =
      opts.limit !== undefined && opts.limit > 0 ? opts.limit : Number.POSITIVE_INFINITY;
    const items: Stored[] = [];
    const sel = opts.selector;
    for (; i < keys.length && items.length < limit; i++) {
      const s = c.byKey.get(keys[i]!)!;
      if (sel === undefined || sel.matches(s.obj)) items.push(s);
    }
    const result: ListResult = { items, resourceVersion: String(listRv) };
    if (items.length >= limit && i < keys.length) {
      const last = items[items.length - 1]!;
      result.continue = encodeContinue({
        rv: listRv,
        start: keyOf(last.obj.metadata.namespace, last.obj.metadata.name),
      });
      if (sel === undefined || sel.empty) result.remainingItemCount = keys.length - i;
    }
    return result;
  }

  namespaceExists(ns: string): boolean {
    return this.collection(this.types.get("namespaces")!).byKey.has(ns);
  }

  // ---- writes -----------------------------------------------------------------------------

  private put(
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

  private remove(c: Collection, s: Stored): Stored {
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

  private check(t: ResourceType, obj: KubeObject): void {
    if (!this.options.validate) return;
    const causes = validateObject(t, obj, true);
    if (causes.length > 0) throw invalid(t.group, t.kind, obj.metadata.name ?? "", causes);
  }

  private hasGeneration(t: ResourceType): boolean {
    return t.custom || t.statusSubresource || t.group !== "";
  }

  /** Server-side defaults the real API server sets on create. */
  private defaults(t: ResourceType, obj: KubeObject, trusted: boolean): void {
    if (t.group !== "") return;
    if (t.kind === "Namespace") {
      nameLabel(obj);
      obj.spec = { finalizers: ["kubernetes"], ...(isPlainObject(obj.spec) ? obj.spec : {}) };
      if (!trusted || obj.status === undefined) obj.status = { phase: "Active" };
    } else if (t.kind === "Service") {
      const spec: Record<string, unknown> = isPlainObject(obj.spec) ? obj.spec : {};
      obj.spec = spec;
      spec.type ??= "ClusterIP";
      spec.sessionAffinity ??= "None";
      if (spec.type !== "ExternalName" && spec.clusterIP === undefined) {
        const n = this.nextClusterIp++;
        spec.clusterIP = `10.96.${(n >> 8) & 255}.${n & 255}`;
      }
      if (typeof spec.clusterIP === "string") spec.clusterIPs ??= [spec.clusterIP];
      if (Array.isArray(spec.ports)) {
        spec.ports = spec.ports.map((p: unknown) =>
          isPlainObject(p) ? { protocol: "TCP", targetPort: p.port, ...p } : p,
        );
      }
      if (!trusted || obj.status === undefined) obj.status = { loadBalancer: {} };
    } else if (t.kind === "Pod") {
      if (!trusted || obj.status === undefined)
        obj.status = { phase: "Pending", qosClass: "BestEffort" };
      const spec = obj.spec as Record<string, unknown>;
      spec.serviceAccountName ??= "default";
      spec.restartPolicy ??= "Always";
      spec.dnsPolicy ??= "ClusterFirst";
    } else if (t.kind === "Secret") {
      if (obj.type === undefined || obj.type === "") obj.type = "Opaque";
    }
  }

  private checkNamespace(t: ResourceType, namespace: string | undefined): void {
    if (!t.namespaced) return;
    if (namespace === undefined || namespace === "") {
      throw badRequest(
        "the server could not find the requested resource: a namespace is required for namespaced objects",
      );
    }
    if (!this.namespaceExists(namespace)) throw notFound("", "namespaces", namespace);
  }

  create(t: ResourceType, input: KubeObject, opts: WriteOptions = {}): Stored {
    const obj = clone(input);
    if (!isPlainObject(obj.metadata)) obj.metadata = {} as KubeObject["metadata"];
    const meta = obj.metadata;
    if ((meta.name === undefined || meta.name === "") && typeof meta.generateName === "string") {
      meta.name = meta.generateName + randomBytes(4).toString("hex").slice(0, 5);
    }
    if (!t.namespaced) delete meta.namespace;
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== "") {
      throw badRequest("resourceVersion should not be set on objects to be created");
    }
    this.check(t, obj);
    this.checkNamespace(t, meta.namespace);
    const c = this.collection(t);
    if (c.byKey.has(keyOf(t.namespaced ? meta.namespace : undefined, meta.name))) {
      throw alreadyExists(t.group, t.resource, meta.name);
    }
    if (t.statusSubresource && !opts.trusted && t.kind !== "CustomResourceDefinition")
      delete obj.status;
    this.defaults(t, obj, opts.trusted === true);
    let crdType: ResourceType | undefined;
    if (t.kind === "CustomResourceDefinition" && t.group === "apiextensions.k8s.io") {
      const r = resourceTypeFromCrd(obj);
      if (typeof r === "string") {
        const [field, ...rest] = r.split(": ");
        throw invalid(t.group, t.kind, meta.name, [
          { reason: "FieldValueInvalid", field: field!, message: rest.join(": ") },
        ]);
      }
      const existing = this.types.get(resourceKey(r.group, r.resource));
      if (existing !== undefined && existing.crdName === undefined) {
        throw invalid(t.group, t.kind, meta.name, [
          {
            reason: "FieldValueInvalid",
            field: "spec.names.plural",
            message: `Invalid value: "${r.resource}": the resource is built in`,
          },
        ]);
      }
      crdType = r;
      obj.status = {
        conditions: [
          {
            type: "NamesAccepted",
            status: "True",
            reason: "NoConflicts",
            message: "no conflicts found",
            lastTransitionTime: timestamp(this.options.now()),
          },
          {
            type: "Established",
            status: "True",
            reason: "InitialNamesAccepted",
            message: "the initial names have been accepted",
            lastTransitionTime: timestamp(this.options.now()),
          },
        ],
        acceptedNames: (obj.spec as Record<string, unknown>).names,
        storedVersions: [r.versions[0]],
      };
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp(this.options.now());
    if (this.hasGeneration(t)) meta.generation = 1;
    else delete meta.generation;
    if (opts.dryRun) {
      meta.resourceVersion = String(this.rv);
      return { obj, rv: this.rv, json: undefined, owners: undefined, creator: "" };
    }
    meta.resourceVersion = String(++this.rv);
    const s = this.put(c, obj, undefined, undefined, opts.fieldManager ?? DEFAULT_MANAGER);
    this.emit({ type: "ADDED", rv: this.rv, collection: c, object: s, previous: undefined });
    if (crdType !== undefined) this.addType(crdType);
    return s;
  }

  private ownersOf(s: Stored): FieldOwners {
    if (s.owners === undefined) {
      s.owners = new Map([[s.creator, leafPaths(s.obj)]]);
    }
    return s.owners;
  }

  /**
   * Stores `next` as the new state of `current` (an update, patch or apply), keeping
   * identity and server-owned fields, honouring the status subresource. No-op writes keep
   * the resourceVersion and emit nothing, as on the real server.
   */
  private commit(
    t: ResourceType,
    current: Stored,
    input: KubeObject,
    opts: WriteOptions,
    owners: FieldOwners | undefined,
  ): Stored {
    const old = current.obj;
    let next: KubeObject;
    if (opts.subresource === "status") {
      next = clone(old);
      if (input.status === undefined) delete next.status;
      else next.status = clone(input.status);
    } else {
      next = clone(input);
      if (!isPlainObject(next.metadata)) next.metadata = {} as KubeObject["metadata"];
      if (t.statusSubresource && !opts.trusted) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
    }
    const meta = next.metadata;
    meta.name = old.metadata.name;
    if (t.namespaced) meta.namespace = old.metadata.namespace!;
    else delete meta.namespace;
    meta.uid = old.metadata.uid!;
    meta.creationTimestamp = old.metadata.creationTimestamp!;
    if (old.metadata.deletionTimestamp !== undefined)
      meta.deletionTimestamp = old.metadata.deletionTimestamp;
    meta.resourceVersion = old.metadata.resourceVersion!;
    if (old.metadata.generation !== undefined) meta.generation = old.metadata.generation;
    else delete meta.generation;
    next.apiVersion = old.apiVersion;
    next.kind = old.kind;
    // The API server sets this label on every write of a namespace, so it cannot be removed.
    if (t.group === "" && t.kind === "Namespace") nameLabel(next);
    if (t.kind === "CustomResourceDefinition" && opts.subresource !== "status")
      next.status = clone(old.status);
    this.check(t, next);
    if (deepEqual(next, old)) {
      if (owners !== undefined && !opts.dryRun) current.owners = owners;
      return current;
    }
    if (meta.generation !== undefined && specChanged(old, next))
      meta.generation = (old.metadata.generation ?? 0) + 1;
    const crdType = this.crdTypeChange(t, old, next);
    if (opts.dryRun)
      return { obj: next, rv: current.rv, json: undefined, owners: undefined, creator: "" };
    const c = this.collection(t);
    const manager = opts.fieldManager ?? DEFAULT_MANAGER;
    const newOwners = owners ?? recordUpdate(old, next, this.ownersOf(current), manager);
    if (
      meta.deletionTimestamp !== undefined &&
      !(Array.isArray(meta.finalizers) && meta.finalizers.length > 0)
    ) {
      return this.remove(c, { ...current, obj: next });
    }
    meta.resourceVersion = String(++this.rv);
    const s = this.put(c, next, current, newOwners, current.creator);
    this.emit({ type: "MODIFIED", rv: this.rv, collection: c, object: s, previous: old });
    if (crdType !== undefined) this.addType(crdType);
    return s;
  }

  /** The new served type when a CRD's spec changes (versions, columns, scope...), if any. */
  private crdTypeChange(
    t: ResourceType,
    old: KubeObject,
    next: KubeObject,
  ): ResourceType | undefined {
    if (t.group !== "apiextensions.k8s.io" || t.kind !== "CustomResourceDefinition")
      return undefined;
    if (deepEqual(old.spec, next.spec)) return undefined;
    const r = resourceTypeFromCrd(next);
    const before = resourceTypeFromCrd(old);
    if (typeof r === "string") {
      const [field, ...rest] = r.split(": ");
      throw invalid(t.group, t.kind, next.metadata.name, [
        { reason: "FieldValueInvalid", field: field!, message: rest.join(": ") },
      ]);
    }
    if (
      typeof before !== "string" &&
      (before.group !== r.group || before.resource !== r.resource)
    ) {
      throw invalid(t.group, t.kind, next.metadata.name, [
        {
          reason: "FieldValueInvalid",
          field: "spec",
          message: "Invalid value: the group and plural name of a CRD are immutable",
        },
      ]);
    }
    return r;
  }

  update(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    input: KubeObject,
    opts: WriteOptions = {},
  ): Stored {
    const current = this.getStored(t, namespace, name);
    if (
      isPlainObject(input.metadata) &&
      input.metadata.name !== undefined &&
      input.metadata.name !== name
    ) {
      throw badRequest(
        `the name of the object (${input.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    const rv = isPlainObject(input.metadata) ? input.metadata.resourceVersion : undefined;
    if (rv === undefined || rv === "") {
      if (t.custom) {
        throw invalid(t.group, t.kind, name, [
          {
            reason: "FieldValueInvalid",
            field: "metadata.resourceVersion",
            message: "Invalid value: 0x0: must be specified for an update",
          },
        ]);
      }
    } else if (rv !== current.obj.metadata.resourceVersion) {
      throw conflict(
        t.group,
        t.resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    return this.commit(t, current, input, opts, undefined);
  }

  patch(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    body: unknown,
    opts: WriteOptions = {},
  ): Stored {
    if (type === "apply") return this.apply(t, namespace, name, body, opts);
    const current = this.getStored(t, namespace, name);
    let patched: unknown;
    if (type === "merge") patched = mergePatch(current.obj, body);
    else if (type === "json") patched = jsonPatch(current.obj, body);
    else {
      if (t.custom) {
        throw unsupportedMediaType(
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
        );
      }
      patched = strategicMergePatch(current.obj, body);
    }
    if (!isPlainObject(patched)) throw badRequest("the patch did not produce an object");
    const obj = patched as KubeObject;
    const rv = isPlainObject(obj.metadata) ? obj.metadata.resourceVersion : undefined;
    if (rv !== undefined && rv !== current.obj.metadata.resourceVersion) {
      throw conflict(
        t.group,
        t.resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    if (isPlainObject(obj.metadata) && obj.metadata.name !== name) {
      throw badRequest(
        `metadata.name: Invalid value: "${String(obj.metadata.name)}": field is immutable`,
      );
    }
    return this.commit(t, current, obj, opts, undefined);
  }

  /** Server-side apply: create-or-merge with field ownership (see field-owners.ts). */
  apply(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    opts: WriteOptions,
  ): Stored {
    if (!isPlainObject(body)) throw badRequest("apply patch must be a YAML or JSON object");
    const config = clone(body) as KubeObject;
    const manager = opts.fieldManager;
    if (manager === undefined || manager === "") {
      throw invalid("meta.k8s.io", "PatchOptions", "", [
        {
          reason: "FieldValueRequired",
          field: "fieldManager",
          message: "Required value: is required for apply patch",
        },
      ]);
    }
    if (!isPlainObject(config.metadata)) config.metadata = {} as KubeObject["metadata"];
    if (config.metadata.name !== undefined && config.metadata.name !== name) {
      throw badRequest(
        `the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    if (
      t.namespaced &&
      config.metadata.namespace !== undefined &&
      config.metadata.namespace !== namespace
    ) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const gv =
      typeof config.apiVersion === "string" ? parseApiVersion(config.apiVersion) : undefined;
    if (
      gv === undefined ||
      gv.group !== t.group ||
      !t.versions.includes(gv.version) ||
      config.kind !== t.kind
    ) {
      throw badRequest(
        `invalid object type: ${String(config.apiVersion)}, Kind=${String(config.kind)}`,
      );
    }
    const c = this.collection(t);
    const current = c.byKey.get(keyOf(t.namespaced ? namespace : undefined, name));
    const rv = config.metadata.resourceVersion;
    if (rv !== undefined && current !== undefined && rv !== current.obj.metadata.resourceVersion) {
      throw conflict(
        t.group,
        t.resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    const cfg = { ...config, metadata: { ...config.metadata, name } } as KubeObject;
    if (t.namespaced) cfg.metadata.namespace = namespace!;
    if (current === undefined) {
      const created = this.create(t, cfg, { ...opts, fieldManager: manager });
      if (!opts.dryRun) {
        // What applyFields gives on create, without its merge (a copy of the object that was
        // then dropped): the manager owns every field it applied.
        const applied = leafPaths(cfg);
        created.owners = applied.size > 0 ? new Map([[manager, applied]]) : new Map();
      }
      return created;
    }
    const r = applyFields(current.obj, this.ownersOf(current), manager, cfg, opts.force === true);
    if (r.conflicts.length > 0) {
      const n = r.conflicts.length;
      const lines = r.conflicts.map((x) => `conflict with "${x.manager}": ${x.field}`);
      throw conflict(
        t.group,
        t.resource,
        name,
        `Apply failed with ${n} conflict${n === 1 ? "" : "s"}: ${lines.join("; ")}`,
        r.conflicts.map((x) => ({
          reason: "FieldManagerConflict",
          message: `conflict with "${x.manager}"`,
          field: x.field,
        })),
      );
    }
    const merged = r.object as KubeObject;
    return this.commit(t, current, merged, opts, r.owners);
  }

  delete(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    opts: { dryRun?: boolean; preconditions?: { uid?: string; resourceVersion?: string } } = {},
  ): Stored {
    const current = this.getStored(t, namespace, name);
    const pre = opts.preconditions;
    if (pre?.uid !== undefined && pre.uid !== current.obj.metadata.uid) {
      throw conflict(
        t.group,
        t.resource,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.obj.metadata.uid}`,
      );
    }
    if (
      pre?.resourceVersion !== undefined &&
      pre.resourceVersion !== current.obj.metadata.resourceVersion
    ) {
      throw conflict(
        t.group,
        t.resource,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.obj.metadata.resourceVersion}`,
      );
    }
    if (opts.dryRun) return current;
    const finalizers = current.obj.metadata.finalizers;
    if (Array.isArray(finalizers) && finalizers.length > 0) {
      if (current.obj.metadata.deletionTimestamp !== undefined) return current;
      const next = clone(current.obj);
      next.metadata.deletionTimestamp = timestamp(this.options.now());
      next.metadata.resourceVersion = String(++this.rv);
      const c = this.collection(t);
      const s = this.put(c, next, current, current.owners, current.creator);
      this.emit({ type: "MODIFIED", rv: this.rv, collection: c, object: s, previous: current.obj });
      return s;
    }
    return this.remove(this.collection(t), current);
  }
}

function specChanged(a: KubeObject, b: KubeObject): boolean {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (k === "metadata" || k === "status" || k === "apiVersion" || k === "kind") continue;
    if (!deepEqual(a[k], b[k])) return true;
  }
  return false;
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv: t.rv, start: t.start })).toString(
    "base64url",
  );
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as Record<string, unknown>;
    if (typeof t.rv === "number" && typeof t.start === "string")
      return { rv: t.rv, start: t.start };
  } catch {
    // fall through to the error below
  }
  throw badRequest(`invalid continue token "${s}"`);
}
