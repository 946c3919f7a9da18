// The reconciler: keeps the cluster's Istio objects equal to the rendered intents. Its parts:
// the desired set (desired-set.ts), the owned objects in the cluster (owned-index.ts), the
// write of one object (object-writer.ts), the work queue (queue.ts); here, what joins them:
// deltas from the hub, adoption, local re-renders, and the NACK record.
import { fromJsonString } from "@bufbuild/protobuf";
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import { type Intent, IntentSchema } from "@isthmus/proto";
import type { Delay } from "../discovery/informer.js";
import { liveHashOf } from "../discovery/objects.js";
import { isKubeApiError, type KubeClient } from "../kube/client.js";
import { type KubeObject, objectRef } from "../kube-object.js";
import type { LocalFacts } from "../local-facts.js";
import { INTENT_SOURCE_ANNOTATION, INTENT_VERSION_ANNOTATION, isOwned } from "../ownership.js";
import type { ObjectError } from "../render/types.js";
import { createDesiredSet, hashOf, intentNameOf, type Outcome, splitRef } from "./desired-set.js";
import type { DriftRepair } from "./drift.js";
import { createObjectWriter } from "./object-writer.js";
import { createOwnedIndex } from "./owned-index.js";
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
 * Long as a closure, not as one job: its inner functions share the desired set, the owned index,
 * the NACK record and the work queue; none is over about 80 lines.
 */
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

  const set = createDesiredSet(() => live.facts());
  const {
    intents,
    adoptedOnly,
    removed,
    desired,
    refsByIntent,
    intentsByService,
    renderFailed,
    hold,
    serviceKey,
    render,
    forget,
  } = set;
  const { ownedByIntent, ownerOf, track } = createOwnedIndex();
  const { reconcileOnce } = createObjectWriter({
    client,
    live,
    set,
    fieldManager,
    delay,
    maxAttempts,
    initialMs,
    maxMs,
    logger,
    onWrite: options.onWrite,
    now,
    emit,
  });

  /** Intents reported with errors (NACK), name -> version, until all their objects apply. */
  const nacked = new Map<string, string>();
  /** Intents whose removal was reported with errors, until their objects are gone. */
  const nackedRemovals = new Set<string>();

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

  const queue = createWorkQueue<Outcome>(reconcile, {
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    onError: (_key, err) => ({
      ok: false,
      message: isKubeApiError(err) ? err.message : errorField(err),
    }),
  });

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
      if (delta.complete && !set.complete) {
        // Pruning starts: every owned object outside the desired set goes. From now on what
        // leaves the desired set is touched where it leaves (removal, render, drift event).
        logger.info("first complete config applied: pruning enabled");
        set.complete = true;
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
    pruning: () => set.complete,
    idle: () => queue.idle(),
    stop: () => queue.stop(),
  };
}
