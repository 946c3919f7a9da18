// Delivery of intents to connected agents: per session, the versions the agent has
// applied and those it refused; on every change, a diff between the engine's desired set and
// those versions (sent on the next tick when the cluster was idle, debounced during bursts),
// at most one delta in flight, ACK/NACK and apply-report tracking, convergence measurement.
// One closure over the per-session state (delivery-state.ts) that every one of these parts
// reads and writes.
import { randomUUID } from "node:crypto";
import type { Logger } from "@isthmus/logging";
import type { DriftRepair, Intent, NackRecord, ResourceError } from "@isthmus/proto";
import {
  type History,
  type InFlight,
  MAX_DRIFT_REPAIRS,
  MAX_NACKS,
  newHistory,
  REMOVAL,
  type Sender,
  type Session,
  type SessionView,
  type Tracker,
} from "./delivery-state.js";

export type { Sender, SessionView } from "./delivery-state.js";

export interface DistributorOptions {
  /** A change to a cluster that was sent nothing within the last `windowMs` goes out on the
   * next tick (a timer of 0 ms). Otherwise (a burst) it waits for `windowMs` without
   * changes, at most `maxMs` after the first change. */
  debounce: { windowMs: number; maxMs: number };
  /** The desired intents of a cluster, by name. */
  desired(clusterId: string): ReadonlyMap<string, Intent>;
  /** Current system version. */
  systemVersion(): string;
  /** Whether removals, and changes of intents the agent holds, may be sent (false during
   * warm-up: computed from the catalogs of the clusters that reconnected so far, a change of a
   * held intent could replace or remove its objects, e.g. an ALLOW policy that names remote
   * identities not reported yet; new intents only add objects and go out at once). */
  removalsAllowed(): boolean;
  logger: Logger;
  metrics: {
    deltaSent(clusterId: string): void;
    debounced(seconds: number): void;
    pushed(seconds: number): void;
    nack(clusterId: string): void;
    converged(seconds: number): void;
  };
  /** Most intents upserted by one delta (default 5000, about 1 MB): a larger change goes out
   * in several deltas, the next when the previous one is ACKed; only the last says
   * `complete`. */
  maxIntentsPerDelta?: number;
  now?: () => number;
  /** Default: `setTimeout`, and `setImmediate` for 0 ms. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share the sessions and histories; none is over 80 lines
export function createDistributor(options: DistributorOptions) {
  const now = options.now ?? Date.now;
  const setTimer =
    options.setTimer ??
    ((fn: () => void, ms: number): unknown =>
      ms <= 0 ? { immediate: setImmediate(fn) } : setTimeout(fn, ms));
  const clearTimer =
    options.clearTimer ??
    ((t: unknown) => {
      if (typeof t === "object" && t !== null && "immediate" in t)
        clearImmediate(t.immediate as NodeJS.Immediate);
      else clearTimeout(t as NodeJS.Timeout);
    });
  const maxIntents = options.maxIntentsPerDelta ?? 5000;
  const sessions = new Map<string, Session>();
  const histories = new Map<string, History>();
  const log = options.logger;

  function flush(s: Session): void {
    if (s.timer !== undefined) clearTimer(s.timer);
    s.timer = undefined;
    s.timerLeading = false;
    if (s.inFlight !== undefined || sessions.get(s.clusterId) !== s) return;
    const since = s.dirtySince;
    s.dirtySince = undefined;
    const desired = options.desired(s.clusterId);
    const removals = options.removalsAllowed();
    let upserted: Intent[] = [];
    const removed: string[] = [];
    const compare = (name: string, intent: Intent | undefined) => {
      if (intent === undefined) {
        if (removals && (s.applied.has(name) || s.refused.has(name))) removed.push(name);
      } else if (
        s.applied.get(name) !== intent.version &&
        s.refused.get(name)?.version !== intent.version &&
        (removals || !s.applied.has(name))
      ) {
        upserted.push(intent);
      }
    };
    if (s.dirty === "all") {
      // forEach: a for-of over entries allocates a pair per entry.
      desired.forEach((intent, name) => {
        compare(name, intent);
      });
      if (removals) {
        for (const name of s.applied.keys()) if (!desired.has(name)) removed.push(name);
        for (const name of s.refused.keys())
          if (!desired.has(name) && !s.applied.has(name)) removed.push(name);
      }
    } else {
      for (const name of s.dirty) compare(name, desired.get(name));
    }
    // Removals withheld during warm-up are found by the full comparison at its end. A change
    // too large for one delta leaves the rest for the next (sent on the ACK); the agent
    // prunes nothing before a complete delta, so only the last chunk says complete.
    const rest = upserted.slice(maxIntents);
    if (rest.length > 0) upserted = upserted.slice(0, maxIntents);
    s.dirty = new Set(rest.map((i) => i.name));
    const complete = removals && rest.length === 0;
    if (upserted.length === 0 && removed.length === 0 && (s.sentComplete || !removals)) {
      // Nothing to say: the trackers waiting on this cluster are satisfied.
      settle(s.clusterId, s.trackers);
      s.trackers = [];
      return;
    }
    const nonce = randomUUID();
    const systemVersion = options.systemVersion();
    const inFlight: InFlight = {
      nonce,
      systemVersion,
      sentAt: now(),
      upserted,
      removed,
      // Convergence is measured to the ACK of the change's last delta.
      trackers: rest.length === 0 ? s.trackers : [],
    };
    if (rest.length === 0) s.trackers = [];
    else s.dirtySince = now();
    s.inFlight = inFlight;
    s.lastSent = inFlight.sentAt;
    if (complete) s.sentComplete = true;
    if (since !== undefined) options.metrics.debounced((now() - since) / 1000);
    const delta = { nonce, systemVersion, upserted, removed, complete };
    options.metrics.deltaSent(s.clusterId);
    log.debug("config delta sent", {
      cluster: s.clusterId,
      nonce,
      upserted: upserted.length,
      removed: removed.length,
      complete,
    });
    s.sender.send(delta).catch((err: unknown) => {
      log.warn("config delta not sent", { cluster: s.clusterId, nonce, err: String(err) });
    });
  }

  function settle(clusterId: string, trackers: Tracker[]): void {
    for (const t of trackers) {
      t.remaining.delete(clusterId);
      if (t.remaining.size === 0) options.metrics.converged((now() - t.origin) / 1000);
    }
  }

  function schedule(s: Session, names: Iterable<string> | undefined): void {
    if (names === undefined) s.dirty = "all";
    else if (s.dirty !== "all") for (const name of names) s.dirty.add(name);
    const t = now();
    if (s.dirtySince === undefined) s.dirtySince = t;
    if (s.inFlight !== undefined) return; // flushed when the ACK arrives
    if (s.timer !== undefined) {
      if (s.timerLeading) return; // goes out on the next tick anyway
      clearTimer(s.timer);
    } else if (s.lastSent === undefined || t - s.lastSent >= options.debounce.windowMs) {
      // Idle: nothing sent within the last window, so no burst to gather.
      s.timerLeading = true;
      s.timer = setTimer(() => flush(s), 0);
      return;
    }
    const waited = t - s.dirtySince;
    const wait = Math.max(0, Math.min(options.debounce.windowMs, options.debounce.maxMs - waited));
    s.timer = setTimer(() => flush(s), wait);
  }

  return {
    /** Starts delivering to a new session of `clusterId`; `applied` and `failed` (intents the
     * agent holds but could not apply in full) come from Hello. */
    open(
      clusterId: string,
      sender: Sender,
      applied: Map<string, string>,
      failed: ReadonlyMap<string, string> = new Map(),
    ): void {
      const previous = sessions.get(clusterId);
      if (previous !== undefined && previous.timer !== undefined) clearTimer(previous.timer);
      const history = histories.get(clusterId) ?? newHistory();
      history.refused = new Map();
      failed.forEach((version, name) => {
        history.refused.set(name, {
          version,
          errors: [
            {
              intentName: name,
              object: "",
              message: "not applied in full when the agent connected; it keeps retrying",
            } as ResourceError,
          ],
        });
      });
      const s: Session = {
        clusterId,
        sender,
        applied,
        refused: history.refused,
        inFlight: undefined,
        dirty: "all",
        dirtySince: undefined,
        timer: undefined,
        timerLeading: false,
        lastSent: undefined,
        trackers: [],
        sentComplete: false,
        history,
      };
      histories.set(clusterId, s.history);
      sessions.set(clusterId, s);
      flush(s);
    },
    /** Stops delivering to the session that `sender` opened (a newer session is kept). */
    close(clusterId: string, sender: Sender): void {
      const s = sessions.get(clusterId);
      if (s === undefined || s.sender !== sender) return;
      if (s.timer !== undefined) clearTimer(s.timer);
      settle(clusterId, [...s.trackers, ...(s.inFlight?.trackers ?? [])]);
      sessions.delete(clusterId);
    },
    /**
     * Marks clusters whose desired set may have changed; `origins` are the times of the
     * catalog changes behind it (one convergence measurement each). `names`, when given,
     * lists a cluster's intents that changed (the engine's deltas name them), so that only
     * those are compared; otherwise the whole set is.
     */
    changed(
      clusterIds: Iterable<string>,
      origins: readonly number[] = [],
      names?: (clusterId: string) => Iterable<string>,
    ): void {
      const targets = [...clusterIds].map((id) => sessions.get(id)).filter((s) => s !== undefined);
      if (targets.length > 0) {
        for (const origin of origins) {
          const tracker = { origin, remaining: new Set(targets.map((s) => s.clusterId)) };
          for (const s of targets) s.trackers.push(tracker);
        }
      }
      for (const s of targets) schedule(s, names?.(s.clusterId));
    },
    /** Marks every connected cluster (policy change, end of warm-up). */
    changedAll(): void {
      for (const s of sessions.values()) schedule(s, undefined);
    },
    ack(clusterId: string, nonce: string): boolean {
      const s = sessions.get(clusterId);
      const f = s?.inFlight;
      if (s === undefined || f === undefined || f.nonce !== nonce) return false;
      for (const { name, version } of f.upserted) {
        s.applied.set(name, version);
        s.refused.delete(name);
      }
      for (const name of f.removed) {
        s.applied.delete(name);
        s.refused.delete(name);
      }
      s.inFlight = undefined;
      s.history.ackedVersion = f.systemVersion;
      options.metrics.pushed((now() - f.sentAt) / 1000);
      settle(clusterId, f.trackers);
      if (s.dirtySince !== undefined) flush(s);
      return true;
    },
    nack(
      clusterId: string,
      nonce: string,
      errors: { intentName: string; object: string; message: string }[],
    ): boolean {
      const s = sessions.get(clusterId);
      const f = s?.inFlight;
      if (s === undefined || f === undefined || f.nonce !== nonce) return false;
      const byIntent = new Map<string, ResourceError[]>();
      for (const e of errors) {
        const list = byIntent.get(e.intentName);
        if (list === undefined) byIntent.set(e.intentName, [e as ResourceError]);
        else list.push(e as ResourceError);
      }
      for (const { name, version } of f.upserted) {
        const why = byIntent.get(name);
        if (why === undefined) {
          s.applied.set(name, version);
          s.refused.delete(name);
        } else s.refused.set(name, { version, errors: why });
      }
      for (const name of f.removed) {
        const why = byIntent.get(name);
        if (why === undefined) s.refused.delete(name);
        else s.refused.set(name, { version: REMOVAL, errors: why });
        s.applied.delete(name);
      }
      s.inFlight = undefined;
      s.history.nacks.unshift({
        nonce,
        time: { seconds: BigInt(Math.floor(now() / 1000)), nanos: 0 },
        errors: errors.map((e) => `${e.intentName}: ${e.object}: ${e.message}`),
      } as NackRecord);
      s.history.nacks.length = Math.min(s.history.nacks.length, MAX_NACKS);
      options.metrics.nack(clusterId);
      settle(clusterId, f.trackers);
      if (s.dirtySince !== undefined) flush(s);
      return true;
    },
    /**
     * What the agent did on its own (ApplyReport): intents it NACKed and applied since, at
     * the version it names, and intents whose refused removal it completed. The record of what
     * the agent holds follows, and the names are compared again (a refused intent that left
     * the desired set meanwhile is removed now).
     */
    report(clusterId: string, applied: Readonly<Record<string, string>>, removed: string[]): void {
      const s = sessions.get(clusterId);
      if (s === undefined) return;
      const names: string[] = [];
      for (const [name, version] of Object.entries(applied)) {
        s.applied.set(name, version);
        if (s.refused.get(name)?.version === version) s.refused.delete(name);
        names.push(name);
      }
      for (const name of removed) {
        s.applied.delete(name);
        if (s.refused.get(name)?.version === REMOVAL) s.refused.delete(name);
        names.push(name);
      }
      if (names.length > 0) schedule(s, names);
    },
    /** Drift repairs an agent reported, for status. */
    driftRepaired(clusterId: string, repairs: readonly DriftRepair[]): void {
      const h = histories.get(clusterId);
      if (h === undefined || repairs.length === 0) return;
      h.driftRepairCount += repairs.length;
      h.driftRepairs.unshift(...repairs.slice(-MAX_DRIFT_REPAIRS).reverse());
      h.driftRepairs.length = Math.min(h.driftRepairs.length, MAX_DRIFT_REPAIRS);
    },
    view(clusterId: string): SessionView {
      const h = histories.get(clusterId) ?? newHistory();
      const s = sessions.get(clusterId);
      const refused = [...h.refused.keys()].sort().flatMap((name) => h.refused.get(name)!.errors);
      return {
        ackedVersion: h.ackedVersion,
        nacks: h.nacks,
        refused,
        driftRepairs: h.driftRepairs,
        driftRepairCount: h.driftRepairCount,
        pendingNonce: s?.inFlight?.nonce ?? "",
        inSync:
          s !== undefined &&
          s.inFlight === undefined &&
          s.dirtySince === undefined &&
          s.refused.size === 0 &&
          (s.sentComplete || !options.removalsAllowed()),
      };
    },
    /** Forgets a deleted cluster's history. */
    forget(clusterId: string): void {
      histories.delete(clusterId);
    },
    connected(): string[] {
      return [...sessions.keys()];
    },
    stop(): void {
      for (const s of sessions.values()) if (s.timer !== undefined) clearTimer(s.timer);
      sessions.clear();
    },
  };
}

export type Distributor = ReturnType<typeof createDistributor>;
