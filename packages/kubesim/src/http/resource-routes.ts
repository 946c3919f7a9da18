// Resource routes: `/api/v1/...` and `/apis/<group>/<version>/...` paths, parsed, then
// list, watch, create and delete-collection on a collection, and get, update, patch and
// delete on a named object (or its status subresource).
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  checkApplyFields,
  checkBodyFields,
  type FieldValidation,
  fieldValidationOf,
  type Gvk,
} from "../field-validation.js";
import type { KubeObject } from "../object.js";
import { isPlainObject } from "../object.js";
import type { ResourceType } from "../resources.js";
import { apiVersionOf, parseApiVersion } from "../resources.js";
import {
  badRequest,
  KubeSimError,
  methodNotAllowed,
  pathNotFound,
  statusFailure,
} from "../status.js";
import type { PatchType, Store, Stored, WriteOptions } from "../store.js";
import { columnDefinitions, table, tableRow } from "../table.js";
import {
  JSON_TYPE,
  listBody,
  parseBody,
  readBody,
  serialize,
  withVersion,
  writeJson,
} from "./encoding.js";
import { defaultManager, selectorsOf, truthy, wantsTable } from "./request.js";
import type { ServerContext } from "./server-context.js";
import { startWatch, type WatchFanOut } from "./watch.js";

/** A parsed resource path. */
export interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

/** One resource request, resolved to its type. */
interface ResourceRequest {
  ctx: ServerContext;
  req: IncomingMessage;
  res: ServerResponse;
  t: ResourceType;
  p: ResourcePath;
  q: URLSearchParams;
  namespace: string | undefined;
  dryRun: boolean;
}

/** Media types of PATCH bodies and the patch each means. */
const PATCH_TYPES: Record<string, PatchType> = {
  "application/merge-patch+json": "merge",
  "application/json-patch+json": "json",
  "application/strategic-merge-patch+json": "strategic",
  "application/apply-patch+yaml": "apply",
  "application/apply-patch+cbor": "apply",
};

