// The DefaultAccessIntent, expanded here: the hub sends one per cluster instead of one
// AccessIntent per service that no rule names, and the agent turns it into the AccessIntent
// each such local Service would have had (no principals allowed or denied), under the same
// name, `access/<namespace>/<service>`. The reconciler behind sees the intents it always saw,
// so objects, ownership and drift repair are unchanged; what the agent reports to the hub
// names the DefaultAccessIntent instead of the expanded ones, which the hub does not know.
// Expanding here also means that a new Service in the mesh is covered as soon as the agent
// sees it, before the hub has heard of it: a default that denies holds from the first moment.
import { createHash } from "node:crypto";
import {
  accessIntentName,
  DEFAULT_ACCESS_INTENT_NAME as DEFAULT_ACCESS_NAME,
  type Intent,
  serviceOfAccessIntentName,
} from "@isthmus/proto";
import type { ApplyReport, DeltaInput, Reconciler, ReconcilerEvent } from "./reconciler.js";

/** The local Services a DefaultAccessIntent covers (see ClusterCache.accessTarget). */
export interface AccessTargets {
  accessTarget(namespace: string, service: string): Readonly<Record<string, string>> | undefined;
  accessTargets(): Map<string, Readonly<Record<string, string>>>;
}

export interface DefaultAccessReconciler extends Reconciler {
  /** A local Service, or its namespace, changed: cover it or stop covering it. */
  serviceChanged(namespace: string, service: string): Promise<void>;
}

/** A key of `AccessTargets.accessTargets()`, `namespace/service`, split in its two parts. */
function splitServiceKey(key: string): [namespace: string, service: string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}
const accessNameOf = (key: string) => accessIntentName(...splitServiceKey(key));
function keyOfAccessName(name: string): string | undefined {
  const service = serviceOfAccessIntentName(name);
  return service && `${service.namespace}/${service.service}`;
}

/** Wraps a reconciler so that it applies DefaultAccessIntents as per-service AccessIntents. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share the default intent, the named intents and the expanded ones; none is over 80 lines
export function withDefaultAccess(
  inner: Reconciler,
  targets: AccessTargets,
): DefaultAccessReconciler {
  let defaultIntent: Intent | undefined;
  /** Names of the hub's own AccessIntents: the default leaves those services alone. */
  const named = new Set<string>();
  /** Expanded intents handed to the reconciler, by name. */
  const expanded = new Map<string, Intent>();

  /** The expanded intent a Service should have now, if any. */
  function wanted(key: string, selector = targetOf(key)): Intent | undefined {
    const d = defaultIntent;
    const name = accessNameOf(key);
    if (d?.kind.case !== "defaultAccessIntent" || selector === undefined || named.has(name)) {
      return undefined;
    }
    return expand(d, key, selector);
  }

  function targetOf(key: string) {
    return targets.accessTarget(...splitServiceKey(key));
  }

  /** Brings the expanded intents of `keys` up to date, adding the changes to `out`. */
  function refresh(keys: Iterable<string>, out: { upserted: Intent[]; removed: string[] }): void {
    for (const key of keys) {
      const name = accessNameOf(key);
      const next = wanted(key);
      const current = expanded.get(name);
      if (next !== undefined) {
        if (current?.version === next.version) continue;
        expanded.set(name, next);
        out.upserted.push(next);
        const at = out.removed.indexOf(name);
        if (at >= 0) out.removed.splice(at, 1);
      } else if (current !== undefined) {
        expanded.delete(name);
        if (!named.has(name)) out.removed.push(name);
      }
    }
  }

  const isExpanded = (name: string) => expanded.has(name);
  const mapName = (name: string) => (isExpanded(name) ? DEFAULT_ACCESS_NAME : name);

  function mapReport(report: ApplyReport): ApplyReport {
    return { errors: report.errors.map((e) => ({ ...e, intentName: mapName(e.intentName) })) };
  }

  let local = Promise.resolve();

  return {
    ...inner,
    async applyDelta(delta: DeltaInput) {
      // Without a default, no intent is expanded: every AccessIntent held is the hub's
      // (after a restart, the adopted ones too). The hub's delta removes those it does not
      // want, which include what an earlier run of the agent had expanded.
      if (defaultIntent === undefined) {
        const held = { ...inner.appliedVersions(), ...inner.failedVersions() };
        for (const name of Object.keys(held)) if (keyOfAccessName(name)) named.add(name);
      }
      const upserted: Intent[] = [];
      const removed: string[] = [];
      const keys = new Set<string>();
      let defaultChanged = false;
      for (const name of delta.removed) {
        if (name === DEFAULT_ACCESS_NAME) {
          defaultChanged = defaultIntent !== undefined;
          defaultIntent = undefined;
          continue;
        }
        removed.push(name);
        named.delete(name);
        const key = keyOfAccessName(name);
        if (key !== undefined) keys.add(key);
      }
      for (const intent of delta.upserted) {
        if (intent.name === DEFAULT_ACCESS_NAME) {
          defaultChanged = defaultIntent?.version !== intent.version;
          defaultIntent = intent;
          continue;
        }
        upserted.push(intent);
        if (intent.kind.case === "accessIntent") {
          named.add(intent.name);
          // The hub's intent replaces the expanded one of the same name.
          expanded.delete(intent.name);
        }
      }
      if (defaultChanged) {
        for (const key of targets.accessTargets().keys()) keys.add(key);
        for (const name of expanded.keys()) keys.add(keyOfAccessName(name)!);
      }
      const out = { upserted, removed };
      refresh(keys, out);
      return mapReport(await inner.applyDelta({ ...out, complete: delta.complete }));
    },
    serviceChanged(namespace, service) {
      const out = { upserted: [] as Intent[], removed: [] as string[] };
      refresh([`${namespace}/${service}`], out);
      if (out.upserted.length === 0 && out.removed.length === 0) return local;
      // Local changes apply one after the other; their errors come back as retries and
      // ApplyReports like any refused object's.
      local = local.then(() => inner.applyDelta({ ...out, complete: false }).then(() => {}));
      return local;
    },
    appliedVersions() {
      const out: Record<string, string> = {};
      for (const [name, version] of Object.entries(inner.appliedVersions())) {
        if (!isExpanded(name)) out[name] = version;
      }
      const failed = Object.keys(inner.failedVersions()).some(isExpanded);
      if (defaultIntent !== undefined && !failed) out[DEFAULT_ACCESS_NAME] = defaultIntent.version;
      return out;
    },
    failedVersions() {
      const out: Record<string, string> = {};
      for (const [name, version] of Object.entries(inner.failedVersions())) {
        if (!isExpanded(name)) out[name] = version;
        else if (defaultIntent !== undefined) out[DEFAULT_ACCESS_NAME] = defaultIntent.version;
      }
      return out;
    },
    onEvent(cb: (event: ReconcilerEvent) => void) {
      inner.onEvent((event) => {
        if (event.type === "drift") {
          const intentName = mapName(event.repair.intentName);
          cb({ type: "drift", repair: { ...event.repair, intentName } });
        } else if (!isExpanded(event.intentName)) cb(event);
        else if (
          event.type === "applied" &&
          defaultIntent !== undefined &&
          !Object.keys(inner.failedVersions()).some(isExpanded)
        ) {
          cb({ type: "applied", intentName: DEFAULT_ACCESS_NAME, version: defaultIntent.version });
        }
      });
    },
  };
}

