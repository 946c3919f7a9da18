// One closure over the desired set, the live-object index, the NACK record and the work
// queue: every part reads and writes the same maps, so it stays one file (about 660 lines).
import { fromJsonString } from "@bufbuild/protobuf";
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import { type AccessIntent, type ImportBackend, type Intent, IntentSchema } from "@isthmus/proto";
import type { Delay } from "../discovery/informer.js";
import { liveContentHash, liveHashOf } from "../discovery/objects.js";
import { isKubeApiError, KubeApiError, type KubeClient } from "../kube/client.js";
import { RENDERED_KINDS, type Resource } from "../kube/resources.js";
import { dependsOnLocalEndpoints, importOf, renderIntent } from "../render/index.js";
import {
  CONTENT_HASH_ANNOTATION,
  INTENT_NAME_ANNOTATION,
  INTENT_SOURCE_ANNOTATION,
  INTENT_VERSION_ANNOTATION,
  isOwned,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
} from "../render/meta.js";
import { type KubeObject, type LocalFacts, type ObjectError, objectRef } from "../render/types.js";
import { type DriftChange, type DriftRepair, restoredObject } from "./drift.js";
import { createWorkQueue } from "./queue.js";

export const FIELD_MANAGER = "isthmus-agent";

/** What the reconciler reads of the cluster: the informer cache of the rendered kinds. */
export interface LiveObjects {
  liveObject(kind: string, namespace: string, name: string): KubeObject | undefined;
  liveObjects(): KubeObject[];
  facts(): LocalFacts;
}

export interface ReconcilerOptions {
  client: KubeClient;
  live: LiveObjects;
  fieldManager?: string;
  /** Injected sleep between retries. */
  delay?: Delay;
  /** Attempts per object and delta before its error is reported. Default 5. */
  maxAttempts?: number;
  /** Retry backoff on 409/429/5xx: initial and maximum, in ms (429/503 Retry-After wins). */
  backoff?: { initialMs: number; maxMs: number };
  concurrency?: number;
  logger?: Logger;
  /** Called after every write or delete (for metrics). */
  onWrite?: (op: "apply" | "delete" | "noop" | "error", obj: string) => void;
  /** Clock of drift repair times. */
  now?: () => Date;
}

/** What the reconciler did on its own, outside a delta's answer: for the hub. */
export type ReconcilerEvent =
  /** An intent reported with errors (NACK) is now applied in full (a retry, a re-render). */
  | { type: "applied"; intentName: string; version: string }
  /** The objects of an intent whose removal was NACKed are now gone. */
  | { type: "removed"; intentName: string }
  /** An owned object someone else changed or deleted was restored. */
  | { type: "drift"; repair: DriftRepair };

export interface DeltaInput {
  upserted: readonly Intent[];
  removed: readonly string[];
  complete: boolean;
}

/** The outcome of a delta: empty errors means every object was accepted (ACK). */
export interface ApplyReport {
  errors: ObjectError[];
}

type Outcome = { ok: true } | { ok: false; message: string };

interface Desired {
  intentName: string;
  /** The rendered object's content hash (undefined: rendered without one). */
  hash: string | undefined;
  /** The rendered object until it is written. Once the cluster holds it, a later write (drift
   * repair, a retried NACK) renders the intent again: the agent does not keep a second copy
   * of every object it wrote (about 1 KB each, kept for the agent's lifetime). */
  object: KubeObject | undefined;
  /** The cache showed the cluster holding this content: a later difference or deletion is
   * someone else's doing (drift). */
  held: boolean;
}

const hashOf = (o: KubeObject) => o.metadata.annotations?.[CONTENT_HASH_ANNOTATION];

/**
 * Keeps the cluster's Istio objects equal to the rendered intents. Level-based: every path
 * (a hub delta, local pod churn, a drifted object) only enqueues object keys; `reconcile(key)`
 * compares the desired object with the live one from the cache and writes, deletes or does
 * nothing. Ownership: an object without `app.kubernetes.io/managed-by: isthmus` is never
 * written or deleted. Fail static: before the first complete delta nothing is pruned except
 * objects of intents the hub removed by name.
 */
