// The desired set: the intents the agent holds (from the hub, or adopted from the cluster),
// the objects they render to, and the indexes that find an intent's objects, the intents
// that read a Service's endpoints, and an import's backends.
import type { ImportBackend, Intent } from "@isthmus/proto";
import { type KubeObject, objectRef } from "../kube-object.js";
import type { LocalFacts } from "../local-facts.js";
import { CONTENT_HASH_ANNOTATION, INTENT_NAME_ANNOTATION } from "../ownership.js";
import { dependsOnLocalEndpoints, importOf, renderIntent } from "../render/index.js";
import type { ObjectError } from "../render/types.js";

export type Outcome = { ok: true } | { ok: false; message: string };

export interface Desired {
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

export const hashOf = (o: KubeObject) => o.metadata.annotations?.[CONTENT_HASH_ANNOTATION];

export function intentNameOf(obj: KubeObject): string | undefined {
  return obj.metadata.annotations?.[INTENT_NAME_ANNOTATION];
}

export function splitRef(ref: string): { kind: string; namespace: string; name: string } {
  const space = ref.indexOf(" ");
  const slash = ref.indexOf("/", space);
  return {
    kind: ref.slice(0, space),
    namespace: ref.slice(space + 1, slash),
    name: ref.slice(slash + 1),
  };
}

export type DesiredSet = ReturnType<typeof createDesiredSet>;

/** An empty desired set; `facts` reads the local facts when an object is rendered again.
 * Long as a closure, not as one job: its inner functions share the desired set's maps; none is
 * over about 80 lines.
 */
export function createDesiredSet(facts: () => LocalFacts) {
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
    i.kind.case === undefined || i.kind.case === "defaultAccessIntent"
      ? undefined
      : `${i.kind.value.namespace}/${i.kind.value.service}`;

  function isDesiredIntent(name: string): boolean {
    return intents.has(name) || adoptedOnly.has(name);
  }

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

  /** A written object again, from its intent (rendering is pure: the same intent, backends and
   * facts give the same object). Facts that changed since give the object as it should be now;
   * its hash is then the desired one. */
  function renderAgain(ref: string, want: Desired): KubeObject | undefined {
    const intent = intents.get(want.intentName);
    if (intent === undefined) return undefined;
    const backends = backendsByImport.get(intent.name);
    const { objects } = renderIntent(
      intent,
      facts(),
      backends === undefined ? [] : [...backends.values()],
    );
    const object = objects.find((o) => objectRef(o) === ref);
    if (object !== undefined) want.hash = hashOf(object);
    return object;
  }

  return {
    intents,
    adoptedOnly,
    removed,
    desired,
    refsByIntent,
    kept,
    intentsByService,
    backendsByImport,
    renderFailed,
    /** A complete delta was applied: owned objects outside the desired set are pruned. */
    complete: false,
    hold,
    serviceKey,
    isDesiredIntent,
    render,
    forget,
    renderAgain,
  };
}