/**
 * The intents a cluster's reconciler gets from a hub's set: the DefaultAccessIntent expanded
 * for every target no AccessIntent names. For tests and benchmarks that render what the
 * engine decided without a reconciler.
 */
export function expandDefaultAccess(
  intents: Iterable<Intent>,
  targets: ReadonlyMap<string, Readonly<Record<string, string>>>,
): Intent[] {
  const out: Intent[] = [];
  const named = new Set<string>();
  let d: Intent | undefined;
  for (const intent of intents) {
    if (intent.name === DEFAULT_ACCESS_NAME) d = intent;
    else out.push(intent);
    if (intent.kind.case === "accessIntent") named.add(intent.name);
  }
  if (d === undefined) return out;
  for (const [key, selector] of targets) {
    if (!named.has(accessNameOf(key))) out.push(expand(d, key, selector));
  }
  return out;
}

/** The AccessIntent of one Service under the default: nobody named, local callers as the
 * default says. Its version follows the default's and the Service's selector. */
function expand(d: Intent, key: string, selector: Readonly<Record<string, string>>): Intent {
  if (d.kind.case !== "defaultAccessIntent") throw new Error("not a DefaultAccessIntent");
  const [namespace, service] = splitServiceKey(key);
  const sorted = Object.fromEntries(
    Object.entries(selector).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  const version = createHash("sha256")
    .update(JSON.stringify([d.version, key, sorted]))
    .digest("hex")
    .slice(0, 16);
  return {
    $typeName: "isthmus.v1.Intent",
    name: accessIntentName(namespace, service),
    version,
    kind: {
      case: "accessIntent",
      value: {
        $typeName: "isthmus.v1.AccessIntent",
        namespace,
        service,
        selector: sorted,
        allow: [],
        deny: [],
        allowLocalTrustDomain: d.kind.value.allowLocalTrustDomain,
      },
    },
  };
}
