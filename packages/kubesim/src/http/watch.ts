// Watches: each open watch is a Watcher; store events fan out to the watchers whose
// collection, namespace and selectors they concern (encoded once per version and format),
// bookmarks go out on a timer and on request, and watches end on timeout, on a deleted CRD,
// on a client that stops reading, or on closeWatches.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ResourceType } from "../resources.js";
import { apiVersionOf, resourceKey } from "../resources.js";
import type { Selector } from "../selectors.js";
import { badRequest, isKubeSimError, type KubeSimError } from "../status.js";
import type { Collection, Stored, StoreEvent } from "../store.js";
import { table } from "../table.js";
import { eventLine, JSON_TYPE, serialize, withVersion } from "./encoding.js";
import { selectorsOf, truthy, wantsTable } from "./request.js";
import type { ServerContext } from "./server-context.js";

interface Watcher {
  collection: Collection;
  type: ResourceType;
  version: string;
  namespace: string | undefined;
  selector: Selector;
  table: string | undefined;
  bookmarks: boolean;
  res: ServerResponse;
  /** Event lines not yet written (see `queueLine`). */
  pending: Buffer[] | undefined;
  close(): void;
}

/** The open watches of one server and their write queue. */
export interface WatchFanOut {
  readonly ctx: ServerContext;
  readonly watchers: Set<Watcher>;
  /** Watchers with pending lines, written at the next turn of the event loop. */
  readonly flushQueue: Set<Watcher>;
  flushScheduled: boolean;
  /** Stops the bookmark timer and the store subscriptions. */
  stop: () => void;
}

/** Subscribes to the store's events and starts the bookmark timer. */
export function createWatchFanOut(ctx: ServerContext): WatchFanOut {
  const { store } = ctx;
  const fanOut: WatchFanOut = {
    ctx,
    watchers: new Set(),
    flushQueue: new Set(),
    flushScheduled: false,
    stop: () => {},
  };
  const unsubscribeEvents = store.subscribe((e) => fanOutEvent(fanOut, e));
  // Watches on a type whose CRD was deleted end, as on the real server.
  const unsubscribeTypes = store.onTypesChanged(() => {
    for (const w of [...fanOut.watchers]) {
      const live = store.collections.get(resourceKey(w.type.group, w.type.resource));
      if (live === undefined || live.byKey !== w.collection.byKey) w.close();
    }
  });
  const bookmarkTimer = setInterval(() => sendBookmarks(fanOut), ctx.bookmarkIntervalMs);
  bookmarkTimer.unref();
  fanOut.stop = () => {
    clearInterval(bookmarkTimer);
    unsubscribeEvents();
    unsubscribeTypes();
  };
  return fanOut;
}

/** Ends every open watch; returns how many there were. */
export function closeWatches(fanOut: WatchFanOut): number {
  const n = fanOut.watchers.size;
  for (const w of [...fanOut.watchers]) w.close();
  return n;
}

/** A bookmark to every watch that asked for them. */
export function sendBookmarks(fanOut: WatchFanOut): void {
  for (const w of fanOut.watchers) if (w.bookmarks) bookmark(fanOut, w);
}

// Event lines are written once per turn of the event loop, each watcher's lines of that
// turn in one chunk: the writes of one turn (an agent applies several objects at once, a
// seed loads many) cost one socket write per watcher instead of one per event. Order is
// kept: a bookmark or the end of a watch writes what is pending first.

function flushWatcher(fanOut: WatchFanOut, w: Watcher): void {
  const lines = w.pending;
  if (lines === undefined) return;
  w.pending = undefined;
  fanOut.flushQueue.delete(w);
  if (w.res.destroyed) return;
  w.res.write(lines.length === 1 ? lines[0]! : Buffer.concat(lines));
  // Like the real server's bounded watch channels: a watcher that stops reading is
  // dropped rather than buffered without limit; its client re-watches.
  if (w.res.writableLength > fanOut.ctx.watchBufferBytes) w.close();
}

function flushAll(fanOut: WatchFanOut): void {
  fanOut.flushScheduled = false;
  for (const w of fanOut.flushQueue) flushWatcher(fanOut, w);
}

function queueLine(fanOut: WatchFanOut, w: Watcher, line: Buffer): void {
  if (w.pending === undefined) w.pending = [line];
  else w.pending.push(line);
  fanOut.flushQueue.add(w);
  if (!fanOut.flushScheduled) {
    fanOut.flushScheduled = true;
    setImmediate(() => flushAll(fanOut));
  }
}

function bookmark(fanOut: WatchFanOut, w: Watcher, extra?: Record<string, string>): void {
  flushWatcher(fanOut, w);
  const metadata: Record<string, unknown> = { resourceVersion: String(fanOut.ctx.store.rv) };
  if (extra !== undefined) metadata.annotations = extra;
  const obj = { kind: w.type.kind, apiVersion: apiVersionOf(w.type.group, w.version), metadata };
  w.res.write(`${JSON.stringify({ type: "BOOKMARK", object: obj })}\n`);
}

