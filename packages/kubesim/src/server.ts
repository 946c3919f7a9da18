import type { IncomingMessage, ServerResponse } from "node:http";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import {
  apiGroupDoc,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openApiGroupVersion,
  openApiRoot,
  serverVersion,
} from "./discovery.js";
import type { FailOptions, FaultEngine } from "./faults.js";
import type { KubeObject } from "./object.js";
import { isPlainObject } from "./object.js";
import { decodeProtobufObject } from "./protobuf.js";
import type { ResourceType } from "./resources.js";
import { apiVersionOf, parseApiVersion, resourceKey } from "./resources.js";
import type { Selector } from "./selectors.js";
import { both, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import type { Status } from "./status.js";
import {
  badRequest,
  isKubeSimError,
  KubeSimError,
  methodNotAllowed,
  pathNotFound,
  statusFailure,
} from "./status.js";
import type { Collection, PatchType, Store, Stored, StoreEvent, WriteOptions } from "./store.js";
import { columnDefinitions, table, tableRow } from "./table.js";

export interface ServerContext {
  store: Store;
  faults: FaultEngine;
  token: string | undefined;
  now: () => Date;
  serverAddress: () => string;
  watchTimeoutSeconds: number;
  bookmarkIntervalMs: number;
  /** A watch whose unsent output exceeds this many bytes is ended (a client not reading). */
  watchBufferBytes: number;
  /** Loads multi-document YAML into the store (admin `/kubesim/seed`). */
  seed: (yaml: string) => KubeObject[];
}

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

const json = "application/json";

function parseJsonOrYaml(text: string): unknown {
  if (text.trimStart().startsWith("{")) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // flow-style YAML such as `{a: b}`: not JSON
    }
  }
  return parseYaml(text) as unknown;
}

function writeJson(
  res: ServerResponse,
  code: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, {
    "Content-Type": json,
    "Content-Length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
    ...headers,
  });
  res.end(body);
}

function writeStatus(
  res: ServerResponse,
  status: Status,
  headers: Record<string, string> = {},
): void {
  writeJson(res, status.code, JSON.stringify(status), headers);
}

/** The request body (events rather than `for await`, whose async iterator costs more than
 * reading a small body). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new Error("the client closed the connection before the body"));
    });
  });
}

function parseBody(raw: Buffer, contentType: string): unknown {
  const decoded = contentType.includes("protobuf") ? decodeProtobufObject(raw) : undefined;
  if (decoded !== undefined) return decoded;
  if (contentType.includes("protobuf") || contentType.includes("cbor")) {
    throw new KubeSimError(
      statusFailure(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (kubesim does not decode ${contentType})`,
      ),
    );
  }
  const text = raw.toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    // JSON is YAML, and clients (client-node, kubectl) send apply patches as JSON: try the
    // JSON parser first, an order of magnitude faster than the YAML one.
    if (contentType.includes("yaml")) return parseJsonOrYaml(text);
    return JSON.parse(text) as unknown;
  } catch (err: unknown) {
    throw badRequest(
      `could not decode the request body as ${contentType.includes("yaml") ? "YAML" : "JSON"}: ${(err as Error).message}`,
    );
  }
}

/** Parses `/api/v1/...` and `/apis/g/v/...` resource paths. */
interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

function parseResourcePath(segments: string[], store: Store): ResourcePath | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === "api" && segments.length >= 3) {
    group = "";
    version = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === "apis" && segments.length >= 4) {
    group = segments[1]!;
    version = segments[2]!;
    rest = segments.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const candidate = store.typeFor(group, version, rest[2]!);
    if (candidate?.namespaced) {
      namespace = rest[1]!;
      rest = rest.slice(2);
    }
  }
  if (rest.length === 0 || rest.length > 3) return undefined;
  return { group, version, namespace, resource: rest[0]!, name: rest[1], subresource: rest[2] };
}

function wantsTable(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? "";
  return accept.split(",")[0]!.includes("as=Table");
}

