// AgentService: enrollment, renewal and the Connect stream of every agent. Over 400 lines:
// the stream handler's message kinds share one session's state; checks of what agents report
// live in agent-reports.ts.

import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { errorField, type Logger } from "@isthmus/logging";
import { intern, logicalServiceKey } from "@isthmus/model";
import type { IssuedCertificate } from "@isthmus/pki";
import type { CatalogChange } from "@isthmus/policy";
import {
  type AgentService,
  type CatalogUpdate,
  Code,
  GrpcError,
  type LabelSet,
  type MeshFacts,
  type ServiceHandlers,
  type ServicePort,
} from "@isthmus/proto";
import { acceptTrustDomain, catalogProblems, rejected } from "./agent-reports.js";
import type { Sender } from "./distributor.js";
import type { ClusterCatalog, ClusterFactsInput, HubContext } from "./hub.js";
import { type ClusterRecord, tokenMatches } from "./registry.js";
import { notLeader } from "./replica-role.js";
import { isStoreError } from "./store.js";
import { HUB_VERSION } from "./version.js";

type Sign = (clusterId: string, csrPem: string) => Promise<IssuedCertificate>;

/** Catalog key `namespace/name`, interned: the catalog keeps one per service and identity. */
const key = (namespace: string, name: string) => intern(logicalServiceKey(namespace, name));

const meshFacts = (m: MeshFacts): ClusterFactsInput => ({
  network: m.network,
  trustDomain: m.trustDomain,
  eastWestGateways: m.eastWestGateways.map((g) => ({ address: g.address, port: g.port })),
  locality: m.locality,
});

function emptyCatalog(): ClusterCatalog {
  return {
    services: new Map(),
    identities: new Map(),
    revision: 0n,
    connected: false,
    lastSeen: 0,
    staleUntil: undefined,
    agentVersion: "",
    mesh: undefined,
    warnings: [],
    graceTimer: undefined,
  };
}

/** Label values as one shared copy each (label keys are property names, shared already). */
function internValues(labels: Record<string, string>): Record<string, string> {
  for (const k of Object.keys(labels)) labels[k] = intern(labels[k]!);
  return labels;
}

const SHARED_MAX = 100_000;
const shared = new Map<string, unknown>();

/**
 * One shared copy of a decoded field whose content repeats: a service backed by 20 clusters
 * is reported 20 times with the same ports, labels, selector and service accounts, and its
 * pods' label sets with it. Keyed by the field's JSON (a message's JSON names its type and
 * every field, in the decoder's order, so equal keys mean equal content); `prepare` makes
 * the first copy lean. Nothing changes a catalog entry in place (an update replaces the
 * message), so entries can share these. Bounded as `intern` is.
 */
function share<T>(value: T, prepare: (v: T) => T): T {
  const k = JSON.stringify(value);
  const known = shared.get(k);
  if (known !== undefined) return known as T;
  if (shared.size >= SHARED_MAX) shared.clear();
  const lean = prepare(value);
  shared.set(k, lean);
  return lean;
}

const leanPorts = (ports: ServicePort[]) =>
  ports.map((p) => {
    p.name = intern(p.name);
    p.protocol = intern(p.protocol);
    p.targetPort = intern(p.targetPort);
    p.appProtocol = intern(p.appProtocol);
    return p;
  });

const leanLabelSets = (sets: LabelSet[]) =>
  sets.map((set) => {
    set.labels = internValues(set.labels);
    return set;
  });

/**
 * The catalog keeps its entries for as long as they are reported, so it keeps them lean:
 * decoded repeated fields keep the spare room they grew into (16 slots for one element), so
 * exact-size copies; one shared copy of each string (`intern`), since every cluster reports
 * the same namespaces, protocols, port names and label values; and one shared copy of the
 * ports, labels, selector, service accounts and label sets that clusters report alike
 * (`share`).
 */
function compact(u: CatalogUpdate): void {
  for (const s of u.upsertedServices) {
    s.namespace = intern(s.namespace);
    s.name = intern(s.name);
    s.ports = share(s.ports, leanPorts);
    s.serviceAccounts = share(s.serviceAccounts, (accounts) => accounts.map(intern));
    s.labels = share(s.labels, internValues);
    s.selector = share(s.selector, internValues);
  }
  for (const i of u.upsertedIdentities) {
    i.namespace = intern(i.namespace);
    i.serviceAccount = intern(i.serviceAccount);
    i.labelSets = share(i.labelSets, leanLabelSets);
  }
}

