// The strings the catalog keys and indexes by (flat, interned where repeated): principals,
// trust domains, and service, identity and logical service keys.
import { DEFAULT_TRUST_DOMAIN } from "./catalog-types.js";

/** The Istio principal of a service account (a flat string: see `serviceKey`). */
export function principalOf(
  trustDomain: string,
  namespace: string,
  serviceAccount: string,
): string {
  return [trustDomain || DEFAULT_TRUST_DOMAIN, "ns", namespace, "sa", serviceAccount].join("/");
}

/** The trust domain part of a principal. */
export function trustDomainOf(principal: string): string {
  const at = principal.indexOf("/ns/");
  return at < 0 ? principal : principal.slice(0, at);
}

const INTERNED_MAX = 100_000;
const interned = new Map<string, string>();

/**
 * One shared copy of a string that repeats. A catalog repeats the same strings in every
 * cluster (`namespace/name` keys, label values, protocols, port names, namespaces), and each
 * decoded message carries its own copy. The pool holds up to 100k strings and starts over
 * when full: strings in use keep their copy, only later ones are not shared with them. Only
 * for strings that repeat: a string seen once costs a pool entry for nothing.
 */
export function intern(s: string): string {
  const known = interned.get(s);
  if (known !== undefined) return known;
  if (interned.size >= INTERNED_MAX) interned.clear();
  interned.set(s, s);
  return s;
}

/**
 * Catalog key of a service: `cluster/namespace/name`. The keys the catalog keeps are built
 * with `join`, which makes one flat string: a template literal or `+` whose result has 13
 * characters or more makes a rope (V8's cons string: 32 B per joint, holding on to its
 * pieces until it is flattened, by a hash for instance). The catalog keeps hundreds of
 * thousands of such keys, so a flat string roughly halves what each one costs.
 */
export function serviceKey(clusterId: string, namespace: string, name: string): string {
  return [clusterId, namespace, name].join("/");
}

/** Catalog key of a workload identity: `cluster/namespace/serviceAccount` (flat). */
export function identityKey(clusterId: string, namespace: string, serviceAccount: string): string {
  return [clusterId, namespace, serviceAccount].join("/");
}

/** Key of a logical service: `namespace/name` (flat). */
export function logicalServiceKey(namespace: string, name: string): string {
  return [namespace, name].join("/");
}