/** One store event to every watcher it concerns, each line encoded once per format. */
function fanOutEvent(fanOut: WatchFanOut, e: StoreEvent): void {
  const cache = new Map<string, Buffer>();
  for (const w of fanOut.watchers) {
    if (w.collection.byKey !== e.collection.byKey) continue;
    const type = eventTypeFor(w, e);
    if (type === undefined) continue;
    const key = `${type}|${w.version}|${w.table ?? ""}`;
    let line = cache.get(key);
    if (line === undefined) {
      line = eventLine(type, encodeObject(fanOut.ctx, w.type, w.version, w.table, e.object));
      cache.set(key, line);
    }
    queueLine(fanOut, w, line);
  }
}

/** The object of an event line: the object, or a one-row Table in table mode. */
function encodeObject(
  ctx: ServerContext,
  t: ResourceType,
  version: string,
  tableMode: string | undefined,
  stored: Stored,
): Buffer | string {
  if (tableMode === undefined) return serialize(stored, t, version);
  return JSON.stringify(table(t, [withVersion(stored.obj, t, version)], {}, ctx.now(), tableMode));
}

/** The event type a watcher sees: selectors turn modifications into additions or deletions. */
function eventTypeFor(
  w: Pick<Watcher, "namespace" | "selector">,
  e: StoreEvent,
): string | undefined {
  const obj = e.object.obj;
  if (w.namespace !== undefined && obj.metadata.namespace !== w.namespace) return undefined;
  if (w.selector.empty) return e.type;
  const now = w.selector.matches(obj);
  if (e.type === "ADDED") return now ? "ADDED" : undefined;
  const before = e.previous !== undefined && w.selector.matches(e.previous);
  if (e.type === "DELETED") return before ? "DELETED" : undefined;
  if (before && now) return "MODIFIED";
  if (!before && now) return "ADDED";
  if (before && !now) return "DELETED";
  return undefined;
}

/** The events a watch starts with: the current objects, or those since a resource version. */
function initialEvents(
  ctx: ServerContext,
  t: ResourceType,
  collection: Collection,
  rvParam: string,
  filter: Pick<Watcher, "namespace" | "selector">,
): { type: string; stored: Stored }[] {
  const { namespace, selector } = filter;
  if (rvParam === "" || rvParam === "0") {
    return ctx.store
      .list(t, { namespace, selector })
      .items.map((stored) => ({ type: "ADDED", stored }));
  }
  const rv = Number(rvParam);
  if (!Number.isInteger(rv) || rv < 0) throw badRequest(`invalid resource version "${rvParam}"`);
  const initial: { type: string; stored: Stored }[] = [];
  for (const e of ctx.store.eventsSince(rv, collection)) {
    const type = eventTypeFor(filter, e);
    if (type !== undefined) initial.push({ type, stored: e.object });
  }
  return initial;
}

/** A watch request (`?watch=true`): the stream's head, initial events, then live events. */
export function startWatch(
  fanOut: WatchFanOut,
  req: IncomingMessage,
  res: ServerResponse,
  t: ResourceType,
  version: string,
  q: URLSearchParams,
  namespace: string | undefined,
): void {
  const { ctx } = fanOut;
  const selector = selectorsOf(q, t);
  const collection = ctx.store.collection(t);
  const tableMode = wantsTable(req) ? (q.get("includeObject") ?? "Metadata") : undefined;
  let initial: { type: string; stored: Stored }[] = [];
  let expired: KubeSimError | undefined;
  try {
    initial = initialEvents(ctx, t, collection, q.get("resourceVersion") ?? "", {
      namespace,
      selector,
    });
  } catch (err: unknown) {
    // A resource version compacted away: 410 Gone as a watch event, as the real server does.
    if (!isKubeSimError(err) || err.code !== 410) throw err;
    expired = err;
  }
  res.writeHead(200, {
    "Content-Type": JSON_TYPE,
    "Transfer-Encoding": "chunked",
    "Cache-Control": "no-cache",
  });
  res.socket?.setNoDelay(true);
  res.flushHeaders();
  if (expired !== undefined) {
    res.end(`${JSON.stringify({ type: "ERROR", object: expired.status })}\n`);
    return;
  }
  let closed = false;
  const w: Watcher = {
    collection,
    type: t,
    version,
    namespace,
    selector,
    table: tableMode,
    bookmarks: truthy(q.get("allowWatchBookmarks")),
    res,
    pending: undefined,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      fanOut.watchers.delete(w);
      flushWatcher(fanOut, w);
      res.end();
    },
  };
  for (const i of initial) {
    res.write(eventLine(i.type, encodeObject(ctx, t, version, tableMode, i.stored)));
  }
  if (w.bookmarks && truthy(q.get("sendInitialEvents"))) {
    bookmark(fanOut, w, { "k8s.io/initial-events-end": "true" });
  }
  const timeoutParam = Number(q.get("timeoutSeconds") ?? "");
  const timeout =
    Number.isFinite(timeoutParam) && timeoutParam > 0 ? timeoutParam : ctx.watchTimeoutSeconds;
  const timer = setTimeout(() => w.close(), timeout * 1000);
  timer.unref();
  fanOut.watchers.add(w);
  res.on("close", () => w.close());
}