/** Parses `/api/v1/...` and `/apis/g/v/...` resource paths. */
export function parseResourcePath(segments: string[], store: Store): ResourcePath | undefined {
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

/** Types whose DELETE answers with the object; the others answer with a Success Status. */
function returnsDeletedObject(t: ResourceType): boolean {
  return t.custom || ["Pod", "Service", "Namespace", "CustomResourceDefinition"].includes(t.kind);
}

/** Serves a request on a resource path. */
export async function handleResource(
  ctx: ServerContext,
  fanOut: WatchFanOut,
  req: IncomingMessage,
  res: ServerResponse,
  p: ResourcePath,
  q: URLSearchParams,
): Promise<void> {
  const t = ctx.store.typeFor(p.group, p.version, p.resource);
  if (t === undefined || (p.namespace !== undefined && !t.namespaced)) throw pathNotFound();
  if (p.subresource !== undefined && !(p.subresource === "status" && t.statusSubresource)) {
    throw pathNotFound();
  }
  const namespace = t.namespaced ? p.namespace : undefined;
  const dryRun = q.getAll("dryRun").includes("All");
  const r: ResourceRequest = { ctx, req, res, t, p, q, namespace, dryRun };
  const method = req.method ?? "GET";
  if (p.name !== undefined) return handleNamed(r, method, p.name);
  if (method === "GET") {
    if (truthy(q.get("watch"))) return startWatch(fanOut, req, res, t, p.version, q, namespace);
    return list(r);
  }
  if (method === "POST") {
    const obj = normalizeBody(r, await readRequestBody(req));
    warnFields(r, checkBodyFields(obj, gvkOf(r), fieldValidationOf(q), "object"));
    const s = ctx.store.create(
      t,
      obj,
      writeOptions(r, q.get("fieldManager") ?? defaultManager(req)),
    );
    return sendObject(r, 201, s);
  }
  if (method === "DELETE") {
    const matching = ctx.store.list(t, { namespace, selector: selectorsOf(q, t) }).items;
    const deleted = matching.map((s) =>
      ctx.store.delete(t, s.obj.metadata.namespace, s.obj.metadata.name, { dryRun }),
    );
    const meta = { resourceVersion: String(ctx.store.rv) };
    writeJson(res, 200, listBody(t, p.version, meta, deleted));
    return;
  }
  throw methodNotAllowed(`the server does not allow this method on the requested resource`);
}

async function handleNamed(r: ResourceRequest, method: string, name: string): Promise<void> {
  const { ctx, req, t, q, namespace } = r;
  switch (method) {
    case "GET":
      return sendObject(r, 200, ctx.store.getStored(t, namespace, name));
    case "PUT": {
      const obj = normalizeBody(r, await readRequestBody(req));
      warnFields(r, checkBodyFields(obj, gvkOf(r), fieldValidationOf(q), "object"));
      const manager = q.get("fieldManager") ?? defaultManager(req);
      return sendObject(
        r,
        200,
        ctx.store.update(t, namespace, name, obj, writeOptions(r, manager)),
      );
    }
    case "PATCH":
      return patchNamed(r, name);
    case "DELETE":
      return deleteNamed(r, name);
    default:
      throw methodNotAllowed(`the server does not allow this method on the requested resource`);
  }
}

async function readRequestBody(req: IncomingMessage): Promise<unknown> {
  return parseBody(await readBody(req), req.headers["content-type"] ?? JSON_TYPE);
}

function writeOptions(r: ResourceRequest, manager: string | undefined): WriteOptions {
  const o: WriteOptions = { dryRun: r.dryRun };
  if (manager !== undefined) o.fieldManager = manager;
  if (r.p.subresource === "status") o.subresource = "status";
  if (truthy(r.q.get("force"))) o.force = true;
  return o;
}

function objectKey(namespace: string | undefined, name: string): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}

