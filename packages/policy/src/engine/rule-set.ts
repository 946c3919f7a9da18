// The rule set: policies planned against the installed rules (kept, added, removed), the
// evaluation order, and rules resolved against the catalog, both ways: the destinations a
// rule's destinations select (with their port slots) and the identities its sources select
// (its members). Installing a plan marks the destinations whose rules changed for settle.
import type { ConnectionPolicy } from "@isthmus/proto";
import { copyPolicy, isFrozenPolicy, normalizePolicy, samePolicy } from "../policy-canonical.js";
import { checkUniqueName, duplicatePolicy, validatePolicy } from "../policy-validate.js";
import { destinationCandidates, sourceCandidates } from "../rule-candidates.js";
import {
  compareRules,
  compileRule,
  destinationSlots,
  ruleMatchesSource,
  servicePorts,
  subjectOf,
} from "../rule-matcher.js";
import type { Batch } from "./batch.js";
import {
  createDestination,
  type Destination,
  type EngineState,
  type IdentityState,
  NO_HITS,
  NO_RULES,
  type Rule,
  type RuleHit,
} from "./engine-state.js";

/** What a new policy set changes in the installed rules. */
export interface RulePlan {
  /** Per given policy: equal to the one installed under its name. */
  same: boolean[];
  /** The evaluation order after the plan. */
  next: Rule[];
  removed: Rule[];
  added: Rule[];
  /** Rules whose policy changed in what does not change matching (a description). */
  kept: Map<Rule, ConnectionPolicy>;
  /** Names installed now and absent from the given policies. */
  gone: string[];
}

/** Evaluation order of rule hits: their rules' order. */
export function hitOrder(a: RuleHit, b: RuleHit): number {
  return compareRules(a.rule, b.rule);
}

/** Plans a policy set against the installed rules; validates what changed (throws). */
export function planRules(state: EngineState, policies: readonly ConnectionPolicy[]): RulePlan {
  // Policies equal to what was last installed under their name keep their rule as is.
  // Installed names are marked on their rules (no map of every name per call).
  const plan = ++state.planCount;
  const fresh = new Map<string, number>();
  let seenInstalled = 0;
  const same = policies.map((p, i) => {
    const installed = state.rules.get(p.name);
    // A frozen policy given again as the same object cannot have changed.
    const last = installed?.given;
    const unchanged = last !== undefined && (last === p || samePolicy(last, p));
    if (!unchanged) validatePolicy(p);
    if (installed === undefined) checkUniqueName(fresh, p.name, i);
    else if (installed.seenInPlan === plan) throw duplicatePolicy(p.name, installed.seenAtIndex, i);
    else {
      installed.seenInPlan = plan;
      installed.seenAtIndex = i;
      seenInstalled++;
    }
    return unchanged;
  });
  const removed: Rule[] = [];
  const added: Rule[] = [];
  const kept = new Map<Rule, ConnectionPolicy>();
  for (let i = 0; i < policies.length; i++) {
    if (same[i]) continue;
    const given = policies[i]!;
    const p = normalizePolicy(given);
    const compiled = compileRule(p);
    const old = state.rules.get(p.name);
    if (old !== undefined && old.signature === compiled.signature) {
      kept.set(old, p);
      continue;
    }
    if (old !== undefined) removed.push(old);
    added.push({
      ...compiled,
      id: state.nextRuleId++,
      members: new Set(),
      destinations: new Set(),
      seenInPlan: 0,
      seenAtIndex: -1,
      given,
    });
  }
  const gone: string[] = [];
  if (seenInstalled < state.rules.size) {
    for (const old of state.rules.values()) {
      if (old.seenInPlan === plan) continue;
      removed.push(old);
      gone.push(old.name);
    }
  }
  return {
    same,
    next: nextOrder(state.evaluationOrder, removed, added),
    removed,
    added,
    kept,
    gone,
  };
}

/**
 * The evaluation order less `removed`, plus `added`. Kept rules keep their place: their
 * signature, the same, holds their priority. A few added rules are put in place.
 */
function nextOrder(ordered: Rule[], removed: Rule[], added: Rule[]): Rule[] {
  if (removed.length === 0 && added.length === 0) return ordered;
  const removedSet = new Set(removed);
  const next = ordered.filter((r) => !removedSet.has(r));
  if (added.length > 16) return next.concat(added).sort(compareRules);
  for (const r of added) {
    let lo = 0;
    let hi = next.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareRules(next[mid]!, r) < 0) lo = mid + 1;
      else hi = mid;
    }
    next.splice(lo, 0, r);
  }
  return next;
}

