// AgentService.Connect: one agent's session. Hello opens it (catalog, delivery), then
// catalog updates, status and apply reports, ACKs and NACKs; the end of the stream starts
// the cluster's grace period.
import { randomUUID } from "node:crypto";
import { errorField } from "@isthmus/logging";
import { type AgentService, Code, GrpcError, type ServiceHandlers } from "@isthmus/proto";
import { acceptTrustDomain, catalogProblems, rejected } from "./agent-reports.js";
import { emptyCatalog, mergeCatalog, meshFacts, startGrace } from "./cluster-catalog.js";
import type { ClusterCatalog, SessionContext } from "./context.js";
import type { Sender } from "./distributor.js";
import { HUB_VERSION } from "./version.js";

type Connect = ServiceHandlers<(typeof AgentService)["method"]>["connect"];

/** The Connect handler; `snapshotReceived` is called on each full catalog snapshot. */
export function createConnectHandler(
  ctx: SessionContext,
  hooks: { snapshotReceived(): void },
): Connect {
  const log = ctx.logger.child({ module: "agents" });
  return async function connect(stream, call) {
    const clusterId = ctx.verifyAgent(call);
    const sessionId = randomUUID();
    const slog = log.child({ cluster: clusterId, session: sessionId });
    const abort = new AbortController();
    ctx.streams.get(clusterId)?.abort();
    ctx.streams.set(clusterId, abort);
    const sender: Sender = {
      send: (delta) => stream.send({ message: { case: "configDelta", value: delta } }),
    };
    let cat: ClusterCatalog | undefined;
    let lastRevision = 0n;
    const iterator = stream.requests[Symbol.asyncIterator]();
    // A message that breaks the contract (protovalidate rules) fails the iterator.
    const nextRequest = () =>
      iterator.next().catch((err: unknown) => {
        const e = GrpcError.from(err);
        throw e.code === Code.INVALID_ARGUMENT ? rejected(ctx, clusterId, "contract", e) : e;
      });
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
    try {
      for (;;) {
        const next = await Promise.race([nextRequest(), aborted]);
        if (next.done) break;
        const msg = next.value.message;
        if (cat === undefined && msg.case !== "hello") {
          throw new GrpcError(
            Code.FAILED_PRECONDITION,
            "the first message of a stream must be hello",
          );
        }
        switch (msg.case) {
          case "hello": {
            if (cat !== undefined)
              throw new GrpcError(Code.FAILED_PRECONDITION, "hello sent twice");
            const hello = msg.value;
            if (hello.clusterId !== clusterId) {
              throw new GrpcError(
                Code.PERMISSION_DENIED,
                `hello names cluster "${hello.clusterId}" but the certificate is for "${clusterId}"`,
              );
            }
            if (hello.mesh !== undefined)
              await acceptTrustDomain(
                ctx,
                clusterId,
                hello.mesh.trustDomain,
                "hello.mesh.trust_domain",
              );
            cat = ctx.catalogs.get(clusterId) ?? emptyCatalog();
            ctx.catalogs.set(clusterId, cat);
            if (cat.graceTimer !== undefined) clearTimeout(cat.graceTimer);
            cat.graceTimer = undefined;
            cat.staleUntil = undefined;
            cat.connected = true;
            cat.lastSeen = ctx.now();
            cat.agentVersion = hello.agentVersion;
            cat.revision = 0n;
            cat.warnings = hello.warnings.map((w) => ({ code: w.code, message: w.message }));
            cat.mesh = hello.mesh && meshFacts(hello.mesh);
            ctx.metrics.connectedAgents.inc();
            await stream.send({
              message: {
                case: "welcome",
                value: {
                  sessionId,
                  hubVersion: HUB_VERSION,
                  maxCatalogEntries: ctx.config.maxCatalogEntries,
                },
              },
            });
            const facts = ctx.clusterFacts(clusterId);
            if (facts !== undefined) ctx.applyCatalog([facts]);
            ctx.distributor.open(
              clusterId,
              sender,
              new Map(Object.entries(hello.appliedVersions)),
              new Map(Object.entries(hello.failedVersions)),
            );
            slog.info("agent connected", {
              agentVersion: hello.agentVersion,
              applied: Object.keys(hello.appliedVersions).length,
            });
            break;
          }
          case "catalogUpdate": {
            const u = msg.value;
            if (u.revision <= lastRevision) {
              throw new GrpcError(
                Code.INVALID_ARGUMENT,
                `catalog revision ${u.revision} is not above the last one (${lastRevision})`,
              );
            }
            if (lastRevision === 0n && !u.fullSnapshot) {
              throw new GrpcError(
                Code.FAILED_PRECONDITION,
                "the first catalog update of a stream must be a full snapshot",
              );
            }
            const entries = u.fullSnapshot
              ? u.upsertedServices.length + u.upsertedIdentities.length
              : cat!.services.size +
                cat!.identities.size +
                u.upsertedServices.length +
                u.upsertedIdentities.length;
            if (entries > ctx.config.maxCatalogEntries) {
              throw new GrpcError(
                Code.RESOURCE_EXHAUSTED,
                `catalog of cluster "${clusterId}" exceeds ${ctx.config.maxCatalogEntries} entries`,
              );
            }
            const problems = catalogProblems(u);
            if (problems.length > 0) {
              throw rejected(
                ctx,
                clusterId,
                "catalog",
                new GrpcError(
                  Code.INVALID_ARGUMENT,
                  `catalog update ${u.revision} refused: ${problems.join("; ")}`,
                ),
              );
            }
            lastRevision = u.revision;
            cat!.revision = u.revision;
            cat!.lastSeen = ctx.now();
            const origin =
              u.originTime === undefined
                ? undefined
                : Number(u.originTime.seconds) * 1000 + u.originTime.nanos / 1e6;
            ctx.queueCatalog(mergeCatalog(ctx, clusterId, cat!, u), origin, (err) =>
              abort.abort(
                rejected(
                  ctx,
                  clusterId,
                  "engine",
                  new GrpcError(
                    Code.INVALID_ARGUMENT,
                    `catalog update ${u.revision} refused: ${err instanceof Error ? err.message : String(err)}`,
                  ),
                ),
              ),
            );
            ctx.metrics.catalogServices.set({ cluster: clusterId }, cat!.services.size);
            if (u.fullSnapshot) hooks.snapshotReceived();
            break;
          }
          case "statusReport": {
            const r = msg.value;
            if (r.mesh !== undefined)
              await acceptTrustDomain(
                ctx,
                clusterId,
                r.mesh.trustDomain,
                "status_report.mesh.trust_domain",
              );
            cat!.lastSeen = ctx.now();
            cat!.warnings = r.warnings.map((w) => ({ code: w.code, message: w.message }));
            if (r.mesh !== undefined) {
              cat!.mesh = meshFacts(r.mesh);
              const facts = ctx.clusterFacts(clusterId);
              if (facts !== undefined) ctx.applyCatalog([facts]);
            }
            break;
          }
          case "applyReport": {
            const r = msg.value;
            cat!.lastSeen = ctx.now();
            ctx.distributor.report(clusterId, r.applied, r.removed);
            ctx.distributor.driftRepaired(clusterId, r.driftRepairs);
            for (const d of r.driftRepairs)
              slog.warn("agent restored a changed object", {
                object: d.object,
                intent: d.intentName,
                change: d.change,
              });
            break;
          }
          case "ack":
            cat!.lastSeen = ctx.now();
            if (!ctx.distributor.ack(clusterId, msg.value.nonce))
              slog.warn("ack of unknown nonce", { nonce: msg.value.nonce });
            break;
          case "nack":
            cat!.lastSeen = ctx.now();
            slog.warn("config delta refused", {
              nonce: msg.value.nonce,
              errors: msg.value.errors.length,
            });
            if (!ctx.distributor.nack(clusterId, msg.value.nonce, msg.value.errors)) {
              slog.warn("nack of unknown nonce", { nonce: msg.value.nonce });
            }
            break;
        }
      }
    } catch (err) {
      slog.warn("agent stream failed", { err: errorField(err) });
      throw err;
    } finally {
      if (ctx.streams.get(clusterId) === abort) ctx.streams.delete(clusterId);
      ctx.distributor.close(clusterId, sender);
      if (
        cat !== undefined &&
        ctx.catalogs.get(clusterId) === cat &&
        ctx.streams.get(clusterId) === undefined
      ) {
        cat.connected = false;
        ctx.metrics.connectedAgents.dec();
        startGrace(ctx, clusterId, cat);
        slog.info("agent disconnected");
      } else if (cat !== undefined) {
        ctx.metrics.connectedAgents.dec();
      }
    }
  };
}
