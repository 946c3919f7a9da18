// ConnectionPolicies in canonical form (sorted, deduplicated lists and maps), their
// evaluation order, field-by-field comparison, freezing and copying: what the engine needs
// to tell a changed policy from one given again.
import { create } from "@bufbuild/protobuf";
import {
  type ConnectionPolicy,
  ConnectionPolicySchema,
  type DestinationSelector,
  DestinationSelectorSchema,
  type SourceSelector,
  SourceSelectorSchema,
} from "@isthmus/proto";

function sortedUnique<T extends string | number>(values: readonly T[]): T[] {
  const out = [...new Set(values)];
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return out;
}

function sortedMap(map: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(map).sort()) out[k] = map[k]!;
  return out;
}

/**
 * The normal form of a policy: lists sorted and deduplicated, label maps in key order, and
 * duplicate selectors dropped (selectors keep their written order).
 */
export function normalizePolicy(p: ConnectionPolicy): ConnectionPolicy {
  const from: SourceSelector[] = [];
  const seenFrom = new Set<string>();
  for (const s of p.from) {
    const n = create(SourceSelectorSchema, {
      clusters: sortedUnique(s.clusters),
      clusterLabels: sortedMap(s.clusterLabels),
      namespaces: sortedUnique(s.namespaces),
      services: sortedUnique(s.services),
      workloadLabels: sortedMap(s.workloadLabels),
      serviceAccounts: sortedUnique(s.serviceAccounts),
    });
    const key = JSON.stringify([
      n.clusters,
      n.clusterLabels,
      n.namespaces,
      n.services,
      n.workloadLabels,
      n.serviceAccounts,
    ]);
    if (seenFrom.has(key)) continue;
    seenFrom.add(key);
    from.push(n);
  }
  const to: DestinationSelector[] = [];
  const seenTo = new Set<string>();
  for (const d of p.to) {
    const n = create(DestinationSelectorSchema, {
      clusters: sortedUnique(d.clusters),
      clusterLabels: sortedMap(d.clusterLabels),
      namespaces: sortedUnique(d.namespaces),
      services: sortedUnique(d.services),
      ports: sortedUnique(d.ports),
    });
    const key = JSON.stringify([n.clusters, n.clusterLabels, n.namespaces, n.services, n.ports]);
    if (seenTo.has(key)) continue;
    seenTo.add(key);
    to.push(n);
  }
  return create(ConnectionPolicySchema, {
    name: p.name,
    priority: p.priority,
    action: p.action,
    from,
    to,
    description: p.description,
    resourceVersion: p.resourceVersion,
    labels: sortedMap(p.labels),
  });
}

/** Evaluation order: by priority (lower first), then by name. */
export function comparePolicies(
  a: { priority: number; name: string },
  b: { priority: number; name: string },
): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A copy of the policies in evaluation order. */
export function sortPolicies(policies: readonly ConnectionPolicy[]): ConnectionPolicy[] {
  return [...policies].sort(comparePolicies);
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  // Counted, not listed: called for every policy of every setPolicies.
  let size = 0;
  for (const k in a) {
    if (a[k] !== b[k]) return false;
    size++;
  }
  for (const _ in b) size--;
  return size === 0;
}

/** Whether two policies are written the same (field by field, lists in order). */
export function samePolicy(a: ConnectionPolicy, b: ConnectionPolicy): boolean {
  if (
    a.name !== b.name ||
    a.priority !== b.priority ||
    a.action !== b.action ||
    a.description !== b.description ||
    a.resourceVersion !== b.resourceVersion ||
    !sameMap(a.labels, b.labels) ||
    a.from.length !== b.from.length ||
    a.to.length !== b.to.length
  ) {
    return false;
  }
  for (let i = 0; i < a.from.length; i++) {
    const x = a.from[i]!;
    const y = b.from[i]!;
    if (
      !sameList(x.clusters, y.clusters) ||
      !sameMap(x.clusterLabels, y.clusterLabels) ||
      !sameList(x.namespaces, y.namespaces) ||
      !sameList(x.services, y.services) ||
      !sameMap(x.workloadLabels, y.workloadLabels) ||
      !sameList(x.serviceAccounts, y.serviceAccounts)
    ) {
      return false;
    }
  }
  for (let i = 0; i < a.to.length; i++) {
    const x = a.to[i]!;
    const y = b.to[i]!;
    if (
      !sameList(x.clusters, y.clusters) ||
      !sameMap(x.clusterLabels, y.clusterLabels) ||
      !sameList(x.namespaces, y.namespaces) ||
      !sameList(x.services, y.services) ||
      !sameList(x.ports, y.ports)
    ) {
      return false;
    }
  }
  return true;
}

/**
 * Freezes a policy and everything in it, and returns it. A frozen policy cannot change, so
 * the engine keeps it as given and, when the same object comes again, knows it unchanged
 * without comparing it field by field (the hub's registry stores its policies frozen).
 */
export function freezePolicy(p: ConnectionPolicy): ConnectionPolicy {
  for (const selector of [...p.from, ...p.to]) freezeWithFields(selector);
  Object.freeze(p.from);
  Object.freeze(p.to);
  Object.freeze(p.labels);
  return Object.freeze(p);
}

/**
 * Whether a policy and everything in it are frozen (as freezePolicy leaves it). Every field
 * of a selector is checked, so a field added to the schema later cannot escape the check.
 */
export function isFrozenPolicy(p: ConnectionPolicy): boolean {
  return (
    Object.isFrozen(p) &&
    Object.isFrozen(p.from) &&
    Object.isFrozen(p.to) &&
    Object.isFrozen(p.labels) &&
    p.from.every(frozenWithFields) &&
    p.to.every(frozenWithFields)
  );
}

/** Freezes an object and the lists and maps in its fields (a selector's). */
function freezeWithFields(o: object): void {
  for (const v of Object.values(o)) if (typeof v === "object" && v !== null) Object.freeze(v);
  Object.freeze(o);
}

function frozenWithFields(o: object): boolean {
  return (
    Object.isFrozen(o) &&
    Object.values(o).every((v) => typeof v !== "object" || v === null || Object.isFrozen(v))
  );
}

/** A deep copy of a policy, so that later changes by the caller do not reach it. */
export function copyPolicy(p: ConnectionPolicy): ConnectionPolicy {
  return create(ConnectionPolicySchema, {
    name: p.name,
    priority: p.priority,
    action: p.action,
    description: p.description,
    resourceVersion: p.resourceVersion,
    labels: { ...p.labels },
    from: p.from.map((s) => ({
      clusters: [...s.clusters],
      clusterLabels: { ...s.clusterLabels },
      namespaces: [...s.namespaces],
      services: [...s.services],
      workloadLabels: { ...s.workloadLabels },
      serviceAccounts: [...s.serviceAccounts],
    })),
    to: p.to.map((d) => ({
      clusters: [...d.clusters],
      clusterLabels: { ...d.clusterLabels },
      namespaces: [...d.namespaces],
      services: [...d.services],
      ports: [...d.ports],
    })),
  });
}
