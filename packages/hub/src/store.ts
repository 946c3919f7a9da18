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

/** A key-value store with transactions; the file store below and an etcd store implement it. */
export interface Store {
  /** Where the state lives, for errors: a file path or an endpoint. */
  readonly location: string;
  list(prefix: string): Promise<StoreEntry[]>;
  get(key: string): Promise<StoreEntry | undefined>;
  /** Applies every op or none; resolves with the new revision once the write is durable.
   * `expectVersion` 0 means "must not exist". Throws StoreError code "conflict" or "not-found". */
  txn(ops: TxnOp[]): Promise<number>;
  close(): Promise<void>;
}

export type StoreErrorCode = "conflict" | "not-found" | "corrupt" | "missing" | "io";

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

  const entry = (key: string): StoreEntry | undefined => {
    const e = state.entries[key];
    return e === undefined
      ? undefined
      : { key, value: structuredClone(e.value), version: e.version };
  };

  return {
    location: file,
    async list(prefix) {
      return Object.keys(state.entries)
        .filter((k) => k.startsWith(prefix))
        .sort()
        .map((k) => entry(k)!);
    },
    async get(key) {
      return entry(key);
    },
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