/**
 * Members and destination hits of a rule that is not installed yet. Destinations without
 * state get one, registered or not (`register`: false for impact's dry run).
 */
export function resolveRule(
  state: EngineState,
  r: Rule,
  register: boolean,
): Map<Destination, number[]> {
  const { catalog } = state;
  const members = new Set<IdentityState>();
  for (const record of sourceCandidates(r, catalog)) {
    const subject = subjectOf(catalog, record);
    if (subject === undefined || !ruleMatchesSource(r, subject, catalog)) continue;
    const identity = state.identities.get(record.key);
    if (identity !== undefined) members.add(identity);
  }
  r.members = members;
  const hits = new Map<Destination, number[]>();
  for (const record of destinationCandidates(r, catalog)) {
    const known = state.destinations.get(record.key);
    const slotPorts = known?.ports ?? servicePorts(record);
    const slots = destinationSlots(r, record, catalog.cluster(record.clusterId)!, slotPorts);
    if (slots !== null) hits.set(known ?? createDestination(state, record, register), slots);
  }
  return hits;
}

/** Installs a planned policy set and marks the destinations whose rules changed. */
export function installPlan(
  state: EngineState,
  batch: Batch,
  policies: readonly ConnectionPolicy[],
  plan: RulePlan,
): void {
  for (const [r, p] of plan.kept) r.policy = p;
  for (const r of plan.added) state.rules.set(r.name, r);
  for (const name of plan.gone) state.rules.delete(name);
  // What was given, where it changed (most stay: one edit among hundreds).
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    if (!plan.same[i]) state.rules.get(p.name)!.given = isFrozenPolicy(p) ? p : copyPolicy(p);
  }
  const removedSet = new Set(plan.removed);
  const affected = new Set<Destination>();
  for (const r of plan.removed) {
    for (const d of r.destinations) affected.add(d);
    for (const identity of r.members) identity.rules.delete(r);
  }
  const addedHits = new Map<Destination, RuleHit[]>();
  for (const r of plan.added) {
    for (const [d, slots] of resolveRule(state, r, true)) {
      affected.add(d);
      r.destinations.add(d);
      const list = addedHits.get(d) ?? [];
      list.push({ rule: r, slots });
      addedHits.set(d, list);
    }
    for (const identity of r.members) {
      if (identity.rules === NO_RULES) identity.rules = new Set();
      identity.rules.add(r);
    }
  }
  state.evaluationOrder = plan.next;
  state.sourcesByService = plan.next.some((r) => r.from.some((m) => m.services !== null));
  for (const d of affected) {
    const rules = d.rules.filter((h) => !removedSet.has(h.rule)).concat(addedHits.get(d) ?? []);
    d.rules = rules.length === 0 ? NO_HITS : rules.sort(hitOrder);
    batch.redecide.add(d);
  }
}

/** Adds a hit to a destination's rules, giving it a list of its own first. */
function addHit(d: Destination, hit: RuleHit): void {
  if (d.rules === NO_HITS) d.rules = [hit];
  else d.rules.push(hit);
}

/** Whether a batch is large enough to match rule by rule through the catalog indexes. */
function matchInBulk(state: EngineState, count: number): boolean {
  return count > state.bulkThreshold && count * 4 > state.evaluationOrder.length;
}

/**
 * Settle, step 1: the destinations the batch recompiles get state (every service has some:
 * an enforceable one holds at least the access intent of the defaults) and their rules.
 */
export function matchRecompiledDestinations(state: EngineState, batch: Batch): Set<Destination> {
  const { catalog } = state;
  const recompiled = new Set<Destination>();
  for (const record of batch.recompile.values()) {
    const d = state.destinations.get(record.key) ?? createDestination(state, record);
    d.record = record;
    for (const hit of d.rules) hit.rule.destinations.delete(d);
    d.rules = NO_HITS;
    d.ports = servicePorts(record);
    d.slotCount = Math.max(1, d.ports.length);
    recompiled.add(d);
  }
  if (matchInBulk(state, recompiled.size)) {
    for (const r of state.evaluationOrder) {
      for (const record of destinationCandidates(r, catalog)) {
        const d = state.destinations.get(record.key);
        if (d === undefined || !recompiled.has(d)) continue;
        const slots = destinationSlots(r, record, catalog.cluster(record.clusterId)!, d.ports);
        if (slots !== null) addHit(d, { rule: r, slots });
      }
    }
  } else {
    for (const d of recompiled) {
      const facts = catalog.cluster(d.record.clusterId)!;
      for (const r of state.evaluationOrder) {
        const slots = destinationSlots(r, d.record, facts, d.ports);
        if (slots !== null) addHit(d, { rule: r, slots });
      }
    }
  }
  for (const d of recompiled) {
    if (d.rules === NO_HITS) continue;
    d.rules.sort(hitOrder);
    for (const hit of d.rules) hit.rule.destinations.add(d);
  }
  return recompiled;
}

