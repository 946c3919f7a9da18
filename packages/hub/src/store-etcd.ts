// The Store on etcd v3, for hub replicas that share one state: keys under a prefix, an
// entry's version is its etcd mod revision, a transaction is one etcd Txn whose compares are
// the ops' expected versions, and watches follow etcd's revision order.

import { silentLogger } from "@isthmus/logging";
import {
  CompareResult,
  CompareTarget,
  type Etcd3,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type IWatchResponse,
  isRecoverableError,
} from "etcd3";
import { createEtcdClient, DEFAULT_ETCD_PREFIX, type EtcdStoreOptions } from "./etcd-client.js";
import {
  type Store,
  type StoreBatch,
  type StoreEntry,
  StoreError,
  type StoreEvent,
  type StoreWatch,
  type TxnOp,
} from "./store.js";

export { createEtcdClient, DEFAULT_ETCD_PREFIX, type EtcdStoreOptions } from "./etcd-client.js";

/** The store and the etcd client it uses (leases and elections share its connections). */
export interface EtcdStore extends Store {
  readonly client: Etcd3;
  readonly prefix: string;
}

/**
 * The revision at which a write whose version checks failed had in fact been applied: etcd3
 * retries a request whose answer was lost (a member stopped mid-call), and the retry then
 * finds the first attempt's result. Only when every put holds this write's bytes at one mod
 * revision and every deleted key is gone; else undefined (a real conflict).
 */
function appliedAlready(
  ops: TxnOp[],
  requests: IRequestOp[],
  stored: (IKeyValue | undefined)[],
): number | undefined {
  let revision: string | undefined;
  for (const [i, op] of ops.entries()) {
    const kv = stored[i];
    if (op.op === "delete") {
      if (kv !== undefined) return undefined;
      continue;
    }
    if (kv === undefined || !kv.value.equals(requests[i]!.request_put!.value!)) return undefined;
    if (revision !== undefined && kv.mod_revision !== revision) return undefined;
    revision = kv.mod_revision;
  }
  return revision === undefined ? undefined : Number(revision);
}

/** A write's keys for a message: the first three and how many more. */
function describe(ops: TxnOp[]): string {
  const keys = ops.slice(0, 3).map((o) => `"${o.key}"`);
  if (ops.length > 3) keys.push(`and ${ops.length - 3} more`);
  return `write ${keys.join(", ")}`;
}

/** The first key after every key that starts with `prefix` (etcd's range end). */
function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * Opens the store on etcd. The connection is lazy: an etcd that cannot be reached shows as a
 * StoreError "unavailable" on the first request, naming the endpoints.
 */