/** Turns a CatalogUpdate into engine changes and merges it into the hub's copy. */
function mergeCatalog(
  ctx: HubContext,
  clusterId: string,
  cat: ClusterCatalog,
  u: CatalogUpdate,
): CatalogChange[] {
  compact(u);
  const emit = (service: { namespace: string; name: string }, present: boolean) => {
    const k = key(service.namespace, service.name);
    for (const listener of ctx.catalogEvents)
      listener(clusterId, present ? cat.services.get(k) : undefined, k);
  };
  if (u.fullSnapshot) {
    const previous = [...cat.services.values()];
    cat.services = new Map(u.upsertedServices.map((s) => [key(s.namespace, s.name), s]));
    cat.identities = new Map(
      u.upsertedIdentities.map((i) => [key(i.namespace, i.serviceAccount), i]),
    );
    for (const s of previous) if (!cat.services.has(key(s.namespace, s.name))) emit(s, false);
    for (const s of u.upsertedServices) emit(s, true);
    return [
      {
        kind: "cluster-services-replaced",
        clusterId,
        services: u.upsertedServices,
        identities: u.upsertedIdentities,
      },
    ];
  }
  const changes: CatalogChange[] = [];
  for (const s of u.upsertedServices) {
    cat.services.set(key(s.namespace, s.name), s);
    changes.push({ kind: "service", clusterId, service: s });
    emit(s, true);
  }
  for (const r of u.removedServices) {
    if (!cat.services.delete(key(r.namespace, r.name))) continue;
    changes.push({ kind: "service-removed", clusterId, namespace: r.namespace, name: r.name });
    emit(r, false);
  }
  for (const i of u.upsertedIdentities) {
    cat.identities.set(key(i.namespace, i.serviceAccount), i);
    changes.push({ kind: "identity", clusterId, identity: i });
  }
  for (const r of u.removedIdentities) {
    if (!cat.identities.delete(key(r.namespace, r.name))) continue;
    changes.push({
      kind: "identity-removed",
      clusterId,
      namespace: r.namespace,
      serviceAccount: r.name,
    });
  }
  return changes;
}

