// The owned objects in the cluster, by intent, from adoption and the informer's events.
import { type KubeObject, objectRef } from "../kube-object.js";
import { isOwned } from "../ownership.js";
import { intentNameOf } from "./desired-set.js";

export function createOwnedIndex() {
  /** Live owned objects: intent name -> refs, and ref -> intent name (from adoption and the
   * informer's events), so that a delta finds an intent's objects without a scan. */
  const ownedByIntent = new Map<string, Set<string>>();
  const ownerOf = new Map<string, string>();

  function track(obj: KubeObject, deleted: boolean): void {
    const ref = objectRef(obj);
    const before = ownerOf.get(ref);
    const after = !deleted && isOwned(obj) ? (intentNameOf(obj) ?? "") : undefined;
    if (before === after) return;
    if (before !== undefined) {
      const refs = ownedByIntent.get(before);
      refs?.delete(ref);
      if (refs?.size === 0) ownedByIntent.delete(before);
      ownerOf.delete(ref);
    }
    if (after !== undefined) {
      ownerOf.set(ref, after);
      let refs = ownedByIntent.get(after);
      if (refs === undefined) {
        refs = new Set();
        ownedByIntent.set(after, refs);
      }
      refs.add(ref);
    }
  }

  return { ownedByIntent, ownerOf, track };
}