function defaultManager(req: IncomingMessage): string {
  const ua = req.headers["user-agent"] ?? "unknown";
  return ua.split("/")[0]!.trim() || "unknown";
}

/** The fail options of an admin request body, ignoring unknown keys. */
function failOptions(args: Record<string, unknown>): FailOptions {
  const o: FailOptions = {};
  if (args.code === 500 || args.code === 503 || args.code === 429) o.code = args.code;
  else if (args.code !== undefined)
    throw badRequest(`fault fail: code must be 500, 503 or 429, got ${String(args.code)}`);
  if (typeof args.retryAfterSeconds === "number") o.retryAfterSeconds = args.retryAfterSeconds;
  if (typeof args.method === "string") o.method = args.method;
  if (typeof args.pathPrefix === "string") o.pathPrefix = args.pathPrefix;
  if (typeof args.watch === "boolean") o.watch = args.watch;
  return o;
}

/** Types whose DELETE answers with the object; the others answer with a Success Status. */
function returnsDeletedObject(t: ResourceType): boolean {
  return t.custom || ["Pod", "Service", "Namespace", "CustomResourceDefinition"].includes(t.kind);
}

function truthy(v: string | null): boolean {
  return v === "true" || v === "1";
}

/** The HTTP layer: discovery, REST, watch, admin endpoints; created once per simulated cluster. */
export function createHandler(ctx: ServerContext): {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  closeWatches: () => number;
  openWatches: () => number;
  sendBookmarks: () => void;
  shutdown: () => void;
} {
  const { store, faults } = ctx;
  const watchers = new Set<Watcher>();

  /** The object's JSON at a version; cached as bytes, so lists and fan-out copy, not encode. */
  const serialize = (s: Stored, t: ResourceType, version: string): Buffer => {
    const apiVersion = apiVersionOf(t.group, version);
    if (s.obj.apiVersion === apiVersion) {
      s.json ??= Buffer.from(JSON.stringify(s.obj));
      return s.json;
    }
    return Buffer.from(JSON.stringify({ ...s.obj, apiVersion }));
  };

  const listBody = (
    t: ResourceType,
    version: string,
    meta: Record<string, unknown>,
    items: Stored[],
  ): Buffer => {
    const head = JSON.stringify({
      kind: t.listKind,
      apiVersion: apiVersionOf(t.group, version),
      metadata: meta,
    });
    const parts: Buffer[] = [Buffer.from(`${head.slice(0, -1)},"items":[`)];
    const comma = Buffer.from(",");
    items.forEach((s, i) => {
      if (i > 0) parts.push(comma);
      parts.push(serialize(s, t, version));
    });
    parts.push(Buffer.from("]}"));
    return Buffer.concat(parts);
  };

  const eventLine = (type: string, object: Buffer | string): Buffer =>
    Buffer.concat([
      Buffer.from(`{"type":"${type}","object":`),
      typeof object === "string" ? Buffer.from(object) : object,
      Buffer.from("}\n"),
    ]);

  const withVersion = (obj: KubeObject, t: ResourceType, version: string): KubeObject => {
    const apiVersion = apiVersionOf(t.group, version);
    return obj.apiVersion === apiVersion ? obj : { ...obj, apiVersion };
  };

  // Event lines are written once per turn of the event loop, each watcher's lines of that
  // turn in one chunk: the writes of one turn (an agent applies several objects at once, a
  // seed loads many) cost one socket write per watcher instead of one per event. Order is
  // kept: a bookmark or the end of a watch writes what is pending first.
  const flushQueue = new Set<Watcher>();
  let flushScheduled = false;

  const flushWatcher = (w: Watcher): void => {
    const lines = w.pending;
    if (lines === undefined) return;
    w.pending = undefined;
    flushQueue.delete(w);
    if (w.res.destroyed) return;
    w.res.write(lines.length === 1 ? lines[0]! : Buffer.concat(lines));
    // Like the real server's bounded watch channels: a watcher that stops reading is
    // dropped rather than buffered without limit; its client re-watches.
    if (w.res.writableLength > ctx.watchBufferBytes) w.close();
  };

  const flushAll = (): void => {
    flushScheduled = false;
    for (const w of flushQueue) flushWatcher(w);
  };

  const queueLine = (w: Watcher, line: Buffer): void => {
    if (w.pending === undefined) w.pending = [line];
    else w.pending.push(line);
    flushQueue.add(w);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  };

  const bookmark = (w: Watcher, extra?: Record<string, string>): void => {
    flushWatcher(w);
    const metadata: Record<string, unknown> = { resourceVersion: String(store.rv) };
    if (extra !== undefined) metadata.annotations = extra;
    const obj = { kind: w.type.kind, apiVersion: apiVersionOf(w.type.group, w.version), metadata };
    w.res.write(`${JSON.stringify({ type: "BOOKMARK", object: obj })}\n`);
  };

  const onEvent = (e: StoreEvent): void => {
    const cache = new Map<string, Buffer>();
    for (const w of watchers) {
      if (w.collection.byKey !== e.collection.byKey) continue;
      const type = eventTypeFor(w, e);
      if (type === undefined) continue;
      const key = `${type}|${w.version}|${w.table ?? ""}`;
      let line = cache.get(key);
      if (line === undefined) {
        const object =
          w.table !== undefined
            ? JSON.stringify(
                table(
                  w.type,
                  [withVersion(e.object.obj, w.type, w.version)],
                  {},
                  ctx.now(),
                  w.table,
                ),
              )
            : serialize(e.object, w.type, w.version);
        line = eventLine(type, object);
        cache.set(key, line);
      }
      queueLine(w, line);
    }
  };

  const eventTypeFor = (w: Watcher, e: StoreEvent): string | undefined => {
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
  };

  const unsubscribeEvents = store.subscribe(onEvent);
  // Watches on a type whose CRD was deleted end, as on the real server.
  const unsubscribeTypes = store.onTypesChanged(() => {
    for (const w of [...watchers]) {
      const live = store.collections.get(resourceKey(w.type.group, w.type.resource));
      if (live === undefined || live.byKey !== w.collection.byKey) w.close();
    }
  });
  const unsubscribe = () => {
    unsubscribeEvents();
    unsubscribeTypes();
  };

  const bookmarkTimer = setInterval(() => {
    for (const w of watchers) if (w.bookmarks) bookmark(w);
  }, ctx.bookmarkIntervalMs);
  bookmarkTimer.unref();

  const closeWatches = (): number => {
    const n = watchers.size;
    for (const w of [...watchers]) w.close();
    return n;
  };

  // ---- resource handlers ------------------------------------------------------------------

  const selectorsOf = (q: URLSearchParams, t: ResourceType): Selector =>
    both(
      parseLabelSelector(q.get("labelSelector") ?? undefined),
      parseFieldSelector(q.get("fieldSelector") ?? undefined, t.kind),
    );

  const startWatch = (
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    p: ResourcePath,
    q: URLSearchParams,
    namespace: string | undefined,
  ): void => {
    const selector = selectorsOf(q, t);
    const rvParam = q.get("resourceVersion") ?? "";
    const collection = store.collection(t);
    const tableMode = wantsTable(req) ? (q.get("includeObject") ?? "Metadata") : undefined;
    let initial: { type: string; stored: Stored }[] = [];
    let expired: KubeSimError | undefined;
    if (rvParam === "" || rvParam === "0") {
      initial = store
        .list(t, { namespace, selector })
        .items.map((stored) => ({ type: "ADDED", stored }));
    } else {
      const rv = Number(rvParam);
      if (!Number.isInteger(rv) || rv < 0)
        throw badRequest(`invalid resource version "${rvParam}"`);
      try {
        const events = store.eventsSince(rv, collection);
        const w = { namespace, selector } as Watcher;
        for (const e of events) {
          const type = eventTypeFor(w, e);
          if (type !== undefined) initial.push({ type, stored: e.object });
        }
      } catch (err: unknown) {
        if (!isKubeSimError(err) || err.code !== 410) throw err;
        expired = err;
      }
    }
    res.writeHead(200, {
      "Content-Type": json,
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
      version: p.version,
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
        watchers.delete(w);
        flushWatcher(w);
        res.end();
      },
    };
    for (const i of initial) {
      const object =
        tableMode !== undefined
          ? JSON.stringify(
              table(t, [withVersion(i.stored.obj, t, p.version)], {}, ctx.now(), tableMode),
            )
          : serialize(i.stored, t, p.version);
      res.write(eventLine(i.type, object));
    }
    if (w.bookmarks && truthy(q.get("sendInitialEvents")))
      bookmark(w, { "k8s.io/initial-events-end": "true" });
    const timeoutParam = Number(q.get("timeoutSeconds") ?? "");
    const timeout =
      Number.isFinite(timeoutParam) && timeoutParam > 0 ? timeoutParam : ctx.watchTimeoutSeconds;
    const timer = setTimeout(() => w.close(), timeout * 1000);
    timer.unref();
    watchers.add(w);
    res.on("close", () => w.close());
  };

  const list = (
    req: IncomingMessage,
    res: ServerResponse,
    t: ResourceType,
    p: ResourcePath,
    q: URLSearchParams,
    namespace: string | undefined,
  ): void => {
    const limitParam = q.get("limit");
    const result = store.list(t, {
      namespace,
      selector: selectorsOf(q, t),
      limit: limitParam === null ? undefined : Number(limitParam),
      continue: q.get("continue") ?? undefined,
    });
    const meta: Record<string, unknown> = { resourceVersion: result.resourceVersion };
    if (result.continue !== undefined) meta.continue = result.continue;
    if (result.remainingItemCount !== undefined)
      meta.remainingItemCount = result.remainingItemCount;
    if (wantsTable(req)) {
      const objs = result.items.map((s) => withVersion(s.obj, t, p.version));
      writeJson(
        res,
        200,
        JSON.stringify(table(t, objs, meta, ctx.now(), q.get("includeObject") ?? "Metadata")),
      );
      return;
    }
    writeJson(res, 200, listBody(t, p.version, meta, result.items));
  };

  const sendObject = (
    req: IncomingMessage,
    res: ServerResponse,
    code: number,
    t: ResourceType,
    p: ResourcePath,
    s: Stored,
  ): void => {
    if (wantsTable(req)) {
      const obj = withVersion(s.obj, t, p.version);
      const body = {
        kind: "Table",
        apiVersion: "meta.k8s.io/v1",
        metadata: { resourceVersion: s.obj.metadata.resourceVersion },
        columnDefinitions: columnDefinitions(t),
        rows: [tableRow(t, obj, ctx.now(), "Metadata")],
      };
      writeJson(res, code, JSON.stringify(body));
      return;
    }
    writeJson(res, code, serialize(s, t, p.version));
  };

  const normalizeBody = (
    body: unknown,
    t: ResourceType,
    p: ResourcePath,
    namespace: string | undefined,
  ): KubeObject => {
    if (!isPlainObject(body)) throw badRequest("the request body must be a JSON or YAML object");
    const obj = body as KubeObject;
    if (obj.apiVersion === undefined || obj.apiVersion === "")
      obj.apiVersion = apiVersionOf(t.group, p.version);
    if (obj.kind === undefined || obj.kind === "") obj.kind = t.kind;
    const { group, version } = parseApiVersion(obj.apiVersion);
    if (group !== t.group || obj.kind !== t.kind || !t.versions.includes(version)) {
      throw badRequest(
        `the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersionOf(t.group, p.version)})`,
      );
    }
    obj.apiVersion = apiVersionOf(t.group, p.version);
    if (!isPlainObject(obj.metadata)) obj.metadata = {} as KubeObject["metadata"];
    if (t.namespaced) {
      if (
        obj.metadata.namespace !== undefined &&
        obj.metadata.namespace !== "" &&
        obj.metadata.namespace !== namespace
      ) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      if (namespace !== undefined) obj.metadata.namespace = namespace;
    }
    return obj;
  };

  const handleResource = async (
    req: IncomingMessage,
    res: ServerResponse,
    p: ResourcePath,
    q: URLSearchParams,
  ): Promise<void> => {
    const t = store.typeFor(p.group, p.version, p.resource);
    if (t === undefined || (p.namespace !== undefined && !t.namespaced)) throw pathNotFound();
    if (p.subresource !== undefined && !(p.subresource === "status" && t.statusSubresource))
      throw pathNotFound();
    const namespace = t.namespaced ? p.namespace : undefined;
    const method = req.method ?? "GET";
    const dryRun = q.getAll("dryRun").includes("All");
    const writeOpts = (manager: string | undefined): WriteOptions => {
      const o: WriteOptions = { dryRun };
      if (manager !== undefined) o.fieldManager = manager;
      if (p.subresource === "status") o.subresource = "status";
      if (truthy(q.get("force"))) o.force = true;
      return o;
    };
    if (p.name === undefined) {
      if (method === "GET") {
        if (truthy(q.get("watch"))) return startWatch(req, res, t, p, q, namespace);
        return list(req, res, t, p, q, namespace);
      }
      if (method === "POST") {
        const obj = normalizeBody(
          parseBody(await readBody(req), req.headers["content-type"] ?? json),
          t,
          p,
          namespace,
        );
        const s = store.create(t, obj, writeOpts(q.get("fieldManager") ?? defaultManager(req)));
        return sendObject(req, res, 201, t, p, s);
      }
      if (method === "DELETE") {
        const matching = store.list(t, { namespace, selector: selectorsOf(q, t) }).items;
        const deleted = matching.map((s) =>
          store.delete(t, s.obj.metadata.namespace, s.obj.metadata.name, { dryRun }),
        );
        writeJson(res, 200, listBody(t, p.version, { resourceVersion: String(store.rv) }, deleted));
        return;
      }
      throw methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
    const name = p.name;
    switch (method) {
      case "GET":
        return sendObject(req, res, 200, t, p, store.getStored(t, namespace, name));
      case "PUT": {
        const obj = normalizeBody(
          parseBody(await readBody(req), req.headers["content-type"] ?? json),
          t,
          p,
          namespace,
        );
        const s = store.update(
          t,
          namespace,
          name,
          obj,
          writeOpts(q.get("fieldManager") ?? defaultManager(req)),
        );
        return sendObject(req, res, 200, t, p, s);
      }
      case "PATCH": {
        const ct = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
        const types: Record<string, PatchType> = {
          "application/merge-patch+json": "merge",
          "application/json-patch+json": "json",
          "application/strategic-merge-patch+json": "strategic",
          "application/apply-patch+yaml": "apply",
          "application/apply-patch+cbor": "apply",
        };
        const type = types[ct];
        if (type === undefined) {
          throw new KubeSimError(
            statusFailure(
              415,
              "UnsupportedMediaType",
              `the body of the request was in an unknown format - accepted media types include: ${Object.keys(types).slice(0, 4).join(", ")}`,
            ),
          );
        }
        const body = parseBody(await readBody(req), type === "apply" ? "yaml" : json);
        const manager =
          q.get("fieldManager") ?? (type === "apply" ? undefined : defaultManager(req));
        const existed =
          type === "apply" &&
          store.collection(t).byKey.has(namespace === undefined ? name : `${namespace}/${name}`);
        let patchBody = body;
        if (
          type === "apply" &&
          isPlainObject(body) &&
          t.namespaced &&
          namespace !== undefined &&
          isPlainObject(body.metadata) &&
          body.metadata.namespace === undefined
        ) {
          patchBody = { ...body, metadata: { ...body.metadata, namespace } };
        }
        if (
          type === "apply" &&
          isPlainObject(patchBody) &&
          typeof patchBody.apiVersion === "string"
        ) {
          const { group, version } = parseApiVersion(patchBody.apiVersion);
          if (group === t.group && t.versions.includes(version))
            patchBody = { ...patchBody, apiVersion: apiVersionOf(t.group, p.version) };
        }
        const s = store.patch(t, namespace, name, type, patchBody, writeOpts(manager));
        return sendObject(req, res, type === "apply" && !existed ? 201 : 200, t, p, s);
      }
      case "DELETE": {
        const body = parseBody(await readBody(req), json);
        const opts: {
          dryRun?: boolean;
          preconditions?: { uid?: string; resourceVersion?: string };
        } = { dryRun };
        if (isPlainObject(body) && isPlainObject(body.preconditions))
          opts.preconditions = body.preconditions as { uid?: string; resourceVersion?: string };
        if (isPlainObject(body) && Array.isArray(body.dryRun) && body.dryRun.includes("All"))
          opts.dryRun = true;
        const s = store.delete(t, namespace, name, opts);
        const pending =
          s.obj.metadata.deletionTimestamp !== undefined &&
          store.collection(t).byKey.get(namespace === undefined ? name : `${namespace}/${name}`) !==
            undefined;
        if (pending) return sendObject(req, res, 202, t, p, s);
        if (returnsDeletedObject(t)) return sendObject(req, res, 200, t, p, s);
        const success = {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          details: { name, group: t.group, kind: t.resource, uid: s.obj.metadata.uid },
        };
        return writeJson(res, 200, JSON.stringify(success));
      }
      default:
        throw methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
  };

  // ---- admin ------------------------------------------------------------------------------

  const handleAdmin = async (
    req: IncomingMessage,
    res: ServerResponse,
    segments: string[],
  ): Promise<void> => {
    const method = req.method ?? "GET";
    const raw = method === "POST" ? await readBody(req) : Buffer.alloc(0);
    const text = raw.toString("utf8");
    const ok = (extra: Record<string, unknown> = {}) =>
      writeJson(res, 200, JSON.stringify({ ok: true, ...extra }));
    if (segments[1] === "seed" && method === "POST") {
      return ok({ loaded: ctx.seed(text).length });
    }
    const body = parseBody(raw, json);
    if (segments[1] !== "faults") throw pathNotFound();
    const action = segments[2];
    const args = isPlainObject(body) ? body : {};
    if (action === undefined) {
      if (method === "GET") return writeJson(res, 200, JSON.stringify(faults.state()));
      if (method === "DELETE") {
        faults.reset();
        return ok();
      }
    }
    if (method !== "POST") throw methodNotAllowed("admin faults take POST");
    switch (action) {
      case "close-watches":
        return ok({ closed: faults.closeWatches() });
      case "fail":
        faults.failNext(Number(args.count ?? 1), failOptions(args));
        return ok();
      case "latency":
        faults.setLatency(Number(args.ms ?? 0));
        return ok();
      case "compact":
        faults.compact();
        return ok({ resourceVersion: String(store.rv) });
      case "pause":
        faults.pause();
        return ok();
      case "resume":
        faults.resume();
        return ok();
      case "reset":
        faults.reset();
        return ok();
      default:
        throw pathNotFound();
    }
  };

  // ---- entry ------------------------------------------------------------------------------

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://kubesim");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const segments = path.split("/").filter((s) => s !== "");
    const q = url.searchParams;
    const method = req.method ?? "GET";
    const open = ["/healthz", "/livez", "/readyz", "/version"].includes(path);
    if (ctx.token !== undefined && !open && req.headers.authorization !== `Bearer ${ctx.token}`) {
      writeStatus(res, statusFailure(401, "Unauthorized", "Unauthorized"));
      return;
    }
    if (segments[0] === "kubesim") return handleAdmin(req, res, segments);
    await faults.gate();
    const failure = faults.takeFailure(method, path, truthy(q.get("watch")));
    if (failure !== undefined) {
      if (failure.code === 429) {
        const s = statusFailure(
          429,
          "TooManyRequests",
          "Too many requests, please try again later.",
          { retryAfterSeconds: failure.retryAfterSeconds },
        );
        writeStatus(res, s, { "Retry-After": String(failure.retryAfterSeconds) });
      } else if (failure.code === 503) {
        const s = statusFailure(
          503,
          "ServiceUnavailable",
          "the server is currently unable to handle the request",
          { retryAfterSeconds: failure.retryAfterSeconds },
        );
        writeStatus(res, s, { "Retry-After": String(failure.retryAfterSeconds) });
      } else {
        writeStatus(
          res,
          statusFailure(500, "InternalError", "Internal error occurred: kubesim: injected fault", {
            causes: [{ message: "kubesim: injected fault" }],
          }),
        );
      }
      return;
    }
    if (method === "GET") {
      switch (path) {
        case "/healthz":
        case "/livez":
        case "/readyz":
          res.writeHead(200, { "Content-Type": "text/plain" });
          res.end("ok");
          return;
        case "/version":
          return writeJson(res, 200, JSON.stringify(serverVersion));
        case "/api":
          return writeJson(res, 200, JSON.stringify(apiVersions(ctx.serverAddress())));
        case "/apis":
          return writeJson(res, 200, JSON.stringify(apiGroupList(store.types.values())));
        case "/openapi/v3":
          return writeJson(
            res,
            200,
            JSON.stringify(openApiRoot(store.types.values(), store.typesGeneration)),
          );
      }
      if (path.startsWith("/openapi/v3/")) {
        const doc = openApiGroupVersion(path.slice("/openapi/v3/".length), store.types.values());
        if (doc === undefined) throw pathNotFound();
        return writeJson(res, 200, JSON.stringify(doc));
      }
      if (segments[0] === "api" && segments.length === 2) {
        const doc = apiResourceList("", segments[1]!, store.types.values());
        if (doc === undefined) throw pathNotFound();
        return writeJson(res, 200, JSON.stringify(doc));
      }
      if (segments[0] === "apis" && segments.length === 2) {
        const doc = apiGroupDoc(segments[1]!, store.types.values());
        if (doc === undefined) throw pathNotFound();
        return writeJson(res, 200, JSON.stringify(doc));
      }
      if (segments[0] === "apis" && segments.length === 3) {
        const doc = apiResourceList(segments[1]!, segments[2]!, store.types.values());
        if (doc === undefined) throw pathNotFound();
        return writeJson(res, 200, JSON.stringify(doc));
      }
    }
    const p = parseResourcePath(segments, store);
    if (p === undefined) throw pathNotFound();
    return handleResource(req, res, p, q);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      const e = KubeSimError.from(err);
      if (res.headersSent) {
        res.end();
        return;
      }
      writeStatus(res, e.status);
    });
  };

  return {
    handle,
    closeWatches,
    openWatches: () => watchers.size,
    sendBookmarks: () => {
      for (const w of watchers) if (w.bookmarks) bookmark(w);
    },
    shutdown: () => {
      clearInterval(bookmarkTimer);
      unsubscribe();
      closeWatches();
    },
  };
}

/** Parses multi-document YAML into objects, skipping empty documents and expanding `List`s. */
export function parseObjects(yaml: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    if (!isPlainObject(v)) throw new Error("invalid YAML: each document must be an object");
    if (typeof v.kind === "string" && v.kind.endsWith("List") && Array.isArray(v.items)) {
      out.push(...(v.items as KubeObject[]));
    } else {
      out.push(v as KubeObject);
    }
  }
  return out;
}
