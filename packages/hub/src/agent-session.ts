// AgentService.Connect: one agent's session. Hello opens it (catalog, delivery), then
// catalog updates, status and apply reports, ACKs and NACKs; the end of the stream starts
// the cluster's grace period.
import { randomUUID } from "node:crypto";
import { errorField, type Logger } from "@isthmus/logging";
import {
  type AgentService,
  type ApplyReport,
  type CatalogUpdate,
  Code,
  GrpcError,
  type Hello,
  type ServiceHandlers,
  type StatusReport,
} from "@isthmus/proto";
import { onConflictReport, onObjectsReport, onPolicySourceReport } from "./agent-findings.js";
import { acceptTrustDomain, catalogProblems, rejected } from "./agent-reports.js";
import { emptyCatalog, mergeCatalog, meshFacts, startGrace } from "./cluster-catalog.js";
import type { ClusterCatalog, SessionContext } from "./context.js";
import type { Sender } from "./distributor.js";
import { notLeader } from "./replica-role.js";
import { HUB_VERSION } from "./version.js";

type Connect = ServiceHandlers<(typeof AgentService)["method"]>["connect"];
type ConnectStream = Parameters<Connect>[0];

/** One agent stream: who, and what the hub holds of it. */
interface AgentStream {
  clusterId: string;
  sessionId: string;
  log: Logger;
  /** Ends the stream (a replacing session, the cluster's deletion, a refused update). */
  abort: AbortController;
  sender: Sender;
  send: ConnectStream["send"];
  /** Set by hello. */
  cat: ClusterCatalog | undefined;
  lastRevision: bigint;
  /** Ends the hub's asking this session for its cluster's objects. */
  detachObjects: () => void;
}

/** The Connect handler; `snapshotReceived` is called on each full catalog snapshot. */
/**
 * Fencing: a delta goes out only while this replica still leads in the term the stream began
 * in (checked by the local clock against the lease), and names that term, so that an agent
 * refuses a deposed leader's delta after a newer leader's.
 */
function fencedSender(
  ctx: SessionContext,
  abort: AbortController,
  send: (delta: Parameters<Sender["send"]>[0] & { leaderTerm: bigint }) => Promise<void>,
): Sender {
  const term = ctx.leadership.view().term;
  return {
    send: (delta) => {
      if (!ctx.leadership.leading() || ctx.leadership.view().term !== term) {
        const e = notLeader(ctx.leadership);
        abort.abort(e);
        return Promise.reject(e);
      }
      return send({ ...delta, leaderTerm: term });
    },
  };
}

export function createConnectHandler(
  ctx: SessionContext,
  hooks: { snapshotReceived(): void },
): Connect {
  const log = ctx.logger.child({ module: "agents" });
  return async function connect(stream, call) {
    const clusterId = ctx.verifyAgent(call);
    const sessionId = randomUUID();
    const abort = new AbortController();
    ctx.streams.get(clusterId)?.abort();
    ctx.streams.set(clusterId, abort);
    const s: AgentStream = {
      clusterId,
      sessionId,
      log: log.child({ cluster: clusterId, session: sessionId }),
      abort,
      sender: fencedSender(ctx, abort, (delta) =>
        stream.send({ message: { case: "configDelta", value: delta } }),
      ),
      send: (m) => stream.send(m),
      cat: undefined,
      lastRevision: 0n,
      detachObjects: () => {},
    };
    const iterator = stream.requests[Symbol.asyncIterator]();
    // A message that breaks the contract (protovalidate rules) fails the iterator.
    const nextRequest = () =>
      iterator.next().catch((err: unknown) => {
        const e = GrpcError.from(err);
        throw e.code === Code.INVALID_ARGUMENT ? rejected(ctx, clusterId, "contract", e) : e;
      });
    const aborted = abortedPromise(abort);
    try {
      for (;;) {
        const next = await Promise.race([nextRequest(), aborted]);
        if (next.done) break;
        const msg = next.value.message;
        const cat = s.cat;
        if (cat === undefined) {
          if (msg.case !== "hello")
            throw new GrpcError(
              Code.FAILED_PRECONDITION,
              "the first message of a stream must be hello",
            );
          await onHello(ctx, s, msg.value);
          continue;
        }
        switch (msg.case) {
          case "hello":
            throw new GrpcError(Code.FAILED_PRECONDITION, "hello sent twice");
          case "catalogUpdate":
            onCatalogUpdate(ctx, s, cat, msg.value, hooks);
            break;
          case "statusReport":
            await onStatusReport(ctx, s, cat, msg.value);
            break;
          case "applyReport":
            onApplyReport(ctx, s, cat, msg.value);
            break;
          case "conflictReport":
            onConflictReport(ctx, s, cat, msg.value);
            break;
          case "objectsReport":
            onObjectsReport(ctx, s, cat, msg.value);
            break;
          case "policySourceReport":
            await onPolicySourceReport(ctx, s, cat, msg.value);
            break;
          case "ack":
            cat.lastSeen = ctx.now();
            if (!ctx.distributor.ack(clusterId, msg.value.nonce))
              s.log.warn("ack of unknown nonce", { nonce: msg.value.nonce });
            break;
          case "nack":
            cat.lastSeen = ctx.now();
            s.log.warn("config delta refused", {
              nonce: msg.value.nonce,
              errors: msg.value.errors.length,
            });
            if (!ctx.distributor.nack(clusterId, msg.value.nonce, msg.value.errors)) {
              s.log.warn("nack of unknown nonce", { nonce: msg.value.nonce });
            }
            break;
        }
      }
    } catch (err) {
      // The hub's own shutdown ends every stream (hub.ts close): expected, not a failure.
      if (err === abort.signal.reason && GrpcError.from(err).code === Code.UNAVAILABLE)
        s.log.info("agent stream closed", { err: errorField(err) });
      else s.log.warn("agent stream failed", { err: errorField(err) });
      throw err;
    } finally {
      endStream(ctx, s);
    }
  };
}