/** What step 2 changed: members per rule, and identities whose principal changed. */
export interface MembershipChanges {
  changed: Map<Rule, Set<IdentityState>>;
  replaced: Set<IdentityState>;
}

/**
 * Settle, step 2: the identities the batch marked get (or lose) state and their rule
 * memberships are recomputed.
 */
export function updateMemberships(state: EngineState, batch: Batch): MembershipChanges {
  const result: MembershipChanges = { changed: new Map(), replaced: new Set() };
  const present = refreshIdentities(state, batch, result);
  const matched = matchIdentities(state, present);
  for (const identity of present) {
    const next = matched.get(identity) ?? NO_RULES;
    for (const r of identity.rules) {
      if (!next.has(r)) {
        r.members.delete(identity);
        noteMemberChange(result, r, identity);
      }
    }
    for (const r of next) {
      if (!identity.rules.has(r)) {
        r.members.add(identity);
        noteMemberChange(result, r, identity);
      }
    }
    identity.rules = next.size === 0 ? NO_RULES : next;
  }
  return result;
}

function noteMemberChange(result: MembershipChanges, r: Rule, identity: IdentityState): void {
  let set = result.changed.get(r);
  if (set === undefined) {
    set = new Set();
    result.changed.set(r, set);
  }
  set.add(identity);
}

/** Identity states of the marked identities, current with the catalog; the present ones. */
function refreshIdentities(
  state: EngineState,
  batch: Batch,
  result: MembershipChanges,
): IdentityState[] {
  const present: IdentityState[] = [];
  for (const [key, ref] of batch.identities) {
    const record = state.catalog.identity(ref.clusterId, ref.namespace, ref.serviceAccount);
    let identity = state.identities.get(key);
    if (record === undefined) {
      if (identity === undefined) continue;
      for (const r of identity.rules) {
        r.members.delete(identity);
        noteMemberChange(result, r, identity);
      }
      identity.rules = NO_RULES;
      state.identities.delete(key);
      continue;
    }
    if (identity === undefined) {
      // The record's key: the same text, kept once (interned) for every index.
      identity = { key: record.key, record, rules: NO_RULES };
      state.identities.set(record.key, identity);
    } else if (identity.record !== record && identity.record.principal !== record.principal) {
      // The principal changed: every destination deciding it needs a rebuild.
      for (const r of identity.rules) noteMemberChange(result, r, identity);
      result.replaced.add(identity);
    }
    identity.record = record;
    present.push(identity);
  }
  return present;
}

/**
 * The rules whose sources select each identity, for the identities some rule selects (the
 * others select none): a batch of a whole fleet has 100k identities, most of them selected by
 * no rule, and an empty set each was garbage of 100 B per identity.
 */
function matchIdentities(
  state: EngineState,
  present: IdentityState[],
): Map<IdentityState, Set<Rule>> {
  const { catalog } = state;
  const matched = new Map<IdentityState, Set<Rule>>();
  if (!matchInBulk(state, present.length)) {
    for (const identity of present) {
      const rules = matchingRules(state, identity);
      if (rules.size > 0) matched.set(identity, rules);
    }
    return matched;
  }
  const wanted = new Set(present);
  for (const r of state.evaluationOrder) {
    for (const record of sourceCandidates(r, catalog)) {
      const identity = state.identities.get(record.key);
      if (identity === undefined || !wanted.has(identity)) continue;
      const subject = subjectOf(catalog, record);
      if (subject === undefined || !ruleMatchesSource(r, subject, catalog)) continue;
      const set = matched.get(identity);
      if (set === undefined) matched.set(identity, new Set([r]));
      else set.add(r);
    }
  }
  return matched;
}

function matchingRules(state: EngineState, identity: IdentityState): Set<Rule> {
  const subject = subjectOf(state.catalog, identity.record);
  const out = new Set<Rule>();
  if (subject === undefined) return out;
  for (const r of state.evaluationOrder) {
    if (ruleMatchesSource(r, subject, state.catalog)) out.add(r);
  }
  return out;
}
