// Durable hub state on top of the Store: clusters (with bootstrap token hashes and the
// serials of their valid client certificates) and policies.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import { freezePolicy, validatePolicy } from "@isthmus/policy";
import {
  type Cluster,
  ClusterSchema,
  type ConnectionPolicy,
  ConnectionPolicySchema,
} from "@isthmus/proto";
import {
  type Store,
  type StoreBatch,
  StoreError,
  type StoreEvent,
  type StoreSnapshot,
  type StoreWatch,
  type TxnOp,
} from "./store.js";

export interface ClusterRecord {
  cluster: Cluster;
  /** sha256 of the one-time bootstrap token, hex; empty once used. */
  tokenHash: string;
  tokenExpiresAt: number;
  /** Serial numbers of the client certificates currently valid for this cluster. */
  certSerials: string[];
  /** Trust domain the agent reported first since it enrolled, when the cluster has no
   * configured one (Cluster.trustDomain); absent or empty until then. */
  trustDomain?: string;
  version: number;
}

interface StoredCluster {
  cluster: JsonValue;
  tokenHash: string;
  tokenExpiresAt: number;
  certSerials: string[];
  /** Absent in records written before trust domains were recorded. */
  trustDomain?: string;
}

const CLUSTERS = "clusters/";
const POLICIES = "policies/";

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Compares a presented token with a stored hash in constant time. */
export function tokenMatches(token: string, storedHash: string): boolean {
  if (storedHash === "") return false;
  const a = Buffer.from(hashToken(token), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** What changed in the registry: by a write of this hub or, through the store's watch, of
 * another replica. `previous` and `current` are undefined for a cluster created or deleted. */
export interface RegistryChange {
  policies: boolean;
  clusters: { id: string; previous?: ClusterRecord; current?: ClusterRecord }[];
}

export interface Registry {
  clusters: Map<string, ClusterRecord>;
  policies: Map<string, ConnectionPolicy>;
  putCluster(record: Omit<ClusterRecord, "version">, expectVersion: number): Promise<ClusterRecord>;
  deleteCluster(id: string, expectVersion?: number): Promise<void>;
  /** Writes a batch of policies (puts and deletes) atomically, with version checks. */
  writePolicies(
    puts: ConnectionPolicy[],
    deletes: string[],
    expect: Map<string, number>,
  ): Promise<void>;
  /**
   * Follows the store from the revision it was loaded at: every write (this hub's, applied
   * when its txn resolves or when the watch brings it, whichever comes first, and other
   * replicas') reaches the maps once, then `onChange`, once per transaction.
   */
  follow(onChange: (change: RegistryChange) => void): void;
  /**
   * Reads the whole store (with etcd a linearizable read: it holds every write acknowledged
   * before it began, whichever replica took it) and applies what the watch has not brought
   * yet; the watch then skips what this read covered. A replica taking over calls it before
   * it serves, so that it never pushes from state older than an acknowledged write.
   */
  catchUp(): Promise<void>;
  /** Stops following the store. */
  close(): Promise<void>;
}

/** Throws unless `v` is what `putCluster` stores. */
function checkStoredCluster(v: unknown): asserts v is StoredCluster {
  const c = v as Partial<StoredCluster> | null;
  if (typeof c !== "object" || c === null) throw new Error("not an object");
  if (typeof c.tokenHash !== "string") throw new Error("tokenHash: must be a string");
  if (typeof c.tokenExpiresAt !== "number") throw new Error("tokenExpiresAt: must be a number");
  if (!Array.isArray(c.certSerials) || !c.certSerials.every((s) => typeof s === "string"))
    throw new Error("certSerials: must be a list of strings");
  if (c.trustDomain !== undefined && typeof c.trustDomain !== "string")
    throw new Error("trustDomain: must be a string");
}

/**
 * Decodes one stored entry; any problem is a StoreError naming the store's location and the
 * key, so that a hand-edited or damaged entry can be found and fixed.
 */
function decodeEntry<T>(store: Store, key: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new StoreError(
      `${store.location}: entry "${key}": ${err instanceof Error ? err.message : String(err)}`,
      "corrupt",
      { cause: err },
    );
  }
}

function decodeCluster(store: Store, key: string, value: unknown, version: number) {
  const id = key.slice(CLUSTERS.length);
  return decodeEntry(store, key, (): ClusterRecord => {
    checkStoredCluster(value);
    const cluster = fromJson(ClusterSchema, value.cluster);
    if (cluster.id !== id) throw new Error(`cluster.id is "${cluster.id}", not "${id}"`);
    return {
      cluster: { ...cluster, resourceVersion: String(version) },
      tokenHash: value.tokenHash,
      tokenExpiresAt: value.tokenExpiresAt,
      certSerials: value.certSerials,
      trustDomain: value.trustDomain ?? "",
      version,
    };
  });
}

function decodePolicy(store: Store, key: string, value: unknown, version: number) {
  const name = key.slice(POLICIES.length);
  const p = decodeEntry(store, key, () => {
    const policy = fromJson(ConnectionPolicySchema, value as JsonValue);
    if (policy.name !== name) throw new Error(`name is "${policy.name}", not "${name}"`);
    validatePolicy(policy);
    return policy;
  });
  // Frozen: never changed in place, so the engine knows an unchanged one by reference.
  return freezePolicy({ ...p, resourceVersion: String(version) });
}

export interface RegistryOptions {
  logger?: Logger;
}

/** Loads the registry from the store; every write goes to the store before memory. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share the loaded clusters and policies, the change callback and the watch's revision; none is over 80 lines
export async function openRegistry(store: Store, options: RegistryOptions = {}): Promise<Registry> {
  const log = options.logger ?? silentLogger;
  const clusters = new Map<string, ClusterRecord>();
  const policies = new Map<string, ConnectionPolicy>();
  const loaded = await store.snapshot("");
  for (const e of loaded.entries) {
    if (e.key.startsWith(CLUSTERS))
      clusters.set(e.key.slice(CLUSTERS.length), decodeCluster(store, e.key, e.value, e.version));
    else if (e.key.startsWith(POLICIES))
      policies.set(e.key.slice(POLICIES.length), decodePolicy(store, e.key, e.value, e.version));
  }

  let onChange: ((change: RegistryChange) => void) | undefined;
  const emit = (change: RegistryChange) => {
    if (onChange === undefined || (!change.policies && change.clusters.length === 0)) return;
    try {
      onChange(change);
    } catch (err) {
      log.error("applying a registry change failed", { err: errorField(err) });
    }
  };
  /** The revision up to which the watch applied every write. */
  let watched = loaded.revision;
  /** Keys this hub wrote and applied before the watch brought them: key → revision. */
  const aheadOfWatch = new Map<string, number>();

  /** Applies one write to the maps; a damaged entry from another writer is logged, not fatal. */
  const apply = (event: StoreEvent, change: RegistryChange) => {
    try {
      if (event.key.startsWith(POLICIES)) {
        const name = event.key.slice(POLICIES.length);
        if (event.type === "put")
          policies.set(name, decodePolicy(store, event.key, event.value, event.version));
        else if (!policies.delete(name)) return;
        change.policies = true;
      } else if (event.key.startsWith(CLUSTERS)) {
        const id = event.key.slice(CLUSTERS.length);
        const previous = clusters.get(id);
        if (event.type === "put") {
          const current = decodeCluster(store, event.key, event.value, event.version);
          clusters.set(id, current);
          change.clusters.push({ id, current, ...(previous ? { previous } : {}) });
        } else if (previous !== undefined) {
          clusters.delete(id);
          change.clusters.push({ id, previous });
        }
      }
    } catch (err) {
      log.error("ignoring a stored entry that cannot be read", {
        key: event.key,
        err: errorField(err),
      });
    }
  };

  /** This hub's own write, applied when its txn resolved unless the watch was first. */
  const applyOwn = (revision: number, events: StoreEvent[]) => {
    if (revision <= watched) return;
    const change: RegistryChange = { policies: false, clusters: [] };
    for (const e of events) {
      aheadOfWatch.set(e.key, revision);
      apply(e, change);
    }
    emit(change);
  };

  const applyWatched = (batch: StoreBatch) => {
    // Already in the maps: catchUp read a snapshot at or after this revision.
    if (batch.revision <= watched) return;
    watched = batch.revision;
    const change: RegistryChange = { policies: false, clusters: [] };
    for (const e of batch.events) {
      const own = aheadOfWatch.get(e.key);
      if (own !== undefined) {
        if (e.version >= own) aheadOfWatch.delete(e.key);
        // This write or an older one: what the maps hold is newer or the same.
        if (e.version <= own) continue;
      }
      apply(e, change);
    }
    emit(change);
  };

  let watch: StoreWatch | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  const startWatch = () => {
    watch = store.watch("", watched + 1, applyWatched, (err) => {
      log.warn("store watch ended, reading the store again", { err: errorField(err) });
      resync(1000);
    });
  };
  /** Reads every entry again (the watch lost its history) and applies the differences. */
  const resync = (delayMs: number) => {
    if (closed) return;
    retry = setTimeout(async () => {
      let snap: StoreSnapshot;
      try {
        snap = await store.snapshot("");
      } catch (err) {
        log.warn("cannot read the store, retrying", { err: errorField(err) });
        resync(Math.min(delayMs * 2, 30_000));
        return;
      }
      if (closed) return;
      applySnapshot(snap);
      startWatch();
    }, delayMs);
    retry.unref();
  };
  /** Applies what differs between the maps and a snapshot of the whole store. */
  const applySnapshot = (snap: StoreSnapshot) => {
    const events: StoreEvent[] = snap.entries.map((e) => ({ type: "put", ...e }));
    const present = new Set(snap.entries.map((e) => e.key));
    for (const id of clusters.keys())
      if (!present.has(CLUSTERS + id))
        events.push({ type: "delete", key: CLUSTERS + id, version: snap.revision });
    for (const name of policies.keys())
      if (!present.has(POLICIES + name))
        events.push({ type: "delete", key: POLICIES + name, version: snap.revision });
    const unchanged = (e: StoreEvent) =>
      e.type === "put" &&
      (e.key.startsWith(CLUSTERS)
        ? clusters.get(e.key.slice(CLUSTERS.length))?.version === e.version
        : policies.get(e.key.slice(POLICIES.length))?.resourceVersion === String(e.version));
    aheadOfWatch.clear();
    applyWatched({ revision: snap.revision, events: events.filter((e) => !unchanged(e)) });
  };

  return {
    clusters,
    policies,
    follow(listener) {
      if (onChange !== undefined) throw new Error("registry: follow() called twice");
      onChange = listener;
      startWatch();
    },
    async catchUp() {
      applySnapshot(await store.snapshot(""));
    },
    async close() {
      closed = true;
      if (retry !== undefined) clearTimeout(retry);
      await watch?.cancel();
    },
    async putCluster(record, expectVersion) {
      const value: StoredCluster = {
        cluster: toJson(
          ClusterSchema,
          create(ClusterSchema, { ...record.cluster, resourceVersion: "" }),
        ),
        tokenHash: record.tokenHash,
        tokenExpiresAt: record.tokenExpiresAt,
        certSerials: record.certSerials,
        trustDomain: record.trustDomain ?? "",
      };
      const key = CLUSTERS + record.cluster.id;
      const version = await store.txn([{ op: "put", key, value, expectVersion }]);
      applyOwn(version, [{ type: "put", key, value, version }]);
      return {
        ...record,
        cluster: { ...record.cluster, resourceVersion: String(version) },
        version,
      };
    },
    async deleteCluster(id, expectVersion) {
      const key = CLUSTERS + id;
      const version = await store.txn([
        expectVersion === undefined ? { op: "delete", key } : { op: "delete", key, expectVersion },
      ]);
      applyOwn(version, [{ type: "delete", key, version }]);
    },
    async writePolicies(puts, deletes, expect) {
      const ops: TxnOp[] = [];
      const values = new Map<string, unknown>();
      for (const p of puts) {
        const value = toJson(
          ConnectionPolicySchema,
          create(ConnectionPolicySchema, { ...p, resourceVersion: "" }),
        );
        values.set(POLICIES + p.name, value);
        const v = expect.get(p.name);
        ops.push(
          v === undefined
            ? { op: "put", key: POLICIES + p.name, value }
            : { op: "put", key: POLICIES + p.name, value, expectVersion: v },
        );
      }
      for (const name of deletes) {
        const v = expect.get(name);
        ops.push(
          v === undefined
            ? { op: "delete", key: POLICIES + name }
            : { op: "delete", key: POLICIES + name, expectVersion: v },
        );
      }
      const version = await store.txn(ops);
      applyOwn(
        version,
        ops.map((op) =>
          op.op === "put"
            ? { type: "put", key: op.key, value: values.get(op.key), version }
            : { type: "delete", key: op.key, version },
        ),
      );
    },
  };
}
