import { clone, deepEqual, isPlainObject } from "./object.js";

/**
 * Field ownership for server-side apply, simplified: a field is a leaf path of the object
 * where maps are walked key by key and lists and scalars are atomic (the real server also
 * walks associative lists item by item). Each manager owns a set of such paths.
 */
export type FieldOwners = Map<string, Set<string>>;

const SEP = "\u0000";

const ignoredMeta = new Set([
  "name",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "managedFields",
  "selfLink",
]);

/**
 * One string per distinct path, shared by the owner sets of every stored object: objects of
 * one kind have the same paths, and a path built by concatenation is a chain of V8 string
 * pieces (about 70 bytes per path and object, kept as long as the object is stored, and
 * copied by every young-generation collection until it is old). Bounded: past `POOL_MAX`
 * distinct paths (label or annotation keys of their own per object) a path is kept as built.
 */
const pool = new Map<string, string>();
const POOL_MAX = 50_000;

function shared(path: string): string {
  const known = pool.get(path);
  if (known !== undefined) return known;
  if (pool.size < POOL_MAX) pool.set(path, path);
  return path;
}

/** The leaf paths of an object (minus identity and server-set metadata). */
export function leafPaths(obj: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  // `inMeta`: the keys of `metadata` itself, where identity and server-set fields are skipped.
  const walk = (v: unknown, path: string, depth: number, inMeta: boolean): void => {
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      if (keys.length > 0) {
        for (const k of keys) {
          if (depth === 0 && (k === "apiVersion" || k === "kind")) continue;
          if (inMeta && ignoredMeta.has(k)) continue;
          walk(v[k], depth === 0 ? k : path + SEP + k, depth + 1, depth === 0 && k === "metadata");
        }
        return;
      }
    }
    if (depth > 0) out.add(shared(path));
  };
  walk(obj, "", 0, false);
  return out;
}

/** Renders an internal path as the server does in conflict messages: `.spec.hosts`. */
export function displayPath(p: string): string {
  return `.${p.split(SEP).join(".")}`;
}

export function valueAt(obj: unknown, p: string): unknown {
  let cur = obj;
  for (const k of p.split(SEP)) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function related(a: string, b: string): boolean {
  return a === b || a.startsWith(b + SEP) || b.startsWith(a + SEP);
}

function removeAt(obj: Record<string, unknown>, p: string): void {
  const keys = p.split(SEP);
  const chain: Record<string, unknown>[] = [obj];
  let cur: unknown = obj;
  for (const k of keys.slice(0, -1)) {
    if (!isPlainObject(cur)) return;
    cur = cur[k];
    if (!isPlainObject(cur)) return;
    chain.push(cur);
  }
  delete chain[chain.length - 1]![keys[keys.length - 1]!];
  // Drop maps left empty, but never the top-level sections themselves.
  for (let i = chain.length - 1; i >= 2; i--) {
    if (Object.keys(chain[i]!).length === 0) delete chain[i - 1]![keys[i - 1]!];
  }
}

/** Deep-merges `config` into `live`: maps merge, lists and scalars replace. */
function mergeApplied(live: unknown, config: unknown): unknown {
  if (!isPlainObject(config) || !isPlainObject(live)) return clone(config);
  const out: Record<string, unknown> = { ...live };
  for (const [k, v] of Object.entries(config)) {
    out[k] = v === null ? null : mergeApplied(out[k], v);
  }
  return out;
}

export interface ApplyConflict {
  manager: string;
  field: string;
}

export interface ApplyResult {
  object: Record<string, unknown>;
  owners: FieldOwners;
  conflicts: ApplyConflict[];
}

/**
 * Applies `config` as `manager` to `live` (the current object, or undefined on create).
 * Fields in `config` whose value differs from the live value and that another manager owns
 * are conflicts unless `force`, which moves ownership. Fields the manager applied before and
 * omits now are removed unless another manager also owns them.
 */
export function applyFields(
  live: Record<string, unknown> | undefined,
  owners: FieldOwners,
  manager: string,
  config: Record<string, unknown>,
  force: boolean,
): ApplyResult {
  const applied = leafPaths(config);
  const next: FieldOwners = new Map([...owners].map(([m, s]) => [m, new Set(s)]));
  const conflicts: ApplyConflict[] = [];
  for (const p of applied) {
    const applying = valueAt(config, p);
    const same = live !== undefined && deepEqual(valueAt(live, p), applying);
    // An empty map only asserts that the map exists; it does not claim the fields inside.
    const emptyMap = isPlainObject(applying) && Object.keys(applying).length === 0;
    for (const [m, set] of next) {
      if (m === manager) continue;
      for (const q of set) {
        if (!related(p, q)) continue;
        if (emptyMap && q.startsWith(p + SEP)) continue;
        if (same && p === q) continue; // shared ownership of an equal value
        if (force) set.delete(q);
        else conflicts.push({ manager: m, field: displayPath(q) });
      }
    }
  }
  if (conflicts.length > 0) return { object: live ?? config, owners, conflicts };
  let object = (live === undefined ? clone(config) : mergeApplied(live, config)) as Record<
    string,
    unknown
  >;
  const previous = next.get(manager) ?? new Set<string>();
  for (const p of previous) {
    if (applied.has(p)) continue;
    const ownedElsewhere = [...next].some(([m, s]) => m !== manager && s.has(p));
    if (!ownedElsewhere) {
      object = clone(object);
      removeAt(object, p);
    }
  }
  next.set(manager, applied);
  for (const [m, s] of next) if (s.size === 0) next.delete(m);
  return { object, owners: next, conflicts };
}

/**
 * Records a non-apply write (create, update, patch) by `manager`: it takes ownership of every
 * field it changed; fields removed by the write are dropped from all managers.
 */
export function recordUpdate(
  before: Record<string, unknown> | undefined,
  after: Record<string, unknown>,
  owners: FieldOwners,
  manager: string,
): FieldOwners {
  const afterPaths = leafPaths(after);
  const next: FieldOwners = new Map([...owners].map(([m, s]) => [m, new Set(s)]));
  const changed: string[] = [];
  for (const p of afterPaths) {
    if (before === undefined || !deepEqual(valueAt(before, p), valueAt(after, p))) changed.push(p);
  }
  for (const [, s] of next) {
    for (const q of s) {
      if (!afterPaths.has(q) || changed.some((p) => related(p, q))) s.delete(q);
    }
  }
  if (changed.length > 0) {
    const mine = next.get(manager) ?? new Set<string>();
    for (const p of changed) mine.add(p);
    next.set(manager, mine);
  }
  for (const [m, s] of next) if (s.size === 0) next.delete(m);
  return next;
}
