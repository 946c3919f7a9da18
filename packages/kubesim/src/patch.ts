import { clone, deepEqual, isPlainObject } from "./object.js";
import { badRequest, KubeSimError, statusFailure } from "./status.js";

/** RFC 7386 JSON merge patch. Returns a new value; inputs are not modified. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw badRequest(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function patchFailed(message: string): KubeSimError {
  return new KubeSimError(
    statusFailure(
      422,
      "Invalid",
      `the server rejected our request due to an error in our request: ${message}`,
    ),
  );
}

function resolveParent(
  doc: unknown,
  tokens: string[],
  op: string,
): { parent: unknown; key: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isPlainObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) {
      throw patchFailed(
        `${op} operation does not apply: doc is missing path: "/${tokens.join("/")}"`,
      );
    }
  }
  return { parent: cur, key: tokens[tokens.length - 1]! };
}

function getAt(doc: unknown, tokens: string[]): unknown {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isPlainObject(cur)) cur = Object.hasOwn(cur, t) ? cur[t] : undefined;
    else return undefined;
  }
  return cur;
}

function arrayIndex(arr: unknown[], key: string, forInsert: boolean, path: string): number {
  if (key === "-" && forInsert) return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(key)) throw patchFailed(`invalid array index "${key}" in "${path}"`);
  const i = Number(key);
  if (i > arr.length || (!forInsert && i === arr.length)) {
    throw patchFailed(`index out of range: ${i} in "${path}"`);
  }
  return i;
}

function removeAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  const { parent, key } = resolveParent(doc, tokens, "remove");
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, false, path);
    return parent.splice(i, 1)[0];
  }
  if (isPlainObject(parent) && Object.hasOwn(parent, key)) {
    const v = parent[key];
    delete parent[key];
    return v;
  }
  throw patchFailed(`remove operation does not apply: doc is missing key: ${path}`);
}

function addAt(doc: unknown, path: string, value: unknown, replace: boolean): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const { parent, key } = resolveParent(doc, tokens, replace ? "replace" : "add");
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, path);
    if (replace) parent[i] = clone(value);
    else parent.splice(i, 0, clone(value));
  } else if (isPlainObject(parent)) {
    if (replace && !Object.hasOwn(parent, key)) {
      throw patchFailed(`replace operation does not apply: doc is missing key: ${path}`);
    }
    parent[key] = clone(value);
  } else {
    throw patchFailed(
      `${replace ? "replace" : "add"} operation does not apply: doc is missing path: ${path}`,
    );
  }
  return doc;
}

/** RFC 6902 JSON patch: add, remove, replace, move, copy, test. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  let doc = clone(target);
  for (const raw of ops as JsonPatchOp[]) {
    if (!isPlainObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw badRequest("invalid JSON patch operation: op and path are required");
    }
    switch (raw.op) {
      case "add":
        doc = addAt(doc, raw.path, raw.value, false);
        break;
      case "replace":
        doc = addAt(doc, raw.path, raw.value, true);
        break;
      case "remove":
        removeAt(doc, raw.path);
        break;
      case "move": {
        const v = removeAt(doc, raw.from ?? "");
        doc = addAt(doc, raw.path, v, false);
        break;
      }
      case "copy": {
        const v = getAt(doc, parsePointer(raw.from ?? ""));
        if (v === undefined)
          throw patchFailed(`copy operation does not apply: doc is missing from path: ${raw.from}`);
        doc = addAt(doc, raw.path, v, false);
        break;
      }
      case "test": {
        const v = getAt(doc, parsePointer(raw.path));
        if (!deepEqual(v, raw.value))
          throw patchFailed(`testing value ${raw.path} failed: test failed`);
        break;
      }
      default:
        throw badRequest(`unexpected JSON patch operation "${raw.op}"`);
    }
  }
  return doc;
}

/**
 * Merge keys of the associative lists in the core types served, by path (list elements as
 * `[]`). Lists not named here are replaced as a whole, as the real server does for lists
 * without a patch strategy. `""` marks a list of scalars merged as a set.
 */
const mergeKeys: Record<string, string> = {
  "metadata.ownerReferences": "uid",
  "metadata.finalizers": "",
  "spec.containers": "name",
  "spec.initContainers": "name",
  "spec.ephemeralContainers": "name",
  "spec.volumes": "name",
  "spec.imagePullSecrets": "name",
  "spec.containers[].env": "name",
  "spec.initContainers[].env": "name",
  "spec.containers[].ports": "containerPort",
  "spec.initContainers[].ports": "containerPort",
  "spec.containers[].volumeMounts": "mountPath",
  "spec.initContainers[].volumeMounts": "mountPath",
  "spec.ports": "port",
  "spec.finalizers": "",
  "status.conditions": "type",
  "status.addresses": "type",
  secrets: "name",
  imagePullSecrets: "name",
};

function smpMap(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
  path: string,
): Record<string, unknown> | undefined {
  if (patch.$patch === "delete") return undefined;
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  let out: Record<string, unknown> = { ...target };
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys" || k.startsWith("$setElementOrder/")) continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const field = k.slice("$deleteFromPrimitiveList/".length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v))
        out[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    const sub = path === "" ? k : `${path}.${k}`;
    if (v === null) {
      delete out[k];
    } else if (isPlainObject(v)) {
      const merged = smpMap(
        isPlainObject(out[k]) ? (out[k] as Record<string, unknown>) : {},
        v,
        sub,
      );
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      out[k] = smpList(Array.isArray(out[k]) ? (out[k] as unknown[]) : [], v, sub);
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(retain)) {
    const keep = new Set(retain as string[]);
    out = Object.fromEntries(Object.entries(out).filter(([k]) => keep.has(k)));
  }
  return out;
}

function smpList(target: unknown[], patch: unknown[], path: string): unknown[] {
  const key = mergeKeys[path];
  if (key === undefined) {
    return clone(patch.filter((e) => !(isPlainObject(e) && e.$patch !== undefined)));
  }
  if (key === "") {
    const out = [...target];
    for (const v of patch) if (!out.some((x) => deepEqual(x, v))) out.push(clone(v));
    return out;
  }
  if (patch.some((e) => isPlainObject(e) && e.$patch === "replace")) {
    return clone(patch.filter((e) => !(isPlainObject(e) && e.$patch === "replace")));
  }
  const out = [...target];
  for (const el of patch) {
    if (!isPlainObject(el)) continue;
    const idx = out.findIndex((x) => isPlainObject(x) && deepEqual(x[key], el[key]));
    if (el.$patch === "delete") {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) {
      const merged = smpMap(out[idx] as Record<string, unknown>, el, `${path}[]`);
      if (merged === undefined) out.splice(idx, 1);
      else out[idx] = merged;
    } else {
      out.push(smpMap({}, el, `${path}[]`));
    }
  }
  return out;
}

/**
 * Strategic merge patch for core types: merge keys for the associative lists listed above,
 * `$patch` (merge, replace, delete), `$retainKeys`, `$deleteFromPrimitiveList`;
 * `$setElementOrder` is accepted and ignored. Other lists are replaced (JSON merge patch).
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch))
    throw badRequest("strategic merge patch: the patch must be a JSON object");
  return smpMap(isPlainObject(target) ? target : {}, patch, "") ?? {};
}
