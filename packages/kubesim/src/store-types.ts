// The store's data: stored objects with their cached JSON, collections with their indexes,
// events, and the options of reads and writes.
import type { FieldOwners } from "./field-owners.js";
import type { KubeObject } from "./object.js";
import type { ResourceType } from "./resources.js";
import type { Selector } from "./selectors.js";

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

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === "" ? name : `${namespace}/${name}`;
}

export const DEFAULT_MANAGER = "unknown";
