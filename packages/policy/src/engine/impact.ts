// Impact (a dry run of setPolicies): the connections whose decision a new policy set would
// change. Only pairs a removed or added rule touches can change; each is decided before and
// after as explain decides it, per port slot, shared principals included.
import { create } from "@bufbuild/protobuf";
import {
  type ConnectionPolicy,
  Decision,
  type DecisionChange,
  DecisionChangeSchema,
} from "@isthmus/proto";
import {
  type Destination,
  type EngineState,
  type IdentityState,
  type Rule,
  type RuleHit,
  slotDecision,
} from "./engine-state.js";
import { hitOrder, planRules, resolveRule } from "./rule-set.js";

/** A slot whose decision changes, with the deciding rules' names before and after. */
interface SlotChange {
  port: number;
  before: Decision;
  after: Decision;
  ruleBefore: string;
  ruleAfter: string;
}

export function impact(state: EngineState, next: readonly ConnectionPolicy[]): DecisionChange[] {
  const plan = planRules(state, next);
  if (plan.removed.length === 0 && plan.added.length === 0) return [];
  const removedSet = new Set(plan.removed);
  const pairs = new Map<Destination, Set<IdentityState>>();
  for (const r of plan.removed) addPairs(pairs, r.members, r.destinations);
  const addedHits = new Map<Destination, RuleHit[]>();
  for (const r of plan.added) {
    const hits = resolveRule(state, r, false);
    for (const [d, slots] of hits) {
      const list = addedHits.get(d) ?? [];
      list.push({ rule: r, slots });
      addedHits.set(d, list);
    }
    addPairs(pairs, r.members, hits.keys());
  }
  addPrincipalHolders(state, pairs);
  const out: DecisionChange[] = [];
  for (const [d, members] of pairs) {
    const before = d.rules;
    const after = d.rules
      .filter((h) => !removedSet.has(h.rule))
      .concat(addedHits.get(d) ?? [])
      .sort(hitOrder);
    for (const identity of members) {
      if (state.identities.get(identity.key) !== identity) continue;
      const changes: SlotChange[] = [];
      for (let s = 0; s < d.slotCount; s++) {
        const b = decideAt(state, before, d, identity, s);
        const a = decideAt(state, after, d, identity, s);
        if (b.decision === a.decision) continue;
        changes.push({
          port: d.ports[s] ?? 0,
          before: b.decision,
          after: a.decision,
          ruleBefore: b.rule,
          ruleAfter: a.rule,
        });
      }
      reportChanges(out, d, identity, changes);
    }
  }
  // Added rules are not installed: drop what resolveRule attached.
  for (const r of plan.added) r.members = new Set();
  return sortChanges(out);
}

function addPairs(
  pairs: Map<Destination, Set<IdentityState>>,
  members: Iterable<IdentityState>,
  destinations: Iterable<Destination>,
): void {
  const list = [...members];
  if (list.length === 0) return;
  for (const d of destinations) {
    let set = pairs.get(d);
    if (set === undefined) {
      set = new Set();
      pairs.set(d, set);
    }
    for (const identity of list) set.add(identity);
  }
}

/**
 * A principal shared through a trust domain is decided for all of its holders at once
 * (DENY wins, as explain says): a change for one holder is a change for the others.
 */
function addPrincipalHolders(
  state: EngineState,
  pairs: Map<Destination, Set<IdentityState>>,
): void {
  for (const members of pairs.values()) {
    for (const identity of [...members]) {
      for (const h of state.catalog.identitiesWithPrincipal(identity.record.principal)) {
        const holder = state.identities.get(h.key);
        if (holder !== undefined) members.add(holder);
      }
    }
  }
}

/** The first of the hits whose rule selects the identity on the slot (null: default). */
function ruleAt(hits: RuleHit[], identity: IdentityState, slot: number): Rule | null {
  for (const hit of hits) {
    if (hit.slots.includes(slot) && hit.rule.members.has(identity)) return hit.rule;
  }
  return null;
}

/** The decision on one slot as explain makes it, shared principals included. */
function decideAt(
  state: EngineState,
  hits: RuleHit[],
  d: Destination,
  identity: IdentityState,
  slot: number,
) {
  const own = ruleAt(hits, identity, slot);
  let decision = slotDecision(state, own, identity.record.clusterId === d.record.clusterId);
  let rule = own?.name ?? "";
  if (decision === Decision.ALLOW) {
    for (const h of state.catalog.identitiesWithPrincipal(identity.record.principal)) {
      if (h.clusterId === identity.record.clusterId) continue;
      const holder = state.identities.get(h.key);
      const r = holder === undefined ? null : ruleAt(hits, holder, slot);
      if (slotDecision(state, r, h.clusterId === d.record.clusterId) === Decision.DENY) {
        decision = Decision.DENY;
        rule = r?.name ?? "";
        break;
      }
    }
  }
  return { decision, rule };
}

/** One change per slot, or one for the whole service (port 0) when every slot changes alike. */
function reportChanges(
  out: DecisionChange[],
  d: Destination,
  identity: IdentityState,
  changes: SlotChange[],
): void {
  if (changes.length === 0) return;
  const first = changes[0]!;
  const uniform =
    changes.length === d.slotCount &&
    changes.every(
      (c) =>
        c.before === first.before &&
        c.after === first.after &&
        c.ruleBefore === first.ruleBefore &&
        c.ruleAfter === first.ruleAfter,
    );
  for (const c of uniform ? [{ ...first, port: 0 }] : changes) {
    out.push(
      create(DecisionChangeSchema, {
        source: {
          clusterId: identity.record.clusterId,
          namespace: identity.record.identity.namespace,
          serviceAccount: identity.record.identity.serviceAccount,
        },
        destination: {
          clusterId: d.record.clusterId,
          namespace: d.record.service.namespace,
          service: d.record.service.name,
          port: c.port,
        },
        before: c.before,
        after: c.after,
        ruleBefore: c.ruleBefore,
        ruleAfter: c.ruleAfter,
      }),
    );
  }
}

/** By source, then destination, then port. */
function sortChanges(out: DecisionChange[]): DecisionChange[] {
  const key = (c: DecisionChange) =>
    [
      c.source!.clusterId,
      c.source!.namespace,
      c.source!.serviceAccount,
      c.destination!.clusterId,
      c.destination!.namespace,
      c.destination!.service,
    ].join("\u0000");
  return out.sort((x, y) => {
    const kx = key(x);
    const ky = key(y);
    if (kx !== ky) return kx < ky ? -1 : 1;
    return x.destination!.port - y.destination!.port;
  });
}
