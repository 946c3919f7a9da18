// Durable hub state (clusters, tokens, policies) as versioned keys, etcd-style: every write
// is a transaction with optional version checks; the store's revision orders all writes.
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";

export interface StoreEntry {
  key: string;
  value: unknown;
  /** Store revision of the entry's last write; 0 never occurs for a stored entry. */
  version: number;
}

export type TxnOp =
  | { op: "put"; key: string; value: unknown; expectVersion?: number }
  | { op: "delete"; key: string; expectVersion?: number };

/** One write seen by a watch; `version` is the revision of the transaction that made it. */
export type StoreEvent =
  | { type: "put"; key: string; value: unknown; version: number }
  | { type: "delete"; key: string; version: number };

/** The writes of one transaction under the watched prefix, in the order of its ops. */
export interface StoreBatch {
  revision: number;
  events: StoreEvent[];
}

/** Entries under a prefix as of one store revision (read in one request). */
export interface StoreSnapshot {
  entries: StoreEntry[];
  revision: number;
}

export interface StoreWatch {
  /** Stops the watch; no batch is delivered after it resolves. */
  cancel(): Promise<void>;
}

/** A key-value store with transactions; the file store below and the etcd store implement it. */
export interface Store {
  /** Where the state lives, for errors: a file path or an endpoint. */
  readonly location: string;
  /** Whether other processes (hub replicas) use the same state: then the control-plane CA
   * lives in the store too (hub-ca-store.ts). */
  readonly shared?: boolean;
  list(prefix: string): Promise<StoreEntry[]>;
  /** Like list, with the revision the entries are at: watch from `revision + 1` to follow. */
  snapshot(prefix: string): Promise<StoreSnapshot>;
  get(key: string): Promise<StoreEntry | undefined>;
  /** Applies every op or none; resolves with the new revision once the write is durable.
   * `expectVersion` 0 means "must not exist". Throws StoreError code "conflict" or "not-found". */
  txn(ops: TxnOp[]): Promise<number>;
  /**
   * Delivers every write under `prefix` whose revision is `fromRevision` or later (also the
   * writes of other clients of the same store), one batch per transaction, in revision order,
   * each once. `onError` is called at most once, when the watch cannot go on (code
   * "compacted": the store no longer holds the history from `fromRevision`; read a snapshot
   * and watch again); no batch follows it. A store that cannot be reached is not an error:
   * the watch resumes where it was when the store is back.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onBatch: (batch: StoreBatch) => void,
    onError: (err: StoreError) => void,
  ): StoreWatch;
  close(): Promise<void>;
}

export type StoreErrorCode =
  | "conflict"
  | "not-found"
  | "corrupt"
  | "missing"
  | "io"
  /** The store's server (etcd) did not answer in time or refused the connection. */
  | "unavailable"
  /** A watch asked for history the store no longer holds. */
  | "compacted"
  /** A transaction beyond what the store takes at once (etcd: --max-txn-ops). */
  | "too-large";

export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    message: string,
    readonly code: StoreErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Whether `err` is a StoreError (by name, so that a store from another copy of this module counts). */
export function isStoreError(err: unknown): err is StoreError {
  return err instanceof Error && err.name === "StoreError" && "code" in err;
}

interface FileState {
  revision: number;
  entries: Record<string, { value: unknown; version: number }>;
}

/** The embedded store's file in the data dir. */
export const STATE_FILE = "state.json";

/** The temp file a write goes through before its rename: `.state.json.<pid>.tmp`. */
export const tempFileOf = (name: string, pid: number) => `.${name}.${pid}.tmp`;

function parseState(text: string, file: string): FileState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new StoreError(`${file}: corrupt store file: ${(err as Error).message}`, "corrupt", {
      cause: err,
    });
  }
  const state = data as Partial<FileState>;
  if (
    typeof state !== "object" ||
    state === null ||
    typeof state.revision !== "number" ||
    typeof state.entries !== "object" ||
    state.entries === null
  ) {
    throw new StoreError(`${file}: corrupt store file: expected {revision, entries}`, "corrupt");
  }
  for (const [key, entry] of Object.entries(state.entries)) {
    if (
      typeof entry !== "object" ||
      entry === null ||
      typeof entry.version !== "number" ||
      !("value" in entry)
    ) {
      throw new StoreError(
        `${file}: corrupt store file: entry "${key}" lacks value or version`,
        "corrupt",
      );
    }
  }
  return state as FileState;
}