export function openEtcdStore(options: EtcdStoreOptions): EtcdStore {
  if (options.endpoints.length === 0) throw new Error("etcd store: no endpoints");
  const prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
  const timeout = options.requestTimeoutMs ?? 5000;
  const maxTxnOps = options.maxTxnOps ?? 128;
  const log = options.logger ?? silentLogger;
  const client = createEtcdClient(options);
  const location = `etcd ${options.endpoints.join(",")} (prefix ${prefix})`;
  const full = (key: string) => Buffer.from(prefix + key);
  const call = () => ({ deadline: Date.now() + timeout });
  // Requests under way, for close() to wait on.
  const pending = new Set<Promise<unknown>>();
  let closed = false;
  const track = <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(new StoreError(`${location}: ${what}: store closed`, "io"));
    const p = run();
    pending.add(p);
    const done = () => pending.delete(p);
    p.then(done, done);
    return p;
  };

  /** The StoreError for a failed etcd request. */
  const failed = (err: unknown, what: string): StoreError => {
    if (err instanceof StoreError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (/too many operations|request is too large/i.test(message)) {
      return new StoreError(
        `${location}: ${what}: etcd refused it (${message}): its --max-txn-ops and ` +
          "--max-request-bytes bound one transaction; write fewer entries at once",
        "too-large",
        { cause: err },
      );
    }
    const unreachable =
      (err instanceof Error && isRecoverableError(err)) ||
      /deadline|unavailable|timed out|no leader|circuit|connect/i.test(message);
    return new StoreError(
      unreachable
        ? `${location}: ${what}: etcd did not answer within ${timeout} ms (${message}); ` +
            "check that a majority of the etcd members is up and reachable" +
            // etcd may hold the proposal and commit it once a majority is back.
            (what.startsWith("write") ? " (the write may still be applied then)" : "")
        : `${location}: ${what}: ${message}`,
      unreachable ? "unavailable" : "io",
      { cause: err },
    );
  };

  const decode = (kv: IKeyValue): StoreEntry => {
    const key = kv.key.toString().slice(prefix.length);
    try {
      return { key, value: JSON.parse(kv.value.toString()), version: Number(kv.mod_revision) };
    } catch (err) {
      throw new StoreError(`${location}: entry "${key}": not JSON: ${String(err)}`, "corrupt");
    }
  };

  const range = (key: string, isPrefix: boolean) => {
    const what = `read ${isPrefix ? `prefix "${key}"` : `"${key}"`}`;
    return track(what, async () => {
      try {
        const k = full(key);
        return await client.kv.range(
          isPrefix ? { key: k, range_end: rangeEnd(k) } : { key: k },
          call(),
        );
      } catch (err) {
        throw failed(err, what);
      }
    });
  };

  const store: EtcdStore = {
    client,
    prefix,
    location,
    shared: true,
    async list(p) {
      return (await range(p, true)).kvs.map(decode);
    },
    async snapshot(p) {
      const res = await range(p, true);
      return { entries: res.kvs.map(decode), revision: Number(res.header.revision) };
    },
    async get(key) {
      const kv = (await range(key, false)).kvs[0];
      return kv === undefined ? undefined : decode(kv);
    },
    txn: (ops) => track(describe(ops), () => txn(ops)),
    watch: (p, from, onBatch, onError) => watch(p, from, onBatch, onError),
    async close() {
      closed = true;
      await Promise.allSettled(pending);
      client.close();
    },
  };

  async function txn(ops: TxnOp[]): Promise<number> {
    const compare: ICompare[] = [];
    const success: IRequestOp[] = [];
    const checked: TxnOp[] = [];
    for (const op of ops) {
      const key = full(op.key);
      if (op.expectVersion !== undefined) {
        checked.push(op);
        compare.push(
          op.expectVersion === 0
            ? { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }
            : {
                key,
                target: CompareTarget.Mod,
                result: CompareResult.Equal,
                mod_revision: op.expectVersion,
              },
        );
      }
      success.push(
        op.op === "put"
          ? { request_put: { key, value: Buffer.from(JSON.stringify(op.value)) } }
          : { request_delete_range: { key } },
      );
    }
    const what = describe(ops);
    // etcd bounds the operations of one transaction, nested ones included (--max-txn-ops):
    // a longer write cannot be atomic there, so it is refused before it is sent.
    if (ops.length > maxTxnOps) {
      throw new StoreError(
        `${location}: ${what}: ${ops.length} writes in one transaction, etcd takes ${maxTxnOps} ` +
          "(its --max-txn-ops; raise it on every member and set etcd.maxTxnOps to match)",
        "too-large",
      );
    }
    let res: Awaited<ReturnType<typeof client.kv.txn>>;
    try {
      // On a failed compare, read the checked keys in the same transaction to say which one.
      res = await client.kv.txn(
        {
          compare,
          success,
          failure: ops.map((o) => ({ request_range: { key: full(o.key) } })),
        },
        call(),
      );
    } catch (err) {
      throw failed(err, what);
    }
    if (res.succeeded) return Number(res.header.revision);
    const stored = res.responses.map((r) => r.response_range?.kvs[0]);
    const applied = appliedAlready(ops, success, stored);
    if (applied !== undefined) return applied;
    checked.forEach((op) => {
      const kv = stored[ops.indexOf(op)];
      const current = kv === undefined ? 0 : Number(kv.mod_revision);
      if (op.expectVersion === current) return;
      throw new StoreError(
        current === 0
          ? `${op.key}: not found`
          : `${op.key}: version ${op.expectVersion} is stale, stored version is ${current}`,
        current === 0 ? "not-found" : "conflict",
      );
    });
    // The read-back is atomic with the compares, so one of them shows the failure; this
    // line is only reached if etcd's answer is not what it documents.
    throw new StoreError(`${location}: ${what}: refused by a version check`, "conflict");
  }

  function watch(
    p: string,
    fromRevision: number,
    onBatch: (batch: StoreBatch) => void,
    onError: (err: StoreError) => void,
  ): StoreWatch {
    // The revision of the next batch to deliver. etcd3 resumes a broken watch from the
    // revision in the last response's header, which in a catch-up response is the store's
    // current revision rather than that of the last event: resuming from there would skip
    // writes. So the watch resumes from what was delivered, and drops what it already had.
    let next = Math.max(fromRevision, 1);
    let stopped = false;
    const watcher = client.watch().prefix(full(p)).startRevision(String(next)).watcher();
    // etcd3 emits the create request itself (typed as the outer IWatchRequest) right before
    // it sends it: the one place to set where the watch resumes.
    watcher.on("connecting", (request) => {
      (request as { start_revision?: string | number }).start_revision = String(next);
    });
    watcher.on("data", (res: IWatchResponse) => {
      if (stopped) return;
      for (const batch of batches(res)) {
        if (batch.revision < next) continue;
        next = batch.revision + 1;
        onBatch(batch);
      }
    });
    // etcd3 reconnects a broken watch by itself: say so, so that a watch that stays down
    // is seen in the log (the store's writes fail then too, naming etcd).
    let down = false;
    watcher.on("disconnected", (err: Error) => {
      if (stopped || down) return;
      down = true;
      log.warn("etcd watch disconnected, reconnecting", { prefix: p, next, err: err.message });
    });
    watcher.on("connected", () => {
      if (!down) return;
      down = false;
      log.info("etcd watch resumed", { prefix: p, next });
    });
    watcher.on("error", (err: Error) => {
      if (stopped) return;
      stopped = true;
      // etcd 3.4 cancels a watch from a compacted revision with an empty cancel reason
      // (the compact revision is in a field etcd3 does not pass on); newer ones say so.
      const compacted = /compacted|watcher canceled:\s*$/i.test(err.message);
      onError(
        compacted
          ? new StoreError(
              `${location}: watch from revision ${next}: compacted (etcd no longer holds it)`,
              "compacted",
              { cause: err },
            )
          : failed(err, `watch prefix "${p}"`),
      );
    });
    return {
      async cancel() {
        stopped = true;
        // etcd3 waits for etcd to confirm the cancel, which a paused or partitioned member
        // never does: wait at most one request's time (closing the client ends it anyway).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          watcher.cancel(),
          new Promise((resolve) => {
            timer = setTimeout(resolve, timeout);
          }),
        ]);
        clearTimeout(timer);
      },
    };
  }

  /** A watch response's events grouped by the transaction (revision) that wrote them. */
  function batches(res: IWatchResponse): StoreBatch[] {
    const out: StoreBatch[] = [];
    for (const e of res.events) {
      const version = Number(e.kv.mod_revision);
      const key = e.kv.key.toString().slice(prefix.length);
      let event: StoreEvent;
      if (String(e.type).toLowerCase() === "delete") event = { type: "delete", key, version };
      else {
        const text = e.kv.value.toString();
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch {
          // Not written by a hub: the reader's validation reports it, as it would from list.
          value = text;
        }
        event = { type: "put", key, value, version };
      }
      const last = out.at(-1);
      if (last?.revision === version) last.events.push(event);
      else out.push({ revision: version, events: [event] });
    }
    return out;
  }

  return store;
}