/** Rejects when the stream is aborted, with the abort's reason. */
function abortedPromise(abort: AbortController): Promise<never> {
  const aborted = new Promise<never>((_, reject) => {
    abort.signal.addEventListener(
      "abort",
      () =>
        reject(
          abort.signal.reason instanceof GrpcError
            ? abort.signal.reason
            : new GrpcError(Code.ABORTED, "session replaced or cluster deleted"),
        ),
      { once: true },
    );
  });
  aborted.catch(() => {});
  return aborted;
}

/** Opens the session: the cluster's catalog (kept from before, or new), Welcome, delivery. */
async function onHello(ctx: SessionContext, s: AgentStream, hello: Hello): Promise<void> {
  if (s.cat !== undefined) throw new GrpcError(Code.FAILED_PRECONDITION, "hello sent twice");
  if (hello.clusterId !== s.clusterId) {
    throw new GrpcError(
      Code.PERMISSION_DENIED,
      `hello names cluster "${hello.clusterId}" but the certificate is for "${s.clusterId}"`,
    );
  }
  if (hello.mesh !== undefined)
    await acceptTrustDomain(ctx, s.clusterId, hello.mesh.trustDomain, "hello.mesh.trust_domain");
  const cat = ctx.catalogs.get(s.clusterId) ?? emptyCatalog();
  ctx.catalogs.set(s.clusterId, cat);
  if (cat.graceTimer !== undefined) clearTimeout(cat.graceTimer);
  cat.graceTimer = undefined;
  cat.staleUntil = undefined;
  cat.connected = true;
  cat.lastSeen = ctx.now();
  cat.agentVersion = hello.agentVersion;
  cat.revision = 0n;
  cat.warnings = hello.warnings.map((w) => ({ code: w.code, message: w.message }));
  cat.mesh = hello.mesh && meshFacts(hello.mesh);
  s.cat = cat;
  ctx.metrics.connectedAgents.inc();
  await s.send({
    message: {
      case: "welcome",
      value: {
        sessionId: s.sessionId,
        hubVersion: HUB_VERSION,
        maxCatalogEntries: ctx.config.maxCatalogEntries,
        leaderTerm: ctx.leadership.view().term,
      },
    },
  });
  const facts = ctx.clusterFacts(s.clusterId);
  if (facts !== undefined) ctx.applyCatalog([facts]);
  s.detachObjects = ctx.objectRequests.attach(s.clusterId, (requestId) =>
    s.send({ message: { case: "objectsRequest", value: { requestId } } }),
  );
  ctx.distributor.open(
    s.clusterId,
    s.sender,
    new Map(Object.entries(hello.appliedVersions)),
    new Map(Object.entries(hello.failedVersions)),
  );
  s.log.info("agent connected", {
    agentVersion: hello.agentVersion,
    applied: Object.keys(hello.appliedVersions).length,
  });
}

