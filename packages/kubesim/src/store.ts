// Writes of the in-memory API server: create, update, patch, server-side apply and delete,
// with validation, server-side defaults, generations, CRDs becoming served types and field
// ownership, over the indexes and events of StoreIndex (store-index.ts).
import { randomBytes, randomUUID } from "node:crypto";
import { crdTypeChange, crdTypeOnCreate } from "./crd-types.js";
import type { FieldOwners } from "./field-owners.js";
import { applyFields, leafPaths, recordUpdate } from "./field-owners.js";
import type { KubeObject } from "./object.js";
import { clone, deepEqual, isPlainObject } from "./object.js";
import { jsonPatch, mergePatch, strategicMergePatch } from "./patch.js";
import type { ResourceType } from "./resources.js";
import { parseApiVersion } from "./resources.js";
import { applyServerDefaults, nameLabel, timestamp } from "./server-defaults.js";
import {
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  notFound,
  unsupportedMediaType,
} from "./status.js";
import { StoreIndex } from "./store-index.js";
import type { PatchType, Stored, WriteOptions } from "./store-types.js";
import { DEFAULT_MANAGER, keyOf } from "./store-types.js";
import { validateObject } from "./validation.js";

export type {
  Collection,
  EventType,
  ListOptions,
  ListResult,
  PatchType,
  Stored,
  StoreEvent,
  StoreOptions,
  WriteOptions,
} from "./store-types.js";

/** The in-memory object store: StoreIndex's collections, events and reads, and the writes. */
export class Store extends StoreIndex {
  private nextClusterIp = 10;

  /** The next free ClusterIP (10.96.x.y), in creation order. */
  private allocateClusterIp(): string {
    const n = this.nextClusterIp++;
    return `10.96.${(n >> 8) & 255}.${n & 255}`;
  }

  private check(t: ResourceType, obj: KubeObject): void {
    if (!this.options.validate) return;
    const causes = validateObject(t, obj, true);
    if (causes.length > 0) throw invalid(t.group, t.kind, obj.metadata.name ?? "", causes);
  }

  private hasGeneration(t: ResourceType): boolean {
    return t.custom || t.statusSubresource || t.group !== "";
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
    applyServerDefaults(t, obj, opts.trusted === true, () => this.allocateClusterIp());
    const crdType = crdTypeOnCreate(t, obj, this.types, () => timestamp(this.options.now()));
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
    const crdType = crdTypeChange(t, old, next);
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
