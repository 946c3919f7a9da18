// Selectors that match nothing the hub knows: a cluster name or label no cluster has, a
// namespace, service or service account no cluster reports. Such a policy is valid (the
// object may come later) but is often a typo (`prod-euu`, `env: staging`), so apply and
// its dry run warn about each one.
import type { ConnectionPolicy } from "@isthmus/proto";
import { compileGlob } from "./glob.js";
import { type FieldPath, formatPath, isGlob } from "./policy-validate.js";

/**
 * What exists now: registered clusters and what their agents report. Without a catalog
 * (no agent has reported one yet) namespaces, services and service accounts are not
 * checked: every one would be named, and none would be a typo for sure.
 */
export interface KnownObjects {
  clusters: readonly { id: string; labels: Readonly<Record<string, string>> }[];
  catalog?: {
    namespaces: ReadonlySet<string>;
    services: ReadonlySet<string>;
    serviceAccounts: ReadonlySet<string>;
  };
}

/** One selector value that matches nothing. */
export interface SelectorWarning {
  policy: string;
  /** Document path, e.g. spec.from[0].clusters[1]. */
  path: string;
  message: string;
}

function matchesAny(pattern: string, names: Iterable<string>): boolean {
  if (!isGlob(pattern)) {
    for (const n of names) if (n === pattern) return true;
    return false;
  }
  const glob = compileGlob(pattern);
  for (const n of names) if (glob.test(n)) return true;
  return false;
}

type Selector = {
  clusters: string[];
  clusterLabels: Record<string, string>;
  namespaces: string[];
  services: string[];
  serviceAccounts?: string[];
};

function checkSelector(
  known: KnownObjects,
  s: Selector,
  path: FieldPath,
  warn: (path: FieldPath, message: string) => void,
): void {
  const clusterIds = known.clusters.map((c) => c.id);
  // Per field: what exists, and how to say that nothing matches (name or glob).
  const catalog = known.catalog;
  const names: [keyof Selector, Iterable<string>, string, string][] = [
    ["clusters", clusterIds, "no cluster is named", "matches no cluster"],
  ];
  if (catalog !== undefined) {
    names.push(
      [
        "namespaces",
        catalog.namespaces,
        "no cluster reports a namespace",
        "matches no namespace a cluster reports",
      ],
      [
        "services",
        catalog.services,
        "no cluster reports a service",
        "matches no service a cluster reports",
      ],
      [
        "serviceAccounts",
        catalog.serviceAccounts,
        "no cluster reports a service account",
        "matches no service account a cluster reports",
      ],
    );
  }
  for (const [field, existing, noName, noGlob] of names) {
    ((s[field] as string[] | undefined) ?? []).forEach((pattern, i) => {
      if (matchesAny(pattern, existing)) return;
      const quoted = JSON.stringify(pattern);
      warn([...path, field, i], isGlob(pattern) ? `${quoted} ${noGlob}` : `${noName} ${quoted}`);
    });
  }
  const labels = Object.entries(s.clusterLabels);
  let each = true;
  for (const [k, v] of labels) {
    if (known.clusters.some((c) => c.labels[k] === v)) continue;
    each = false;
    warn([...path, "clusterLabels", k], `no cluster has the label ${k}=${v}`);
  }
  if (each && labels.length > 1) {
    const all = known.clusters.some((c) => labels.every(([k, v]) => c.labels[k] === v));
    if (!all) {
      const text = labels.map(([k, v]) => `${k}=${v}`).join(", ");
      warn([...path, "clusterLabels"], `no cluster has all the labels ${text}`);
    }
  }
}

/** Every selector value of the policies that matches nothing known, in document order. */
export function selectorWarnings(
  policies: readonly ConnectionPolicy[],
  known: KnownObjects,
): SelectorWarning[] {
  const out: SelectorWarning[] = [];
  for (const p of policies) {
    const warn = (path: FieldPath, message: string) =>
      out.push({ policy: p.name, path: formatPath(path), message });
    p.from.forEach((s, i) => {
      checkSelector(known, s, ["spec", "from", i], warn);
    });
    p.to.forEach((d, i) => {
      checkSelector(known, d, ["spec", "to", i], warn);
    });
  }
  return out;
}
