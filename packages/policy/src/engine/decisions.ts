// Decisions: per destination, the deciding rule of every identity some matching rule
// selects, per port slot (the first rule in evaluation order that covers the slot; null:
// the default). Recomputed whole where a destination's rules changed, patched per identity
// where only memberships changed; destinations with the same rules on the same slots share
// one decision map (copy on write).
import type { Batch } from "./batch.js";
import {
  type DecisionMap,
  type Destination,
  type IdentityState,
  NO_DECISIONS,
  type Rule,
  type SlotRules,
} from "./engine-state.js";
import type { MembershipChanges } from "./rule-set.js";

/** Decisions of every member of the destination's rules. */
function decideAll(d: Destination): void {
  d.decisions = NO_DECISIONS;
  for (const hit of d.rules) {
    for (const identity of hit.rule.members) {
      if (d.decisions === NO_DECISIONS) d.decisions = new Map();
      let slots = d.decisions.get(identity);
      if (slots === undefined) {
        slots = new Array<Rule | null>(d.slotCount).fill(null);
        d.decisions.set(identity, slots);
      }
      for (const s of hit.slots) if (slots[s] === null) slots[s] = hit.rule;
    }
  }
}

/** Decisions of one identity at one destination (null: defaults on every slot). */
function decideIdentity(d: Destination, identity: IdentityState): SlotRules | null {
  let slots: SlotRules | null = null;
  let filled = 0;
  for (const hit of d.rules) {
    if (!hit.rule.members.has(identity)) continue;
    for (const s of hit.slots) {
      slots ??= new Array<Rule | null>(d.slotCount).fill(null);
      if (slots[s] === null) {
        slots[s] = hit.rule;
        filled++;
      }
    }
    if (filled === d.slotCount) break;
  }
  return slots;
}

function sameSlotRules(a: SlotRules | undefined, b: SlotRules | null): boolean {
  if (a === undefined || b === null) return a === undefined && b === null;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Settle, step 3: the decisions of identities whose memberships changed, patched where
 * their rules apply (destinations decided whole in step 4 aside). Destinations whose
 * decisions changed are marked for a rebuild.
 */
export function patchDecisions(
  identities: ReadonlyMap<string, IdentityState>,
  batch: Batch,
  recompiled: ReadonlySet<Destination>,
  memberships: MembershipChanges,
): void {
  const patches = new Map<Destination, Set<IdentityState>>();
  for (const [r, members] of memberships.changed) {
    for (const d of r.destinations) {
      if (recompiled.has(d) || batch.redecide.has(d)) continue;
      let set = patches.get(d);
      if (set === undefined) {
        set = new Set();
        patches.set(d, set);
      }
      for (const identity of members) set.add(identity);
    }
  }
  for (const [d, members] of patches) {
    let changedHere = false;
    for (const identity of members) {
      const slots = identities.get(identity.key) === identity ? decideIdentity(d, identity) : null;
      const before = d.decisions.get(identity);
      // A new record (labels, principal) may change the principal lists even when the
      // deciding rules stay: rebuild whenever the identity's record was replaced.
      if (!sameSlotRules(before, slots) || memberships.replaced.has(identity)) changedHere = true;
      if (slots === null && before === undefined) continue;
      if (!d.decisionsOwned) {
        d.decisions = new Map(d.decisions);
        d.decisionsOwned = true;
      }
      if (slots === null) d.decisions.delete(identity);
      else d.decisions.set(identity, slots);
    }
    if (changedHere) batch.rebuild.add(d);
  }
}

/**
 * Settle, step 4: full decisions where rules changed. Destinations with the same rules on
 * the same slots decide alike: the first one's decisions are shared with the others.
 */
export function decideDestinations(batch: Batch, recompiled: ReadonlySet<Destination>): void {
  const decisionsByHits = new Map<string, DecisionMap>();
  const decide = (d: Destination) => {
    let key = String(d.slotCount);
    for (const hit of d.rules) key += `;${hit.rule.id}:${hit.slots.join(",")}`;
    const shared = decisionsByHits.get(key);
    if (shared === undefined) {
      decideAll(d);
      decisionsByHits.set(key, d.decisions);
    } else d.decisions = shared;
    d.decisionsOwned = false;
  };
  for (const d of recompiled) decide(d);
  for (const d of batch.redecide) {
    if (d.live) decide(d);
  }
}
