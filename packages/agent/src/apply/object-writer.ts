// Writes one object: compares the desired object with the live one from the cache, then
// applies, deletes or leaves it; ownership and drift are decided here; transient API errors
// are retried with backoff.
import type { Logger } from "@isthmus/logging";
import type { Delay } from "../discovery/informer.js";
import { liveContentHash, liveHashOf } from "../discovery/objects.js";
import { KubeApiError, type KubeClient } from "../kube/client.js";
import { RENDERED_KINDS, type Resource } from "../kube/resources.js";
import type { KubeObject } from "../kube-object.js";
import { isOwned, MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "../ownership.js";
import { type DesiredSet, hashOf, intentNameOf, type Outcome, splitRef } from "./desired-set.js";
import { type DriftChange, type DriftRepair, restoredObject } from "./drift.js";

export interface ObjectWriterOptions {
  client: KubeClient;
  live: { liveObject(kind: string, namespace: string, name: string): KubeObject | undefined };
  set: DesiredSet;
  fieldManager: string;
  delay: Delay;
  maxAttempts: number;
  initialMs: number;
  maxMs: number;
  logger: Logger;
  /** Called after every write or delete (for metrics). */
  onWrite: ((op: "apply" | "delete" | "noop" | "error", obj: string) => void) | undefined;
  now: () => Date;
  /** Reports a drift repair. */
  emit: (event: { type: "drift"; repair: DriftRepair }) => void;
}

/**
 * Long as a closure, not as one job: its inner functions share the desired set and the records of
 * repairs (stuck, repairedFrom); none is over about 80 lines.
 */
export function createObjectWriter(options: ObjectWriterOptions) {
  const { client, live, set, fieldManager, delay, maxAttempts, initialMs, maxMs, logger, now } =
    options;
  const { desired, kept, adoptedOnly, removed, intents, isDesiredIntent, renderAgain } = set;
  const emit = options.emit;

  function mayDelete(liveObj: KubeObject, ref: string): boolean {
    if (!isOwned(liveObj) || kept.has(ref)) return false;
    const owner = intentNameOf(liveObj);
    if (owner !== undefined && adoptedOnly.has(owner)) return false;
    if (owner !== undefined && removed.has(owner)) return true;
    // A stale object of an intent whose current rendering no longer has it.
    if (owner !== undefined && intents.has(owner)) return true;
    return set.complete;
  }

  async function write(ref: string): Promise<Outcome> {
    const { kind, namespace, name } = splitRef(ref);
    const res = RENDERED_KINDS[kind];
    if (res === undefined) return { ok: false, message: `unknown kind ${kind}` };
    const want = desired.get(ref);
    const liveObj = live.liveObject(kind, namespace, name);
    if (want === undefined) {
      repairedFrom.delete(ref);
      if (liveObj === undefined || !mayDelete(liveObj, ref)) return { ok: true };
      await client.delete(res, name, namespace, liveObj.metadata.uid);
      options.onWrite?.("delete", ref);
      logger.info("deleted object", { object: ref, intent: intentNameOf(liveObj) });
      return { ok: true };
    }
    let drift: DriftChange | undefined = want.held ? "deleted" : undefined;
    if (liveObj !== undefined) {
      if (!isOwned(liveObj)) {
        return {
          ok: false,
          message: `${ref} exists and is not managed by Isthmus (no label ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}); it was left untouched: delete or rename it, or label it to hand it over`,
        };
      }
      const owner = intentNameOf(liveObj);
      if (owner !== undefined && owner !== want.intentName && isDesiredIntent(owner)) {
        return { ok: false, message: `${ref} already belongs to intent "${owner}"` };
      }
      // The content itself is compared, not only the hash annotation: an edit that keeps the
      // annotations (kubectl edit of the principals) is a change like any other.
      const liveHash = liveHashOf(liveObj);
      const annotated = hashOf(liveObj);
      if (liveHash !== undefined && liveHash === want.hash && annotated === want.hash) {
        want.held = true;
        if (desired.get(ref) === want) want.object = undefined;
        stuck.delete(ref);
        repairedFrom.delete(ref);
        options.onWrite?.("noop", ref);
        return { ok: true };
      }
      const known = stuck.get(ref);
      if (known !== undefined && known.want === want.hash && known.live === liveHash)
        return { ok: false, message: known.message };
      // Someone else's change: the cluster held what the agent wrote, or the content no longer
      // matches the object's own hash annotation (which only the agent writes).
      drift =
        want.held || (annotated !== undefined && liveHash !== annotated) ? "changed" : undefined;
      // The same edit seen again before the cache caught up with the repair: written again
      // (a no-op for the server), not reported twice.
      if (drift === "changed" && liveHash !== undefined) {
        if (repairedFrom.get(ref) === liveHash) drift = undefined;
        else repairedFrom.set(ref, liveHash);
      }
    }
    const object = want.object ?? renderAgain(ref, want);
    if (object === undefined)
      return { ok: false, message: `${ref}: its intent no longer renders it` };
    // Events from now on (the echo of this write) may show the cluster holding it; a failed
    // write leaves it as it was, so that its retry still knows a deletion for drift.
    const wasHeld = want.held;
    want.held = false;
    // Force only where Isthmus owns the object; a new object is applied without force, so
    // that a foreign object created meanwhile makes the apply fail with a conflict.
    const answer = await client
      .apply(res, object, {
        fieldManager,
        force: liveObj !== undefined,
        returnObject: drift === "changed",
      })
      .catch((err: unknown) => {
        want.held ||= wasHeld;
        throw err;
      });
    options.onWrite?.("apply", ref);
    if (answer !== undefined) {
      const restored = await removeOthersFields(res, ref, object, answer);
      if (!restored.ok) return restored;
    }
    // Written: the cluster holds it now (unless the intent was rendered again meanwhile).
    if (desired.get(ref) === want) want.object = undefined;
    if (drift !== undefined) reportDrift(want.intentName, ref, kind, drift);
    return { ok: true };
  }

  /** Objects whose repair the API server undid (content the agent did not write came back):
   * not written again until their desired or live content changes, so that a mutating
   * webhook and the agent do not take turns forever. */
  const stuck = new Map<string, { want: string | undefined; live: string; message: string }>();
  /** Ref -> the live content hash a repair replaced, until the cache shows the repair. */
  const repairedFrom = new Map<string, string>();

  /**
   * After server-side apply restored a changed object: a field someone else added (kubectl
   * edit) belongs to that manager, and an apply that omits it keeps it. Such fields go by a
   * conditional update of the whole object (a conflict is retried from the cache).
   */
  async function removeOthersFields(
    res: Resource,
    ref: string,
    rendered: KubeObject,
    answer: KubeObject,
  ): Promise<Outcome> {
    const wantHash = hashOf(rendered);
    if (liveContentHash(answer) === wantHash) return { ok: true };
    const replaced = await client.replace(res, restoredObject(answer, rendered), { fieldManager });
    options.onWrite?.("apply", ref);
    const after = liveContentHash(replaced);
    if (after === wantHash) return { ok: true };
    const message = `${ref}: the API server changed it again after it was restored (a mutating webhook?); left as it is until its intent or content changes`;
    stuck.set(ref, { want: wantHash, live: after, message });
    return { ok: false, message };
  }

  function reportDrift(intentName: string, ref: string, kind: string, change: DriftChange): void {
    logger.warn("restored an object changed by someone else", {
      object: ref,
      intent: intentName,
      change,
    });
    emit({ type: "drift", repair: { intentName, object: ref, kind, change, time: now() } });
  }

  async function reconcileOnce(ref: string): Promise<Outcome> {
    let backoff = initialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await write(ref);
      } catch (err) {
        const e = KubeApiError.from(err);
        if (!e.transient || attempt >= maxAttempts) {
          options.onWrite?.("error", ref);
          logger.warn("could not apply object", { object: ref, err: e.message, attempts: attempt });
          return { ok: false, message: e.message };
        }
        const wait =
          e.retryAfterSeconds !== undefined && (e.code === 429 || e.code === 503)
            ? Math.min(e.retryAfterSeconds * 1000, maxMs)
            : backoff;
        backoff = Math.min(backoff * 2, maxMs);
        logger.debug("retrying object", { object: ref, err: e.message, attempt, backoff_ms: wait });
        await delay(wait);
      }
    }
  }

  return { reconcileOnce };
}
