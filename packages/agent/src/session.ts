// The agent's session with the hub: connect (enrollment.ts gives the certificate), Hello
// and Welcome, the catalog (catalog-sender.ts), config deltas applied and answered with ACK or
// NACK, ApplyReports of what the reconciler did on its own; reconnects as hub-endpoints.ts
// says, and refuses a deposed leader's deltas (the term fence).
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import {
  type ClientBidiStream,
  type ConfigDelta,
  type ConnectRequestSchema,
  type ConnectResponseSchema,
  forEachMessage,
  GrpcError,
} from "@isthmus/proto";
import { createApplyReports } from "./apply-report.js";
import { createCatalogSender } from "./catalog-sender.js";
import type { Controller } from "./controller.js";
import { type Clock, createDebouncer } from "./debounce.js";
import type { Delay } from "./discovery/informer.js";
import { realDelay } from "./discovery/informer.js";
import { type Client, createEnrollment } from "./enrollment.js";
import { createFindingsSender, type FindingsSender } from "./findings-sender.js";
import { createHubEndpoints } from "./hub-endpoints.js";
import type { AgentIdentity, IdentityStore } from "./identity.js";
import type { PolicySource } from "./policy-source.js";

type Stream = ClientBidiStream<typeof ConnectRequestSchema, typeof ConnectResponseSchema>;

export type SessionState =
  | "idle"
  | "enrolling"
  | "connecting"
  | "connected"
  | "backoff"
  | "stopped";

export interface SessionOptions {
  clusterId: string;
  /** Hub address, host:port; several (the replicas of a highly available hub) separated by
   * commas: the agent tries them in turn and follows a follower's hint to the leader. */
  hubAddress: string;
  /** CA that issued the hub's server certificate (before enrollment gives the hub CA). */
  hubCaPem: string;
  /** One-time bootstrap token, needed only when the identity store is empty. */
  bootstrapToken?: string;
  /** TLS server name to verify instead of the address host. */
  serverNameOverride?: string;
  identityStore: IdentityStore;
  controller: Controller;
  /** This cluster's ConnectionPolicy objects, forwarded to the hub (policySource). */
  policySource?: PolicySource;
  agentVersion: string;
  logger?: Logger;
  /** Injected sleep for reconnect backoff. */
  delay?: Delay;
  /** Injected randomness for jitter, in [0, 1). */
  random?: () => number;
  now?: () => Date;
  /** Reconnect backoff: initial and maximum, in ms; full jitter. Default 500 ms .. 30 s. A
   * follower's hint to the leader is followed after at most `hintDelayMs` (default 100), random. */
  backoff?: { initialMs: number; maxMs: number };
  hintDelayMs?: number;
  /** Catalog deltas: trailing debounce window and maximum wait, in ms. Default 100 / 1000. */
  debounceMs?: number;
  maxDebounceMs?: number;
  /** Timers of the catalog debounce (tests inject a manual clock). */
  clock?: Clock;
  /** Observability hooks. */
  onState?: (state: SessionState) => void;
  onCatalogSent?: (update: { full: boolean; revision: bigint; entries: number }) => void;
  onConfigApplied?: (result: { nonce: string; ok: boolean; errors: number }) => void;
}

/** The agent's side of the hub protocol (DESIGN.md section 6). */
export interface Session {
  start(): void;
  stop(): Promise<void>;
  state(): SessionState;
  /** The last system version acknowledged. */
  systemVersion(): string;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share one session's state (stream, client, state, the acked version, the open session's callbacks); none is over 80 lines
