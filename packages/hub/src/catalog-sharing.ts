// Keeps the hub's copy of agents' catalogs lean: one shared copy of every string and of
// every field that clusters report alike. Module state: the shared copies are process-wide,
// like `intern`'s, and bounded.
import { intern, logicalServiceKey } from "@isthmus/model";
import type { CatalogUpdate, LabelSet, ServicePort } from "@isthmus/proto";

/** Catalog key `namespace/name`, interned: the catalog keeps one per service and identity. */
export const catalogKey = (namespace: string, name: string) =>
  intern(logicalServiceKey(namespace, name));

/** Label values as one shared copy each (label keys are property names, shared already). */
function internValues(labels: Record<string, string>): Record<string, string> {
  for (const k of Object.keys(labels)) labels[k] = intern(labels[k]!);
  return labels;
}

const SHARED_MAX = 100_000;
const shared = new Map<string, unknown>();

/**
 * One shared copy of a decoded field whose content repeats: a service backed by 20 clusters
 * is reported 20 times with the same ports, labels, selector and service accounts, and its
 * pods' label sets with it. Keyed by the field's JSON (a message's JSON names its type and
 * every field, in the decoder's order, so equal keys mean equal content); `prepare` makes
 * the first copy lean. Nothing changes a catalog entry in place (an update replaces the
 * message), so entries can share these. Bounded as `intern` is.
 */
function share<T>(value: T, prepare: (v: T) => T): T {
  const k = JSON.stringify(value);
  const known = shared.get(k);
  if (known !== undefined) return known as T;
  if (shared.size >= SHARED_MAX) shared.clear();
  const lean = prepare(value);
  shared.set(k, lean);
  return lean;
}

const leanPorts = (ports: ServicePort[]) =>
  ports.map((p) => {
    p.name = intern(p.name);
    p.protocol = intern(p.protocol);
    p.targetPort = intern(p.targetPort);
    p.appProtocol = intern(p.appProtocol);
    return p;
  });

const leanLabelSets = (sets: LabelSet[]) =>
  sets.map((set) => {
    set.labels = internValues(set.labels);
    return set;
  });

/**
 * The catalog keeps its entries for as long as they are reported, so it keeps them lean:
 * decoded repeated fields keep the spare room they grew into (16 slots for one element), so
 * exact-size copies; one shared copy of each string (`intern`), since every cluster reports
 * the same namespaces, protocols, port names and label values; and one shared copy of the
 * ports, labels, selector, service accounts and label sets that clusters report alike
 * (`share`).
 */
export function compact(u: CatalogUpdate): void {
  for (const s of u.upsertedServices) {
    s.namespace = intern(s.namespace);
    s.name = intern(s.name);
    s.ports = share(s.ports, leanPorts);
    s.serviceAccounts = share(s.serviceAccounts, (accounts) => accounts.map(intern));
    s.labels = share(s.labels, internValues);
    s.selector = share(s.selector, internValues);
  }
  for (const i of u.upsertedIdentities) {
    i.namespace = intern(i.namespace);
    i.serviceAccount = intern(i.serviceAccount);
    i.labelSets = share(i.labelSets, leanLabelSets);
  }
}