export interface Reconciler {
  /** Adopts the owned objects already in the cluster (after the cache synced). */
  adopt(): void;
  /** Intent name -> version of every intent in the desired set applied in full (for Hello). */
  appliedVersions(): Record<string, string>;
  /** The AccessIntents of the desired set (conflict detection reads Isthmus's decisions). */
  accessIntents(): AccessIntent[];
  /** Intent name -> version of the intents reported with errors and not applied since. */
  failedVersions(): Record<string, string>;
  /** Listens to what the reconciler does on its own (retries, drift repairs). */
  onEvent(cb: (event: ReconcilerEvent) => void): void;
  applyDelta(delta: DeltaInput): Promise<ApplyReport>;
  /** Local endpoints of a Service changed: re-render the intents that use them. */
  endpointsChanged(namespace: string, service: string): void;
  /** Mesh facts changed (trust domain, network, locality): re-render everything. */
  meshChanged(): void;
  /** A live object of a rendered kind changed (or was deleted): repair drift. */
  objectChanged(obj: KubeObject, deleted?: boolean): void;
  /** Re-enqueues the objects whose last attempt failed; returns how many. */
  retryFailed(): number;
  /** Whether a complete delta was applied (pruning enabled). */
  pruning(): boolean;
  idle(): Promise<void>;
  stop(): void;
}

/**
 * The API server's 404 for an object whose namespace does not exist, said first (the status
 * table shows the start of a reason): Isthmus writes an import into the service's namespace,
 * which must exist in this cluster too (namespace sameness); the agent writes it as soon as the
 * namespace is created.
 */
function explainMissingNamespace(e: KubeApiError): string {
  const missing = e.code === 404 ? /namespaces "([^"]+)" not found/.exec(e.message) : null;
  if (missing === null) return e.message;
  return `namespace "${missing[1]}" does not exist in this cluster (objects live in the service's namespace; written once it is created): ${e.message}`;
}

function intentNameOf(obj: KubeObject): string | undefined {
  return obj.metadata.annotations?.[INTENT_NAME_ANNOTATION];
}