export async function writeDurably(dir: string, name: string, content: string): Promise<void> {
  const target = join(dir, name);
  const temp = join(dir, tempFileOf(name, process.pid));
  const handle = await open(temp, "w", 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, target);
  const dirHandle = await open(dir, "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Transactions a file store keeps in memory for watches that start in the past. */
const WATCH_HISTORY = 1000;

/**
 * In-process watches of the file store: the batches of its last transactions (since it was
 * opened) for watches that start in the past, and live delivery to every watch after each
 * write. Only writes through this store object are seen: one hub process owns a data dir.
 */
interface Watcher {
  prefix: string;
  /** The revision of the next batch it may get. */
  next: number;
  deliver(batch: StoreBatch): void;
}

function createWatchers(currentRevision: () => number) {
  const history: StoreBatch[] = [];
  const watchers = new Set<Watcher>();
  const only = (batch: StoreBatch, prefix: string): StoreBatch | undefined => {
    const events = batch.events
      .filter((e) => e.key.startsWith(prefix))
      .map((e) => (e.type === "put" ? { ...e, value: structuredClone(e.value) } : { ...e }));
    return events.length === 0 ? undefined : { revision: batch.revision, events };
  };
  const send = (w: Watcher, batch: StoreBatch) => {
    if (batch.revision < w.next) return;
    w.next = batch.revision + 1;
    const mine = only(batch, w.prefix);
    // A watcher's own failure must not fail the write that every other watcher awaits.
    if (mine !== undefined) {
      try {
        w.deliver(mine);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
  return {
    written(batch: StoreBatch) {
      history.push(batch);
      if (history.length > WATCH_HISTORY) history.shift();
      for (const w of watchers) send(w, batch);
    },
    watch(
      prefix: string,
      fromRevision: number,
      onBatch: (batch: StoreBatch) => void,
      onError: (err: StoreError) => void,
    ): StoreWatch {
      const oldest = history[0]?.revision ?? currentRevision() + 1;
      const w: Watcher = { prefix, next: Math.max(fromRevision, 1), deliver: onBatch };
      if (fromRevision < oldest && fromRevision <= currentRevision()) {
        queueMicrotask(() =>
          onError(
            new StoreError(
              `watch from revision ${fromRevision}: compacted, the oldest revision kept is ${oldest}`,
              "compacted",
            ),
          ),
        );
        return { cancel: async () => {} };
      }
      let cancelled = false;
      // The past is delivered on the next microtask, then the watcher joins the live ones:
      // a write in between is in the history by then, so nothing is missed or sent twice.
      queueMicrotask(() => {
        if (cancelled) return;
        for (const batch of history) send(w, batch);
        watchers.add(w);
      });
      return {
        async cancel() {
          cancelled = true;
          watchers.delete(w);
        },
      };
    },
  };
}

export interface FileStoreOptions {
  /** Whether a missing state.json may be created empty (a new data dir, or `--init`). */
  create: boolean;
}

/**
 * The embedded store: the whole state in `<dataDir>/state.json`, rewritten with
 * write-temp, fsync, rename, fsync-directory on every transaction, so a `kill -9` at any
 * moment leaves either the old or the new state, and a resolved txn is on disk.
 * A corrupt file is an error naming the file; nothing is dropped silently. A missing file is
 * created (empty, at once, so that its absence later means it was lost) only when `create`.
 */
export async function openFileStore(dataDir: string, options: FileStoreOptions): Promise<Store> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, STATE_FILE);
  let state: FileState;
  try {
    state = parseState(await readFile(file, "utf8"), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      if (err instanceof StoreError) throw err;
      throw new StoreError(`${file}: cannot read store: ${(err as Error).message}`, "io", {
        cause: err,
      });
    }
    if (!options.create) throw new StoreError(`${file}: missing`, "missing");
    state = { revision: 0, entries: {} };
    await writeDurably(dataDir, STATE_FILE, JSON.stringify(state));
  }
  let queue: Promise<unknown> = Promise.resolve();
  const watchers = createWatchers(() => state.revision);

  const entry = (key: string): StoreEntry | undefined => {
    const e = state.entries[key];
    return e === undefined
      ? undefined
      : { key, value: structuredClone(e.value), version: e.version };
  };

  const list = (prefix: string) =>
    Object.keys(state.entries)
      .filter((k) => k.startsWith(prefix))
      .sort()
      .map((k) => entry(k)!);

  return {
    location: file,
    async list(prefix) {
      return list(prefix);
    },
    async snapshot(prefix) {
      return { entries: list(prefix), revision: state.revision };
    },
    async get(key) {
      return entry(key);
    },
    watch: watchers.watch,
    txn(ops) {
      const run = async () => {
        for (const op of ops) {
          const current = state.entries[op.key]?.version ?? 0;
          if (op.expectVersion !== undefined && op.expectVersion !== current) {
            throw new StoreError(
              current === 0
                ? `${op.key}: not found`
                : `${op.key}: version ${op.expectVersion} is stale, stored version is ${current}`,
              current === 0 ? "not-found" : "conflict",
            );
          }
        }
        const revision = state.revision + 1;
        const entries = { ...state.entries };
        for (const op of ops) {
          if (op.op === "put")
            entries[op.key] = { value: structuredClone(op.value), version: revision };
          else delete entries[op.key];
        }
        const next: FileState = { revision, entries };
        try {
          await writeDurably(dataDir, STATE_FILE, JSON.stringify(next));
        } catch (err) {
          throw new StoreError(`${file}: cannot write store: ${(err as Error).message}`, "io", {
            cause: err,
          });
        }
        state = next;
        watchers.written({
          revision,
          events: ops.map((op) =>
            op.op === "put"
              ? { type: "put", key: op.key, value: structuredClone(op.value), version: revision }
              : { type: "delete", key: op.key, version: revision },
          ),
        });
        return revision;
      };
      const result = queue.then(run, run);
      queue = result.catch(() => {});
      return result;
    },
    async close() {
      await queue;
    },
  };
}
