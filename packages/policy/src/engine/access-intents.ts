// Access intents: from a destination's decisions, the principals it allows or denies per
// port (the AccessIntent that the agent renders as AuthorizationPolicies), the other
// clusters allowed to call it (its importers), and shared-principal warnings. A principal
// held by identities of several clusters (a shared trust domain) is decided for all of them
// at once: DENY wins.
import type { IdentityRecord } from "@isthmus/model";
import { trustDomainOf } from "@isthmus/model";
import { Decision, isEnforceableService, type Warning } from "@isthmus/proto";
import { addToGroup, buildAccess, NO_GROUPS, PrincipalGroups } from "../intent-builder.js";
import { type Batch, setIntent } from "./batch.js";
import {
  crossClusterAllowed,
  type DecisionMap,
  type Destination,
  defaultAllows,
  type EngineState,
  type IdentityState,
  NO_CLUSTERS,
  NO_WARNINGS,
  type SlotRules,
  sameClusterAllowed,
  serviceIntentNames,
  warning,
} from "./engine-state.js";

/** The principal lists of a destination and what they imply. */
interface PrincipalLists {
  allow: PrincipalGroups;
  deny: PrincipalGroups;
  allowedClusters: Set<string>;
  warnings: Warning[];
  /** No principal is shared between clusters: the lists depend only on the decisions. */
  shareable: boolean;
}

/** What the destinations sharing one decision map share within a batch. */
interface SharedDecisions {
  /** Clusters of the decided identities. */
  clusters: Set<string>;
  /** Principal lists by place (cluster or "*", and ports). */
  byPlace: Map<string, PrincipalLists>;
  /** The decided identities by principal, sorted once for all of them (large maps only). */
  byPrincipal?: IdentityState[];
}

/** Principal lists of one batch by decision map, then by place. */
export type PrincipalListsMemo = Map<DecisionMap, SharedDecisions>;

/** Decision maps at least this large are visited in principal order (see listDecided). */
const SORTED_VISIT = 16;

/** Lists being built for one destination. */
interface ListBuilder {
  d: Destination;
  allow: PrincipalGroups;
  deny: PrincipalGroups;
  allowedClusters: Set<string>;
  /** Principals decided across clusters: listed from all of their holders' decisions. */
  candidates: Set<string>;
  /** The port list of principals allowed (or denied) on every slot: empty. */
  everyPort: number[];
}

function holderAllows(
  state: EngineState,
  d: Destination,
  record: IdentityRecord,
  slot: number,
): boolean {
  const identity = state.identities.get(record.key);
  const rule = identity === undefined ? null : (d.decisions.get(identity)?.[slot] ?? null);
  return rule === null ? defaultAllows(state, record.clusterId === d.record.clusterId) : !rule.deny;
}

/** Ports of the slots an entry allows (or denies). */
function portsWhere(d: Destination, slots: SlotRules, byDefault: boolean, allows: boolean) {
  const out: number[] = [];
  for (let s = 0; s < slots.length; s++) {
    const r = slots[s]!;
    if ((r === null ? byDefault : !r.deny) === allows) out.push(d.ports[s]!);
  }
  return out;
}

/**
 * The decided identities of a destination into the lists; principals that may be shared
 * between clusters (or, with cross-cluster ALLOW, any) become candidates instead.
 */
function listDecided(
  state: EngineState,
  lists: ListBuilder,
  localTd: string,
  shared: SharedDecisions,
): void {
  const { catalog } = state;
  const { d } = lists;
  const localAllowed = sameClusterAllowed(state);
  const crossAllowed = crossClusterAllowed(state);
  // Without a trust domain of several clusters, no principal is shared and a remote
  // identity is never in the local trust domain.
  const sharing = catalog.sharedTrustDomains > 0;
  const visit = (slots: SlotRules, identity: IdentityState) => {
    const principal = identity.record.principal;
    const same = identity.record.clusterId === d.record.clusterId;
    if (
      crossAllowed ||
      (sharing &&
        (catalog.identitiesWithPrincipal(principal).length > 1 ||
          (!same && catalog.cluster(identity.record.clusterId)?.trustDomain === localTd)))
    ) {
      lists.candidates.add(principal);
      return;
    }
    // The common case: the principal names one identity, decided here, and it is in the
    // local trust domain exactly when it is in this cluster.
    // Most entries decide every slot alike: count first, list ports only when they differ.
    const byDefault = defaultAllows(state, same);
    let allows = 0;
    for (const r of slots) if (r === null ? byDefault : !r.deny) allows++;
    if (allows > 0 && !same) lists.allowedClusters.add(identity.record.clusterId);
    if (localAllowed && same) {
      if (allows < slots.length) {
        const ports = allows === 0 ? lists.everyPort : portsWhere(d, slots, byDefault, false);
        addToGroup(lists.deny, ports, principal);
      }
    } else if (allows > 0) {
      const ports =
        allows === slots.length ? lists.everyPort : portsWhere(d, slots, byDefault, true);
      addToGroup(lists.allow, ports, principal);
    }
  };
  // Large maps are visited in principal order, sorted once per batch for the destinations
  // that share them (the backers of a service): their groups' lists are then in order
  // already, where each backer sorted its own long list. forEach: a for-of over entries
  // allocates a pair per entry.
  if (d.decisions.size < SORTED_VISIT) d.decisions.forEach(visit);
  else {
    shared.byPrincipal ??= [...d.decisions.keys()].sort((a, b) =>
      a.record.principal < b.record.principal
        ? -1
        : a.record.principal > b.record.principal
          ? 1
          : 0,
    );
    for (const identity of shared.byPrincipal) visit(d.decisions.get(identity)!, identity);
  }
}

