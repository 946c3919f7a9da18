// Lists: a page of a collection in key order, with the continue tokens of the real API server
// (opaque base64 JSON holding the list's resourceVersion and the last key returned).
import type { ResourceType } from "./resources.js";
import { badRequest, gone } from "./status.js";
import type { Collection, ListOptions, ListResult, Stored } from "./store-types.js";
import { keyOf } from "./store-types.js";

/**
 * One page of a list: the collection's objects in key order (namespace/name), from the
 * continue token's key on, matching the selector, at most `limit`; a continue token when more
 * remain. `rv` is the store's resourceVersion, `compactedRv` where its history starts.
 */
export function listPage(
  c: Collection,
  t: ResourceType,
  opts: ListOptions,
  rv: number,
  compactedRv: number,
): ListResult {
  let start = "";
  let listRv = rv;
  if (opts.continue !== undefined && opts.continue !== "") {
    const token = decodeContinue(opts.continue);
    if (token.rv < compactedRv) {
      throw gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
      );
    }
    start = token.start;
    listRv = token.rv;
  }
  let keys: string[];
  if (t.namespaced && opts.namespace !== undefined && opts.namespace !== "") {
    const ns = c.byNamespace.get(opts.namespace);
    let cached = c.sortedByNamespace.get(opts.namespace);
    if (cached === undefined && ns !== undefined) {
      cached = [...ns.keys()].sort().map((n) => `${opts.namespace}/${n}`);
      c.sortedByNamespace.set(opts.namespace, cached);
    }
    keys = cached ?? [];
  } else {
    c.sorted ??= [...c.byKey.keys()].sort();
    keys = c.sorted;
  }
  let i = 0;
  if (start !== "") {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keys[mid]! <= start) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : Number.POSITIVE_INFINITY;
  const items: Stored[] = [];
  const sel = opts.selector;
  for (; i < keys.length && items.length < limit; i++) {
    const s = c.byKey.get(keys[i]!)!;
    if (sel === undefined || sel.matches(s.obj)) items.push(s);
  }
  const result: ListResult = { items, resourceVersion: String(listRv) };
  if (items.length >= limit && i < keys.length) {
    const last = items[items.length - 1]!;
    result.continue = encodeContinue({
      rv: listRv,
      start: keyOf(last.obj.metadata.namespace, last.obj.metadata.name),
    });
    if (sel === undefined || sel.empty) result.remainingItemCount = keys.length - i;
  }
  return result;
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv: t.rv, start: t.start })).toString(
    "base64url",
  );
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as Record<string, unknown>;
    if (typeof t.rv === "number" && typeof t.start === "string")
      return { rv: t.rv, start: t.start };
  } catch {
    // fall through to the error below
  }
  throw badRequest(`invalid continue token "${s}"`);
}