async function patchNamed(r: ResourceRequest, name: string): Promise<void> {
  const { ctx, req, t, p, q, namespace } = r;
  const ct = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
  const type = PATCH_TYPES[ct];
  if (type === undefined) {
    throw new KubeSimError(
      statusFailure(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ${Object.keys(PATCH_TYPES).slice(0, 4).join(", ")}`,
      ),
    );
  }
  const body = parseBody(await readBody(req), type === "apply" ? "yaml" : JSON_TYPE);
  checkPatchFields(r, type, body, name, fieldValidationOf(q));
  const manager = q.get("fieldManager") ?? (type === "apply" ? undefined : defaultManager(req));
  const existed = type === "apply" && ctx.store.collection(t).byKey.has(objectKey(namespace, name));
  const patchBody = type === "apply" ? applyBody(t, p.version, namespace, body) : body;
  const s = ctx.store.patch(t, namespace, name, type, patchBody, writeOptions(r, manager));
  return sendObject(r, type === "apply" && !existed ? 201 : 200, s);
}

/** The group, version and kind of the request's path. */
function gvkOf(r: ResourceRequest): Gvk {
  return { group: r.t.group, version: r.p.version, kind: r.t.kind };
}

/** Sends each dropped field's warning as the API server does: `Warning: 299 - "<text>"`. */
function warnFields(r: ResourceRequest, warnings: string[]): void {
  if (warnings.length === 0) return;
  r.res.setHeader(
    "Warning",
    warnings.map((w) => `299 - ${JSON.stringify(w)}`),
  );
}

/**
 * Field validation of a patch body: a server-side apply is refused whatever the directive; a
 * merge or strategic merge patch has the object's shape and is checked as a body. A JSON
 * patch's values are not checked (kubectl does not send them for apply, create or edit).
 */
function checkPatchFields(
  r: ResourceRequest,
  type: PatchType,
  body: unknown,
  name: string,
  directive: FieldValidation,
): void {
  if (!isPlainObject(body) || r.p.subresource === "status") return;
  if (type === "apply") checkApplyFields(body, gvkOf(r), { namespace: r.namespace, name });
  else if (type === "merge" || type === "strategic") {
    warnFields(r, checkBodyFields(body, gvkOf(r), directive, "patch"));
  }
}

/** An apply patch with the request's namespace and the requested version of its group. */
function applyBody(
  t: ResourceType,
  version: string,
  namespace: string | undefined,
  body: unknown,
): unknown {
  let patchBody = body;
  if (
    isPlainObject(body) &&
    t.namespaced &&
    namespace !== undefined &&
    isPlainObject(body.metadata) &&
    body.metadata.namespace === undefined
  ) {
    patchBody = { ...body, metadata: { ...body.metadata, namespace } };
  }
  if (isPlainObject(patchBody) && typeof patchBody.apiVersion === "string") {
    const parsed = parseApiVersion(patchBody.apiVersion);
    if (parsed.group === t.group && t.versions.includes(parsed.version)) {
      patchBody = { ...patchBody, apiVersion: apiVersionOf(t.group, version) };
    }
  }
  return patchBody;
}

async function deleteNamed(r: ResourceRequest, name: string): Promise<void> {
  const { ctx, req, res, t, namespace } = r;
  const body = parseBody(await readBody(req), JSON_TYPE);
  const opts: {
    dryRun?: boolean;
    preconditions?: { uid?: string; resourceVersion?: string };
  } = { dryRun: r.dryRun };
  if (isPlainObject(body) && isPlainObject(body.preconditions)) {
    opts.preconditions = body.preconditions as { uid?: string; resourceVersion?: string };
  }
  if (isPlainObject(body) && Array.isArray(body.dryRun) && body.dryRun.includes("All")) {
    opts.dryRun = true;
  }
  const s = ctx.store.delete(t, namespace, name, opts);
  const pending =
    s.obj.metadata.deletionTimestamp !== undefined &&
    ctx.store.collection(t).byKey.get(objectKey(namespace, name)) !== undefined;
  if (pending) return sendObject(r, 202, s);
  if (returnsDeletedObject(t)) return sendObject(r, 200, s);
  const success = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { name, group: t.group, kind: t.resource, uid: s.obj.metadata.uid },
  };
  return writeJson(res, 200, JSON.stringify(success));
}

function list(r: ResourceRequest): void {
  const { ctx, req, res, t, p, q, namespace } = r;
  const limitParam = q.get("limit");
  const result = ctx.store.list(t, {
    namespace,
    selector: selectorsOf(q, t),
    limit: limitParam === null ? undefined : Number(limitParam),
    continue: q.get("continue") ?? undefined,
  });
  const meta: Record<string, unknown> = { resourceVersion: result.resourceVersion };
  if (result.continue !== undefined) meta.continue = result.continue;
  if (result.remainingItemCount !== undefined) meta.remainingItemCount = result.remainingItemCount;
  if (wantsTable(req)) {
    const objs = result.items.map((s) => withVersion(s.obj, t, p.version));
    const includeObject = q.get("includeObject") ?? "Metadata";
    writeJson(res, 200, JSON.stringify(table(t, objs, meta, ctx.now(), includeObject)));
    return;
  }
  writeJson(res, 200, listBody(t, p.version, meta, result.items));
}

function sendObject(r: ResourceRequest, code: number, s: Stored): void {
  const { ctx, req, res, t, p } = r;
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
}

/** A create or update body checked against the path: kind, version and namespace. */
function normalizeBody(r: ResourceRequest, body: unknown): KubeObject {
  const { t, p, namespace } = r;
  if (!isPlainObject(body)) throw badRequest("the request body must be a JSON or YAML object");
  const obj = body as KubeObject;
  if (obj.apiVersion === undefined || obj.apiVersion === "") {
    obj.apiVersion = apiVersionOf(t.group, p.version);
  }
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
}