/** Principals the defaults decide for remote holders: every remote one, or the local domain's. */
function addDefaultCandidates(state: EngineState, lists: ListBuilder, localTd: string): void {
  const { catalog } = state;
  const clusterId = lists.d.record.clusterId;
  if (crossClusterAllowed(state)) {
    for (const id of catalog.allIdentities()) {
      if (id.clusterId !== clusterId) lists.candidates.add(id.principal);
    }
  } else if (sameClusterAllowed(state)) {
    for (const c of catalog.clustersWithTrustDomain(localTd)) {
      if (c === clusterId) continue;
      for (const id of catalog.identitiesIn(c).values()) lists.candidates.add(id.principal);
    }
  }
}

/** Candidate principals into the lists, decided over all of their holders (DENY wins). */
function listCandidates(state: EngineState, lists: ListBuilder, localTd: string): Warning[] {
  const { d } = lists;
  const svc = d.record.service;
  const warnings: Warning[] = [];
  const slotPorts = (slots: number[]) =>
    slots.length === d.slotCount ? [] : slots.map((s) => d.ports[s]!);
  for (const principal of lists.candidates) {
    const holders = state.catalog.identitiesWithPrincipal(principal);
    const allowSlots: number[] = [];
    const denySlots: number[] = [];
    let conflict = false;
    for (let s = 0; s < d.slotCount; s++) {
      let anyAllow = false;
      let anyDeny = false;
      for (const h of holders) {
        if (holderAllows(state, d, h, s)) anyAllow = true;
        else anyDeny = true;
      }
      if (anyDeny) denySlots.push(s);
      else allowSlots.push(s);
      if (anyAllow && anyDeny) conflict = true;
    }
    if (allowSlots.length > 0) {
      for (const h of holders) {
        if (h.clusterId !== d.record.clusterId) lists.allowedClusters.add(h.clusterId);
      }
    }
    if (sameClusterAllowed(state) && trustDomainOf(principal) === localTd) {
      if (denySlots.length > 0) addToGroup(lists.deny, slotPorts(denySlots), principal);
    } else if (allowSlots.length > 0) {
      addToGroup(lists.allow, slotPorts(allowSlots), principal);
    }
    if (conflict) {
      const clusters = [...new Set([...holders].map((h) => h.clusterId))].sort();
      warnings.push(
        warning(
          "shared-principal",
          `service ${svc.namespace}/${svc.name}: principal ${principal} is shared by clusters ${clusters.join(", ")} (trust domain ${trustDomainOf(principal)}) and denied for some of them; DENY wins for all (give each cluster its own trust domain)`,
        ),
      );
    }
  }
  return warnings;
}

/**
 * Principal lists, allowed clusters and shared-principal warnings of a destination from
 * its decisions. Shareable when no principal is shared between clusters: then they depend
 * only on the decisions, the destination's cluster and its ports.
 */
function principalListsOf(
  state: EngineState,
  d: Destination,
  localTd: string,
  shared: SharedDecisions,
): PrincipalLists {
  const lists: ListBuilder = {
    d,
    allow: new PrincipalGroups(),
    deny: new PrincipalGroups(),
    allowedClusters: new Set(),
    candidates: new Set(),
    everyPort: [],
  };
  listDecided(state, lists, localTd, shared);
  addDefaultCandidates(state, lists, localTd);
  const warnings = listCandidates(state, lists, localTd);
  return {
    allow: lists.allow,
    deny: lists.deny,
    allowedClusters: lists.allowedClusters,
    warnings,
    shareable: lists.candidates.size === 0,
  };
}

/** Whether two principal groups hold the same principals in the same order. */
function sameGroups(a: PrincipalGroups | null, b: PrincipalGroups): boolean {
  if (a === null || a.size !== b.size) return a === null && b.size === 0;
  for (const key of b.keys()) {
    const g = b.get(key)!;
    const h = a.get(key);
    if (h === undefined || h.principals.length !== g.principals.length) return false;
    for (let i = 0; i < g.principals.length; i++) {
      if (h.principals[i] !== g.principals[i]) return false;
    }
  }
  return true;
}

