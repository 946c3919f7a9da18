// Durable hub state on top of the Store: clusters (with bootstrap token hashes and the
// serials of their valid client certificates) and policies.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { freezePolicy, validatePolicy } from "@isthmus/policy";
import {
  type Cluster,
  ClusterSchema,
  type ConnectionPolicy,
  ConnectionPolicySchema,
} from "@isthmus/proto";
import { type Store, StoreError, type TxnOp } from "./store.js";

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
   * Reads every cluster and policy from the store again (with etcd a linearizable read, so it
   * holds every write acknowledged before it began) and replaces the maps' content: what a
   * replica does when it takes over, and after writes of other replicas. Says what changed.
   */
  reload(): Promise<RegistryChanges>;
}

export interface RegistryChanges {
  /** Clusters added, changed or removed. */
  clusters: string[];
  policies: boolean;
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

async function load(store: Store) {
  const clusters = new Map<string, ClusterRecord>();
  for (const e of await store.list(CLUSTERS)) {
    const id = e.key.slice(CLUSTERS.length);
    const record = decodeEntry(store, e.key, (): ClusterRecord => {
      const v = e.value;
      checkStoredCluster(v);
      const cluster = fromJson(ClusterSchema, v.cluster);
      if (cluster.id !== id) throw new Error(`cluster.id is "${cluster.id}", not "${id}"`);
      return {
        cluster: { ...cluster, resourceVersion: String(e.version) },
        tokenHash: v.tokenHash,
        tokenExpiresAt: v.tokenExpiresAt,
        certSerials: v.certSerials,
        trustDomain: v.trustDomain ?? "",
        version: e.version,
      };
    });
    clusters.set(id, record);
  }
  const policies = new Map<string, ConnectionPolicy>();
  for (const e of await store.list(POLICIES)) {
    const name = e.key.slice(POLICIES.length);
    const p = decodeEntry(store, e.key, () => {
      const policy = fromJson(ConnectionPolicySchema, e.value as JsonValue);
      if (policy.name !== name) throw new Error(`name is "${policy.name}", not "${name}"`);
      validatePolicy(policy);
      return policy;
    });
    policies.set(p.name, freezePolicy({ ...p, resourceVersion: String(e.version) }));
  }
  return { clusters, policies };
}

/** Replaces `target`'s content with `source`'s; returns the keys whose version changed. */
function replace<T>(
  target: Map<string, T>,
  source: Map<string, T>,
  version: (v: T) => string | number,
): string[] {
  const changed: string[] = [];
  for (const k of target.keys()) if (!source.has(k)) changed.push(k);
  for (const [k, v] of source) {
    const known = target.get(k);
    if (known === undefined || version(known) !== version(v)) changed.push(k);
  }
  target.clear();
  for (const [k, v] of source) target.set(k, v);
  return changed;
}

/** Loads the registry from the store; every write goes to the store before memory. */
export async function openRegistry(store: Store): Promise<Registry> {
  const { clusters, policies } = await load(store);

  return {
    clusters,
    policies,
    async reload() {
      const next = await load(store);
      const changedClusters = replace(clusters, next.clusters, (r) => r.version);
      const changedPolicies = replace(policies, next.policies, (p) => p.resourceVersion);
      return { clusters: changedClusters, policies: changedPolicies.length > 0 };
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
      const version = await store.txn([
        { op: "put", key: CLUSTERS + record.cluster.id, value, expectVersion },
      ]);
      const stored: ClusterRecord = {
        ...record,
        cluster: { ...record.cluster, resourceVersion: String(version) },
        version,
      };
      clusters.set(record.cluster.id, stored);
      return stored;
    },
    async deleteCluster(id, expectVersion) {
      await store.txn([
        expectVersion === undefined
          ? { op: "delete", key: CLUSTERS + id }
          : { op: "delete", key: CLUSTERS + id, expectVersion },
      ]);
      clusters.delete(id);
    },
    async writePolicies(puts, deletes, expect) {
      const ops: TxnOp[] = [];
      for (const p of puts) {
        const value = toJson(
          ConnectionPolicySchema,
          create(ConnectionPolicySchema, { ...p, resourceVersion: "" }),
        );
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
      // Frozen: never changed in place, so the engine knows an unchanged one by reference.
      for (const p of puts) {
        policies.set(p.name, freezePolicy({ ...p, resourceVersion: String(version) }));
      }
      for (const name of deletes) policies.delete(name);
    },
  };
}