export function createAgentHandlers(
  ctx: HubContext,
  hooks: { snapshotReceived(): void },
  sign: Sign,
): ServiceHandlers<(typeof AgentService)["method"]> {
  const log = ctx.logger.child({ module: "agents" });

  /**
   * Signs the CSR and records the serial (the previous certificate stays valid until the new
   * one is in use) in one store write, a compare-and-swap on the version of `checked`, the
   * record the caller checked: an enrollment spends the token in that same write, so of
   * concurrent enrollments with one token exactly one wins.
   */
  const issue = async (checked: ClusterRecord, csrPem: string, spendToken: boolean) => {
    const clusterId = checked.cluster.id;
    let issued: IssuedCertificate;
    try {
      issued = await sign(clusterId, csrPem);
    } catch (err) {
      throw new GrpcError(Code.INVALID_ARGUMENT, `cannot sign csr: ${errorField(err)}`);
    }
    try {
      await ctx.registry.putCluster(
        {
          ...checked,
          certSerials: [issued.serialNumber.toLowerCase(), ...checked.certSerials].slice(0, 2),
          tokenHash: spendToken ? "" : checked.tokenHash,
          tokenExpiresAt: spendToken ? 0 : checked.tokenExpiresAt,
          // Enrolling again (after an admin rotated the token) records the trust domain anew.
          trustDomain: spendToken ? "" : (checked.trustDomain ?? ""),
        },
        checked.version,
      );
    } catch (err) {
      throw issueRefused(clusterId, spendToken, err, log);
    }
    log.info(spendToken ? "cluster enrolled" : "certificate renewed", {
      cluster: clusterId,
      serial: issued.serialNumber,
    });
    return {
      certificateChainPem: issued.certPem,
      caPem: ctx.hubCa.certPem,
      notAfter: timestampFromMs(issued.notAfter.getTime()),
    };
  };

  return {
    async enroll(req) {
      const record = ctx.registry.clusters.get(req.clusterId);
      // One message for every refusal, so that a caller cannot probe which clusters exist.
      const refused = new GrpcError(
        Code.PERMISSION_DENIED,
        `enrollment of cluster "${req.clusterId}" refused: unknown, used or expired bootstrap token`,
      );
      if (record === undefined || !tokenMatches(req.bootstrapToken, record.tokenHash))
        throw refused;
      if (ctx.now() > record.tokenExpiresAt) throw refused;
      return issue(record, req.csrPem, true);
    },

    async renew(req, call) {
      const clusterId = ctx.verifyAgent(call);
      const record = ctx.registry.clusters.get(clusterId);
      if (record === undefined)
        throw new GrpcError(Code.NOT_FOUND, `cluster "${clusterId}" is not registered`);
      return issue(record, req.csrPem, false);
    },

    async connect(stream, call) {
      const clusterId = ctx.verifyAgent(call);
      const sessionId = randomUUID();
      const slog = log.child({ cluster: clusterId, session: sessionId });
      const abort = new AbortController();
      ctx.streams.get(clusterId)?.abort();
      ctx.streams.set(clusterId, abort);
      // Fencing: a delta goes out only while this replica still leads in the term the stream
      // began in (checked by the local clock against the lease), and names that term, so that
      // an agent refuses a deposed leader's delta after a newer leader's.
      const term = ctx.leadership.view().term;
      const sender: Sender = {
        send: (delta) => {
          if (!ctx.leadership.leading() || ctx.leadership.view().term !== term) {
            const e = notLeader(ctx.leadership);
            abort.abort(e);
            return Promise.reject(e);
          }
          return stream.send({
            message: { case: "configDelta", value: { ...delta, leaderTerm: term } },
          });
        },
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
                    leaderTerm: term,
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
    },
  };
}

/**
 * The answer to a failed write of an issued certificate. A version conflict means another
 * call changed the record since it was checked: for an enrollment, the token was spent (or
 * rotated, or the cluster deleted) meanwhile. Store details stay in the log, not the answer.
 */
function issueRefused(clusterId: string, enrolling: boolean, err: unknown, log: Logger): GrpcError {
  const lost = isStoreError(err) && (err.code === "conflict" || err.code === "not-found");
  if (lost && enrolling)
    return new GrpcError(
      Code.PERMISSION_DENIED,
      `enrollment of cluster "${clusterId}" refused: token already used`,
    );
  if (lost)
    return new GrpcError(
      Code.ABORTED,
      `cluster "${clusterId}" changed during renewal (deleted or renewed at the same time); retry`,
    );
  if (isStoreError(err) && err.code === "unavailable") {
    log.warn("cannot record issued certificate: store unavailable", {
      cluster: clusterId,
      err: errorField(err),
    });
    return new GrpcError(
      Code.UNAVAILABLE,
      `cannot record the certificate of cluster "${clusterId}" now (store unavailable); retry`,
    );
  }
  log.error("cannot record issued certificate", { cluster: clusterId, err: errorField(err) });
  return new GrpcError(Code.INTERNAL, `cannot record the certificate of cluster "${clusterId}"`);
}

/** Keeps a disconnected cluster's services (stale) for the grace period, then drops them. */
function startGrace(ctx: HubContext, clusterId: string, cat: ClusterCatalog): void {
  const graceMs = ctx.config.graceSeconds * 1000;
  cat.staleUntil = ctx.now() + graceMs;
  cat.graceTimer = setTimeout(() => {
    if (ctx.catalogs.get(clusterId) !== cat || cat.connected) return;
    ctx.logger.info("grace period over, dropping services", {
      cluster: clusterId,
      services: cat.services.size,
    });
    for (const k of cat.services.keys())
      for (const l of ctx.catalogEvents) l(clusterId, undefined, k);
    cat.services.clear();
    cat.identities.clear();
    cat.staleUntil = undefined;
    ctx.metrics.catalogServices.set({ cluster: clusterId }, 0);
    ctx.applyCatalog([
      { kind: "cluster-services-replaced", clusterId, services: [], identities: [] },
    ]);
  }, graceMs);
  cat.graceTimer.unref();
}