/** Checks a catalog update, merges it into the hub's copy and queues it for the engine. */
function onCatalogUpdate(
  ctx: SessionContext,
  s: AgentStream,
  cat: ClusterCatalog,
  u: CatalogUpdate,
  hooks: { snapshotReceived(): void },
): void {
  if (u.revision <= s.lastRevision) {
    throw new GrpcError(
      Code.INVALID_ARGUMENT,
      `catalog revision ${u.revision} is not above the last one (${s.lastRevision})`,
    );
  }
  if (s.lastRevision === 0n && !u.fullSnapshot) {
    throw new GrpcError(
      Code.FAILED_PRECONDITION,
      "the first catalog update of a stream must be a full snapshot",
    );
  }
  const entries = u.fullSnapshot
    ? u.upsertedServices.length + u.upsertedIdentities.length
    : cat.services.size +
      cat.identities.size +
      u.upsertedServices.length +
      u.upsertedIdentities.length;
  if (entries > ctx.config.maxCatalogEntries) {
    throw new GrpcError(
      Code.RESOURCE_EXHAUSTED,
      `catalog of cluster "${s.clusterId}" exceeds ${ctx.config.maxCatalogEntries} entries`,
    );
  }
  const problems = catalogProblems(u);
  if (problems.length > 0) {
    throw rejected(
      ctx,
      s.clusterId,
      "catalog",
      new GrpcError(
        Code.INVALID_ARGUMENT,
        `catalog update ${u.revision} refused: ${problems.join("; ")}`,
      ),
    );
  }
  s.lastRevision = u.revision;
  cat.revision = u.revision;
  cat.lastSeen = ctx.now();
  const origin =
    u.originTime === undefined
      ? undefined
      : Number(u.originTime.seconds) * 1000 + u.originTime.nanos / 1e6;
  ctx.queueCatalog(mergeCatalog(ctx, s.clusterId, cat, u), origin, (err) =>
    s.abort.abort(
      rejected(
        ctx,
        s.clusterId,
        "engine",
        new GrpcError(
          Code.INVALID_ARGUMENT,
          `catalog update ${u.revision} refused: ${err instanceof Error ? err.message : String(err)}`,
        ),
      ),
    ),
  );
  ctx.metrics.catalogServices.set({ cluster: s.clusterId }, cat.services.size);
  if (u.fullSnapshot) hooks.snapshotReceived();
}

async function onStatusReport(
  ctx: SessionContext,
  s: AgentStream,
  cat: ClusterCatalog,
  r: StatusReport,
): Promise<void> {
  if (r.mesh !== undefined)
    await acceptTrustDomain(
      ctx,
      s.clusterId,
      r.mesh.trustDomain,
      "status_report.mesh.trust_domain",
    );
  cat.lastSeen = ctx.now();
  cat.warnings = r.warnings.map((w) => ({ code: w.code, message: w.message }));
  if (r.mesh !== undefined) {
    cat.mesh = meshFacts(r.mesh);
    const facts = ctx.clusterFacts(s.clusterId);
    if (facts !== undefined) ctx.applyCatalog([facts]);
  }
}

function onApplyReport(
  ctx: SessionContext,
  s: AgentStream,
  cat: ClusterCatalog,
  r: ApplyReport,
): void {
  cat.lastSeen = ctx.now();
  ctx.distributor.report(s.clusterId, r.applied, r.removed);
  ctx.distributor.driftRepaired(s.clusterId, r.driftRepairs);
  for (const d of r.driftRepairs)
    s.log.warn("agent restored a changed object", {
      object: d.object,
      intent: d.intentName,
      change: d.change,
    });
}

/** The stream ended: delivery stops; the last session of a cluster starts its grace period. */
function endStream(ctx: SessionContext, s: AgentStream): void {
  if (ctx.streams.get(s.clusterId) === s.abort) ctx.streams.delete(s.clusterId);
  s.detachObjects();
  ctx.distributor.close(s.clusterId, s.sender);
  const { cat } = s;
  if (
    cat !== undefined &&
    ctx.catalogs.get(s.clusterId) === cat &&
    ctx.streams.get(s.clusterId) === undefined
  ) {
    cat.connected = false;
    ctx.metrics.connectedAgents.dec();
    startGrace(ctx, s.clusterId, cat);
    s.log.info("agent disconnected");
  } else if (cat !== undefined) {
    ctx.metrics.connectedAgents.dec();
  }
}