/** The principal lists of a destination, from the batch's memo when another has them. */
function memoizedLists(
  state: EngineState,
  d: Destination,
  localTd: string,
  memo: PrincipalListsMemo,
): PrincipalLists {
  // Destinations sharing decisions (and cluster and ports) share their principal lists.
  // When no decided identity is of the destination's cluster, and no other cluster is in
  // its trust domain, every identity is remote alike: the lists do not depend on the
  // cluster (the backers of a service in different clusters share them).
  let shared = memo.get(d.decisions);
  if (shared === undefined) {
    const clusters = new Set<string>();
    for (const identity of d.decisions.keys()) clusters.add(identity.record.clusterId);
    shared = { clusters, byPlace: new Map() };
    memo.set(d.decisions, shared);
  }
  const remoteOnly =
    !crossClusterAllowed(state) &&
    !shared.clusters.has(d.record.clusterId) &&
    state.catalog.clustersWithTrustDomain(localTd).size === 1;
  const memoKey = `${remoteOnly ? "*" : d.record.clusterId}|${d.ports.join(",")}`;
  let lists = shared.byPlace.get(memoKey);
  if (lists === undefined) {
    lists = principalListsOf(state, d, localTd, shared);
    if (lists.shareable) shared.byPlace.set(memoKey, lists);
  }
  return lists;
}

/** Rebuilds a destination's principal groups, allowed clusters and warnings. */
export function rebuildDestination(
  state: EngineState,
  d: Destination,
  memo: PrincipalListsMemo,
): void {
  const svc = d.record.service;
  const localTd = state.catalog.cluster(d.record.clusterId)!.trustDomain;
  d.enforceable = isEnforceableService(d.record.service);
  if (
    d.decisions.size === 0 &&
    !crossClusterAllowed(state) &&
    (!sameClusterAllowed(state) || state.catalog.clustersWithTrustDomain(localTd).size === 1)
  ) {
    // Nothing decided by a rule and no remote principal in the local trust domain.
    d.allowedClusters = NO_CLUSTERS;
    d.allowGroups = null;
    d.denyGroups = null;
    d.warnings = NO_WARNINGS;
    return;
  }
  const lists = memoizedLists(state, d, localTd, memo);
  const { allow, deny, allowedClusters } = lists;
  const warnings = [...lists.warnings];
  if (!d.enforceable && (d.decisions.size > 0 || allowedClusters.size > 0)) {
    warnings.unshift(
      svc.inMesh
        ? warning(
            "service-without-selector",
            `service ${svc.namespace}/${svc.name} has no pod selector: policy cannot be enforced on it and it is not exported`,
          )
        : warning(
            "service-not-in-mesh",
            `service ${svc.namespace}/${svc.name}: namespace ${svc.namespace} is not in the mesh: policy cannot be enforced on it and it is not exported (enable sidecar injection or ambient for the namespace)`,
          ),
    );
  }
  // Unchanged groups stay the same objects: their sorted rule lists and hashes are kept.
  if (!sameGroups(d.allowGroups, allow)) d.allowGroups = allow.size > 0 ? allow : null;
  if (!sameGroups(d.denyGroups, deny)) d.denyGroups = deny.size > 0 ? deny : null;
  d.warnings =
    warnings.length === 0
      ? NO_WARNINGS
      : warnings.sort((a, b) => (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
  d.allowedClusters = d.enforceable && allowedClusters.size > 0 ? allowedClusters : NO_CLUSTERS;
}

/**
 * Whether a destination is under access control: every enforceable one while a default
 * denies (the east-west gateway routes any `*.local` name, so an unnamed service is
 * reachable from other clusters and only authorization at the destination holds the default
 * DENY).
 */
export function accessPresent(state: EngineState, d: Destination): boolean {
  return (
    d.enforceable &&
    (d.exported ||
      d.decisions.size > 0 ||
      state.defaults.sameCluster === Decision.DENY ||
      state.defaults.crossCluster === Decision.DENY)
  );
}

/**
 * Whether a destination needs an AccessIntent of its own: under access control, and not
 * what its cluster's DefaultAccessIntent renders (no principal allowed or denied). Most
 * services are named by no rule: one intent per cluster instead of one per service is what
 * keeps the hub's memory per service small.
 */
export function accessExplicit(state: EngineState, d: Destination): boolean {
  if (!accessPresent(state, d)) return false;
  const defaulted =
    (d.allowGroups ?? NO_GROUPS).size === 0 &&
    (d.denyGroups ?? NO_GROUPS).size === 0 &&
    (state.defaults.sameCluster === Decision.DENY || state.defaults.crossCluster === Decision.DENY);
  return !defaulted;
}

/** Whether its cluster holds a destination's own access intent now. */
export function accessHeld(state: EngineState, d: Destination): boolean {
  const name = serviceIntentNames(state, d.record).access;
  return state.intentsByCluster.get(d.record.clusterId)?.has(name) ?? false;
}

/** Sets (or removes) a destination's own access intent from its principal groups. */
export function finalizeAccess(state: EngineState, batch: Batch, d: Destination): void {
  const name = serviceIntentNames(state, d.record).access;
  if (!accessExplicit(state, d)) {
    if (accessHeld(state, d)) setIntent(state, batch, d.record.clusterId, name, null);
    return;
  }
  const access = buildAccess(
    d.record,
    d.allowGroups ?? NO_GROUPS,
    d.denyGroups ?? NO_GROUPS,
    sameClusterAllowed(state),
  );
  setIntent(state, batch, d.record.clusterId, name, access);
}