export function createSession(options: SessionOptions): Session {
  const logger = (options.logger ?? silentLogger).child({
    module: "session",
    cluster: options.clusterId,
  });
  const delay = options.delay ?? realDelay;
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => new Date());
  const debounceMs = options.debounceMs ?? 100;
  const maxDebounceMs = options.maxDebounceMs ?? 1_000;
  const { controller } = options;
  const cache = controller.cache;

  let state: SessionState = "idle";
  let stopped = false;
  let loop: Promise<void> | undefined;
  let stream: Stream | undefined;
  let client: Client | undefined;
  let acked = "";
  // Where to connect, and how long to wait before: hub-endpoints.ts.
  const endpoints = createHubEndpoints({
    addresses: options.hubAddress,
    random,
    nowMs: () => now().getTime(),
    ...(options.hintDelayMs === undefined ? {} : { hintDelayMs: options.hintDelayMs }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
  });
  /** Highest leader term of a delta applied: a replica of a lower term was deposed. */
  let highestTerm = 0n;
  let wake: (() => void) | undefined;
  const setState = (s: SessionState) => {
    state = s;
    options.onState?.(s);
  };
  const { channel, credentials, scheduleRenewal } = createEnrollment(
    {
      ...options,
      target: () => endpoints.target(),
    },
    logger,
    now,
    () => setState("enrolling"),
  );

  /** One session: Hello, Welcome, snapshot, then deltas both ways until the stream ends. */
  async function runSession(identity: AgentIdentity): Promise<void> {
    setState("connecting");
    client = channel(identity);
    const s = client.connect();
    stream = s;
    let sending = Promise.resolve();
    const send = (m: Parameters<Stream["send"]>[0]) => {
      sending = sending.then(() => s.send(m));
      return sending;
    };

    const mesh = cache.mesh();
    // Hello carries what is applied and what failed: earlier reports of either are moot.
    reports.startSession();
    await send({
      message: {
        case: "hello",
        value: {
          clusterId: options.clusterId,
          agentVersion: options.agentVersion,
          mesh: mesh.facts,
          appliedVersions: controller.reconciler.appliedVersions(),
          failedVersions: controller.reconciler.failedVersions(),
          warnings: mesh.warnings,
        },
      },
    });
    const responses = s.responses[Symbol.asyncIterator]();
    const first = await responses.next();
    if (first.done || first.value.message.case !== "welcome") {
      throw new Error(
        `hub answered Hello with ${first.done ? "end of stream" : (first.value.message.case ?? "nothing")}, expected Welcome`,
      );
    }
    const welcome = first.value.message.value;
    if (welcome.leaderTerm < highestTerm)
      throw new Error(
        `hub replica of leader term ${welcome.leaderTerm} was deposed (term ${highestTerm} seen)`,
      );
    setState("connected");
    logger.info("connected to the hub", {
      session: welcome.sessionId,
      hub_version: welcome.hubVersion,
    });

    const catalog = createCatalogSender(cache, send, logger, options);
    await catalog.snapshot(welcome.maxCatalogEntries);
    const findings = createFindingsSender(controller, options.policySource, send, logger);
    await findings.sendAll();

    // Catalog deltas: trailing debounce with a bounded maximum wait.
    const debouncer = createDebouncer(catalog.flush, {
      windowMs: debounceMs,
      maxMs: maxDebounceMs,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
    const schedule = () => debouncer.trigger();
    const onMesh = () => {
      const m = cache.mesh();
      void send({
        message: { case: "statusReport", value: { mesh: m.facts, warnings: m.warnings } },
      }).catch(() => {});
    };
    const report = () => {
      for (const value of reports.take())
        void send({ message: { case: "applyReport", value } }).catch(() => {});
    };
    active = { schedule, onMesh, report, findings };
    schedule();
    reportSoon();

    try {
      // Not a `for await` loop, which would keep the last delta alive until the next one.
      await forEachMessage({ [Symbol.asyncIterator]: () => responses }, ({ message }) => {
        if (message.case === "configDelta") return applyConfig(message.value, send);
        // Listing the cluster can take a while: config deltas do not wait for it.
        if (message.case === "objectsRequest")
          void findings.answerObjects(message.value.requestId).catch(() => {});
        else logger.warn("unexpected message from the hub", { kind: message.case ?? "none" });
        return undefined;
      });
    } finally {
      active = undefined;
      debouncer.cancel();
    }
  }

  async function applyConfig(
    delta: ConfigDelta,
    send: (m: Parameters<Stream["send"]>[0]) => Promise<void>,
  ): Promise<void> {
    // Fencing: a delta of a lower term comes from a deposed leader; applying it could undo
    // what the newer leader pushed. Ending the session sends the agent to the leader.
    if (delta.leaderTerm < highestTerm)
      throw new Error(
        `config delta of leader term ${delta.leaderTerm} refused: term ${highestTerm} seen (deposed hub replica)`,
      );
    highestTerm = delta.leaderTerm;
    const report = await controller.reconciler.applyDelta({
      upserted: delta.upserted,
      removed: delta.removed,
      complete: delta.complete,
    });
    if (report.errors.length === 0) {
      acked = delta.systemVersion;
      await send({
        message: { case: "ack", value: { nonce: delta.nonce, systemVersion: delta.systemVersion } },
      });
      logger.info("config applied", {
        nonce: delta.nonce,
        system_version: delta.systemVersion,
        leader_term: String(delta.leaderTerm),
        upserted: delta.upserted.length,
        removed: delta.removed.length,
      });
    } else {
      const errors = report.errors.slice(0, 10_000).map((e) => ({
        intentName: e.intentName,
        object: e.object,
        message: e.message.slice(0, 4096),
      }));
      await send({
        message: {
          case: "nack",
          value: { nonce: delta.nonce, systemVersion: delta.systemVersion, errors },
        },
      });
      logger.warn("config refused in part", {
        nonce: delta.nonce,
        errors: report.errors.length,
        first: report.errors[0]?.message,
      });
    }
    options.onConfigApplied?.({
      nonce: delta.nonce,
      ok: report.errors.length === 0,
      errors: report.errors.length,
    });
  }

  let active:
    | { schedule(): void; onMesh(): void; report(): void; findings: FindingsSender }
    | undefined;

  // What the reconciler did on its own (a NACKed intent applied or removed on its retry
  // timer, a drift repair), sent as ApplyReports on the next tick while a session is open.
  const reports = createApplyReports();
  let reportTimer: NodeJS.Immediate | undefined;
  const reportSoon = () => {
    if (reportTimer !== undefined || active === undefined) return;
    reportTimer = setImmediate(() => {
      reportTimer = undefined;
      active?.report();
    });
  };
  controller.reconciler.onEvent((e) => {
    reports.add(e);
    reportSoon();
  });
  cache.onCatalog(() => active?.schedule());
  cache.onMesh(() => active?.onMesh());
  controller.conflicts.onChange(() => active?.findings.conflictsChanged());
  options.policySource?.onChange(() => active?.findings.policiesChanged());

  async function run(): Promise<void> {
    while (!stopped) {
      let welcomed = false;
      let failure: unknown;
      try {
        const identity = await credentials();
        if (stopped) break;
        const unwatch = scheduleRenewal(identity);
        try {
          await runSession(identity).finally(() => {
            welcomed = state === "connected";
          });
        } finally {
          unwatch();
        }
        if (!stopped) logger.warn("hub closed the stream");
      } catch (err) {
        if (stopped) break;
        failure = err;
        const e = err instanceof GrpcError ? `${err.codeName}: ${err.message}` : errorField(err);
        logger.warn("hub session failed", { err: e });
      } finally {
        stream = undefined;
        client?.close();
        client = undefined;
      }
      if (stopped) break;
      const next = endpoints.ended(welcomed, failure);
      if (next.redirect) {
        logger.info("following the hub leader", { leader: next.hint ?? "", wait_ms: next.waitMs });
      } else {
        setState("backoff");
        logger.info("reconnecting", { backoff_ms: next.waitMs, attempt: next.attempt });
      }
      await Promise.race([delay(next.waitMs), new Promise<void>((resolve) => (wake = resolve))]);
    }
    setState("stopped");
  }

  return {
    start() {
      if (loop !== undefined) return;
      stopped = false;
      loop = run();
    },
    async stop() {
      stopped = true;
      if (reportTimer !== undefined) clearImmediate(reportTimer);
      reportTimer = undefined;
      wake?.();
      stream?.cancel();
      client?.close();
      await loop;
      loop = undefined;
    },
    state: () => state,
    systemVersion: () => acked,
  };
}