function splitRef(ref: string): { kind: string; namespace: string; name: string } {
  const space = ref.indexOf(" ");
  const slash = ref.indexOf("/", space);
  return {
    kind: ref.slice(0, space),
    namespace: ref.slice(space + 1, slash),
    name: ref.slice(slash + 1),
  };
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { client, live } = options;
  const fieldManager = options.fieldManager ?? FIELD_MANAGER;
  const delay = options.delay ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxAttempts = options.maxAttempts ?? 5;
  const initialMs = options.backoff?.initialMs ?? 200;
  const maxMs = options.backoff?.maxMs ?? 10_000;
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? (() => new Date());
  const listeners: ((event: ReconcilerEvent) => void)[] = [];
  const emit = (event: ReconcilerEvent) => {
    for (const cb of listeners) cb(event);
  };

  /** Intents whose content is known (from the hub or an adopted intent-source annotation). */
  const intents = new Map<string, Intent>();
  /** Adopted intents whose content is unknown: their live objects are kept as they are. */
  const adoptedOnly = new Map<string, string>();
  /** Intents the hub removed by name: their objects may go even before a complete delta. */
  const removed = new Set<string>();
  const desired = new Map<string, Desired>();
  const refsByIntent = new Map<string, Set<string>>();
  /** Objects of desired intents that could not be rendered: left as they are. */
  const kept = new Map<string, string>();
  const intentsByService = new Map<string, Set<string>>();
  /** ImportIntent name -> its ImportBackendIntents' backends, by intent name. */
  const backendsByImport = new Map<string, Map<string, ImportBackend>>();
  let complete = false;
  /** Intents reported with errors (NACK), name -> version, until all their objects apply. */
  const nacked = new Map<string, string>();
  /** Intents whose removal was reported with errors, until their objects are gone. */
  const nackedRemovals = new Set<string>();
  /** Intents whose last rendering had errors (objects not rendered). */
  const renderFailed = new Set<string>();

  /** Keeps an intent (or forgets one: `intent` undefined); returns the ImportIntent whose
   * backends changed, if any. */
  function hold(name: string, intent: Intent | undefined): string | undefined {
    const before = intents.get(name);
    if (intent === undefined) intents.delete(name);
    else intents.set(name, intent);
    let changed: string | undefined;
    const previousImport = before === undefined ? undefined : importOf(before);
    if (previousImport !== undefined) {
      const backends = backendsByImport.get(previousImport);
      backends?.delete(name);
      if (backends?.size === 0) backendsByImport.delete(previousImport);
      changed = previousImport;
    }
    const nextImport = intent === undefined ? undefined : importOf(intent);
    const backend =
      intent?.kind.case === "importBackendIntent" ? intent.kind.value.backend : undefined;
    // A backend intent without its backend is refused when rendered (NACK) and adds nothing.
    if (nextImport !== undefined && backend !== undefined) {
      let backends = backendsByImport.get(nextImport);
      if (backends === undefined) {
        backends = new Map();
        backendsByImport.set(nextImport, backends);
      }
      backends.set(name, backend);
      changed = nextImport;
    }
    return changed;
  }

  const serviceKey = (i: Intent) =>
    i.kind.case === undefined ? undefined : `${i.kind.value.namespace}/${i.kind.value.service}`;

  function isDesiredIntent(name: string): boolean {
    return intents.has(name) || adoptedOnly.has(name);
  }

  function mayDelete(liveObj: KubeObject, ref: string): boolean {
    if (!isOwned(liveObj) || kept.has(ref)) return false;
    const owner = intentNameOf(liveObj);
    if (owner !== undefined && adoptedOnly.has(owner)) return false;
    if (owner !== undefined && removed.has(owner)) return true;
    // A stale object of an intent whose current rendering no longer has it.
    if (owner !== undefined && intents.has(owner)) return true;
    return complete;
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

  /** A written object again, from its intent (rendering is pure: the same intent, backends and
   * facts give the same object). Facts that changed since give the object as it should be now;
   * its hash is then the desired one. */
  function renderAgain(ref: string, want: Desired): KubeObject | undefined {
    const intent = intents.get(want.intentName);
    if (intent === undefined) return undefined;
    const backends = backendsByImport.get(intent.name);
    const { objects } = renderIntent(
      intent,
      live.facts(),
      backends === undefined ? [] : [...backends.values()],
    );
    const object = objects.find((o) => objectRef(o) === ref);
    if (object !== undefined) want.hash = hashOf(object);
    return object;
  }

  async function reconcile(ref: string): Promise<Outcome> {
    const outcome = await reconcileOnce(ref);
    if (outcome.ok) {
      failed.delete(ref);
      const owner = desired.get(ref)?.intentName;
      if (owner !== undefined) settleNacked(owner, ref);
    } else failed.add(ref);
    return outcome;
  }

  /** Tells the hub that a NACKed intent is applied now, once every object of it is: none
   * failed, none waiting in the queue (`done`: the object whose write just succeeded). */
  function settleNacked(name: string, done?: string): void {
    const version = nacked.get(name);
    if (version === undefined || intents.get(name)?.version !== version) return;
    if (renderFailed.has(name)) return;
    for (const ref of refsByIntent.get(name) ?? []) {
      if (failed.has(ref) || (ref !== done && queue.pending(ref))) return;
    }
    nacked.delete(name);
    logger.info("refused intent applied on retry", { intent: name, version });
    emit({ type: "applied", intentName: name, version });
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
          return { ok: false, message: explainMissingNamespace(e) };
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

  const queue = createWorkQueue<Outcome>(reconcile, {
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    onError: (_key, err) => ({
      ok: false,
      message: isKubeApiError(err) ? err.message : errorField(err),
    }),
  });

  /** Renders an intent into the desired set; returns the keys whose desired state changed. */
  function render(intent: Intent, facts: LocalFacts): { refs: string[]; errors: ObjectError[] } {
    const backends = backendsByImport.get(intent.name);
    const result = renderIntent(
      intent,
      facts,
      backends === undefined ? [] : [...backends.values()],
    );
    const before = refsByIntent.get(intent.name) ?? new Set<string>();
    const after = new Set<string>();
    const changed: string[] = [];
    for (const ref of before) kept.delete(ref);
    for (const o of result.objects) {
      const ref = objectRef(o);
      after.add(ref);
      const prev = desired.get(ref);
      const hash = hashOf(o);
      // Unchanged: kept as it is (whether the cluster holds it, and no copy once written).
      if (prev !== undefined && prev.hash === hash && prev.intentName === intent.name) continue;
      changed.push(ref);
      desired.set(ref, { intentName: intent.name, hash, object: o, held: false });
    }
    if (result.errors.length > 0) renderFailed.add(intent.name);
    else renderFailed.delete(intent.name);
    for (const e of result.errors) {
      if (e.object.startsWith("Intent ")) continue;
      kept.set(e.object, intent.name);
    }
    for (const ref of before) {
      if (!after.has(ref) && desired.get(ref)?.intentName === intent.name) {
        desired.delete(ref);
        changed.push(ref);
      }
    }
    refsByIntent.set(intent.name, after);
    const sk = serviceKey(intent);
    if (sk !== undefined && dependsOnLocalEndpoints(intent)) {
      let set = intentsByService.get(sk);
      if (set === undefined) {
        set = new Set();
        intentsByService.set(sk, set);
      }
      set.add(intent.name);
    }
    return { refs: changed, errors: result.errors };
  }

  function forget(name: string): string[] {
    const refs = [...(refsByIntent.get(name) ?? [])];
    for (const ref of refs) {
      if (desired.get(ref)?.intentName === name) desired.delete(ref);
      kept.delete(ref);
    }
    refsByIntent.delete(name);
    renderFailed.delete(name);
    for (const set of intentsByService.values()) set.delete(name);
    const i = intents.get(name);
    if (i !== undefined && !dependsOnLocalEndpoints(i)) {
      const sk = serviceKey(i);
      if (sk !== undefined) intentsByService.get(sk)?.delete(name);
    }
    return refs;
  }

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

  /** Objects whose last reconciliation failed; retried by `retryFailed`. */
  const failed = new Set<string>();

  return {
    adopt() {
      const byIntent = new Map<string, KubeObject[]>();
      for (const o of live.liveObjects()) {
        track(o, false);
        if (!isOwned(o)) continue;
        const name = intentNameOf(o);
        if (name === undefined) continue;
        let list = byIntent.get(name);
        if (list === undefined) {
          list = [];
          byIntent.set(name, list);
        }
        list.push(o);
      }
      const facts = live.facts();
      for (const [name, objects] of byIntent) {
        const versions = new Set(
          objects.map((o) => o.metadata.annotations?.[INTENT_VERSION_ANNOTATION] ?? ""),
        );
        // Objects of one intent at different versions: a write was cut short. Report no
        // version, so that the hub sends the intent again.
        if (versions.size !== 1) continue;
        const version = [...versions][0]!;
        const source = objects.find(
          (o) => o.metadata.annotations?.[INTENT_SOURCE_ANNOTATION] !== undefined,
        );
        let intent: Intent | undefined;
        if (source !== undefined) {
          try {
            intent = fromJsonString(
              IntentSchema,
              source.metadata.annotations![INTENT_SOURCE_ANNOTATION]!,
            );
          } catch (err) {
            logger.warn("unreadable intent source annotation", {
              object: objectRef(source),
              err: errorField(err),
            });
          }
        }
        if (intent !== undefined && intent.name === name && intent.version === version) {
          hold(name, intent);
        } else {
          adoptedOnly.set(name, version);
        }
      }
      // Re-render with today's endpoints (pods may have moved while the agent was down), once
      // every import has its backends.
      for (const intent of intents.values()) {
        for (const ref of render(intent, facts).refs) void queue.enqueue(ref);
      }
      logger.info("adopted owned objects", { intents: byIntent.size, rerendered: intents.size });
    },
    accessIntents() {
      const out: AccessIntent[] = [];
      for (const i of intents.values()) if (i.kind.case === "accessIntent") out.push(i.kind.value);
      return out;
    },
    appliedVersions() {
      const out: Record<string, string> = {};
      for (const [name, version] of adoptedOnly) out[name] = version;
      for (const [name, intent] of intents) if (!nacked.has(name)) out[name] = intent.version;
      return out;
    },
    failedVersions() {
      const out: Record<string, string> = {};
      for (const [name, version] of nacked)
        if (intents.get(name)?.version === version) out[name] = version;
      return out;
    },
    onEvent: (cb) => void listeners.push(cb),
    async applyDelta(delta) {
      const facts = live.facts();
      const touched = new Set<string>();
      const errors: ObjectError[] = [];
      const ownedRefsOf = (name: string) => ownedByIntent.get(name) ?? [];
      /** Imports whose backends changed: rendered again unless upserted themselves. */
      const imports = new Set<string>();
      // This delta's answer speaks for its intents: no later "applied" of an older failure.
      for (const name of delta.removed) {
        nacked.delete(name);
        nackedRemovals.delete(name);
      }
      for (const intent of delta.upserted) {
        nacked.delete(intent.name);
        nackedRemovals.delete(intent.name);
      }
      for (const name of delta.removed) {
        for (const ref of forget(name)) touched.add(ref);
        const i = hold(name, undefined);
        if (i !== undefined) imports.add(i);
        adoptedOnly.delete(name);
        removed.add(name);
        for (const ref of ownedRefsOf(name)) touched.add(ref);
      }
      for (const intent of delta.upserted) {
        removed.delete(intent.name);
        adoptedOnly.delete(intent.name);
        const previous = intents.get(intent.name);
        if (previous !== undefined && serviceKey(previous) !== serviceKey(intent)) {
          for (const ref of forget(intent.name)) touched.add(ref);
        }
        const i = hold(intent.name, intent);
        if (i !== undefined) imports.add(i);
      }
      for (const intent of delta.upserted) {
        imports.delete(intent.name);
        const r = render(intent, facts);
        errors.push(...r.errors);
        // Every object of the intent is checked, not only the changed ones: an upsert is
        // how the hub asks "make it so", and a NACKed object must be retried.
        for (const ref of refsByIntent.get(intent.name) ?? []) touched.add(ref);
        for (const ref of r.refs) touched.add(ref);
        for (const ref of ownedRefsOf(intent.name)) touched.add(ref);
      }
      for (const name of imports) {
        const intent = intents.get(name);
        if (intent !== undefined) for (const ref of render(intent, facts).refs) touched.add(ref);
      }
      if (delta.complete && !complete) {
        // Pruning starts: every owned object outside the desired set goes. From now on what
        // leaves the desired set is touched where it leaves (removal, render, drift event).
        logger.info("first complete config applied: pruning enabled");
        complete = true;
        for (const ref of ownerOf.keys()) if (!desired.has(ref)) touched.add(ref);
      }
      const outcomes = await Promise.all(
        [...touched].map(async (ref) => [ref, await queue.enqueue(ref)] as const),
      );
      for (const [ref, outcome] of outcomes) {
        if (outcome.ok) continue;
        const { kind, namespace, name } = splitRef(ref);
        const owner =
          desired.get(ref)?.intentName ??
          intentNameOf(
            live.liveObject(kind, namespace, name) ?? { apiVersion: "", kind, metadata: { name } },
          ) ??
          "";
        errors.push({ intentName: owner, object: ref, message: outcome.message });
      }
      errors.sort(
        (a, b) => a.intentName.localeCompare(b.intentName) || a.object.localeCompare(b.object),
      );
      const removedNow = new Set(delta.removed);
      for (const e of errors) {
        const version = intents.get(e.intentName)?.version;
        if (removedNow.has(e.intentName)) nackedRemovals.add(e.intentName);
        else if (version !== undefined) nacked.set(e.intentName, version);
      }
      return { errors };
    },
    endpointsChanged(namespace, service) {
      const names = intentsByService.get(`${namespace}/${service}`);
      if (names === undefined || names.size === 0) return;
      const facts = live.facts();
      for (const name of names) {
        const intent = intents.get(name);
        if (intent === undefined) continue;
        for (const ref of render(intent, facts).refs) void queue.enqueue(ref);
        settleNacked(name);
      }
    },
    meshChanged() {
      const facts = live.facts();
      for (const intent of intents.values()) {
        for (const ref of render(intent, facts).refs) void queue.enqueue(ref);
        settleNacked(intent.name);
      }
    },
    objectChanged(obj, deleted = false) {
      track(obj, deleted);
      const ref = objectRef(obj);
      // The event shows the cluster holding the desired content (also a deletion's last
      // state): what comes next is someone else's doing, even before a reconcile saw it.
      const want = desired.get(ref);
      if (want !== undefined && liveHashOf(obj) === want.hash && hashOf(obj) === want.hash)
        want.held = true;
      if (want !== undefined || isOwned(obj)) void queue.enqueue(ref);
      const owner = intentNameOf(obj);
      if (deleted && owner !== undefined && nackedRemovals.has(owner)) {
        if (!ownedByIntent.has(owner) && !intents.has(owner)) {
          nackedRemovals.delete(owner);
          logger.info("refused removal completed on retry", { intent: owner });
          emit({ type: "removed", intentName: owner });
        }
      }
    },
    retryFailed() {
      const refs = [...failed];
      for (const ref of refs) void queue.enqueue(ref);
      return refs.length;
    },
    pruning: () => complete,
    idle: () => queue.idle(),
    stop: () => queue.stop(),
  };
}
