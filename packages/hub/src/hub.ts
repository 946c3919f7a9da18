// The hub: durable registry, catalog merged from agent streams, the policy engine, and
// delivery of intents; serves AgentService and AdminService on one TLS port.
import { randomUUID, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Server as HttpServer } from "node:http";
import { Metadata, type ServerCredentials } from "@grpc/grpc-js";
import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import {
  type CertifiedKey,
  clusterIdFromCertificate,
  issueServerCertificate,
  signAgentCsr,
} from "@isthmus/pki";
import {
  type CatalogChange,
  createPolicyEngine,
  type Deltas,
  type PolicyEngine,
} from "@isthmus/policy";
import {
  AdminService,
  AgentService,
  addService,
  type CallContext,
  Code,
  createServer,
  Decision,
  GrpcError,
  insecureServerCredentials,
  listen,
  type Service,
  serverCredentials,
  shutdown,
  type WorkloadIdentity,
} from "@isthmus/proto";
import type { Etcd3 } from "etcd3";
import { createAdminHandlers } from "./admin-service.js";
import { createAgentHandlers } from "./agent-service.js";
import type { HubConfig, Role } from "./config.js";
import { loadOrCreateHubCa, prepareDataDir } from "./data-dir.js";
import { createDistributor, type Distributor } from "./distributor.js";
import { createGate } from "./gate.js";
import { loadOrCreateStoredHubCa } from "./hub-ca-store.js";
import { type Leadership, soleLeadership, startLeadership } from "./leadership.js";
import { createHubMetrics, type HubMetrics, serveHttp } from "./metrics.js";
import {
  type ClusterRecord,
  hashToken as hashAdminToken,
  openRegistry,
  type Registry,
  tokenMatches,
} from "./registry.js";
import {
  advertisedAddress,
  createRoleGate,
  followElection,
  HUB_PATHS,
  notStarted,
  readiness,
} from "./replica-role.js";
import { dropAgents } from "./state-follow.js";
import { openFileStore, type Store } from "./store.js";
import { openConfiguredEtcdStore } from "./store-config.js";
import type { EtcdStore } from "./store-etcd.js";

export { HUB_VERSION } from "./version.js";

type EngineWarning = ReturnType<PolicyEngine["warnings"]>[number];

/** What the hub holds of one cluster's catalog, beside the policy engine. */
export interface ClusterCatalog {
  services: Map<string, Service>;
  identities: Map<string, WorkloadIdentity>;
  revision: bigint;
  connected: boolean;
  lastSeen: number;
  staleUntil: number | undefined;
  agentVersion: string;
  mesh: ClusterFactsInput | undefined;
  warnings: { code: string; message: string }[];
  graceTimer: NodeJS.Timeout | undefined;
}

export interface ClusterFactsInput {
  network: string;
  trustDomain: string;
  eastWestGateways: { address: string; port: number }[];
  locality: string;
}

export interface HubContext {
  config: HubConfig;
  logger: Logger;
  registry: Registry;
  engine: PolicyEngine;
  distributor: Distributor;
  metrics: HubMetrics;
  hubCa: CertifiedKey;
  catalogs: Map<string, ClusterCatalog>;
  /** This replica's role; a hub without election always leads, in term 0. */
  leadership: Leadership;
  /** Active stream per cluster, to cut it when the cluster is deleted. */
  streams: Map<string, AbortController>;
  warmingUp(): boolean;
  systemVersion(): string;
  /** The engine's compilation warnings of a cluster, cached until the engine changes. */
  warnings(clusterId: string): readonly EngineWarning[];
  /** Applies catalog changes to the engine (after any queued ones) and schedules deliveries. */
  applyCatalog(changes: CatalogChange[], origin?: number): void;
  /**
   * Queues an agent's catalog changes: applied on the next turn of the event loop in one
   * engine batch with every update queued by then. `refused` is called if the engine refuses
   * them (nothing of them is applied then; the other updates of the batch are).
   */
  queueCatalog(
    changes: CatalogChange[],
    origin: number | undefined,
    refused: (err: unknown) => void,
  ): void;
  /** Whether agents' catalog updates wait to be compiled (no cluster is in sync then). */
  catalogPending(): boolean;
  /**
   * Schedules deliveries for engine deltas; `origins`: the times of the catalog changes they
   * come from, one convergence measurement each (waiting on every cluster of the deltas).
   */
  deliver(deltas: Deltas, origins?: readonly number[]): void;
  authorizeAdmin(ctx: CallContext, role: Role): void;
  verifyAgent(ctx: CallContext): string;
  catalogEvents: Set<(clusterId: string, service: Service | undefined, key: string) => void>;
  clusterFacts(id: string): CatalogChange | undefined;
  now(): number;
}

export interface Hub {
  /** Bound gRPC port. */
  port: number;
  /** Bound metrics port, 0 when disabled. */
  metricsPort: number;
  /** The control-plane CA that agents verify the hub with. */
  caPem: string;
  context: HubContext;
  close(): Promise<void>;
}

function splitNames(names: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const ip = /^[0-9.]+$|:/;
  return {
    dnsNames: names.filter((n) => !ip.test(n)),
    ipAddresses: names.filter((n) => ip.test(n)),
  };
}

function bearer(ctx: CallContext): string | undefined {
  const value = ctx.metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(value);
  return m?.[1];
}

export interface CreateHubOptions {
  config: HubConfig;
  logger?: Logger;
  /** Store to use instead of the one config.store names (the file store in config.dataDir,
   * or etcd). */
  store?: Store;
  /** The election among the replicas sharing an etcd store: only the leader serves agents
   * and admin calls and pushes (docs/high-availability.md). Default: on an etcd store, an
   * election with config.leaderLeaseSeconds and config.advertiseAddress. `false`: no election,
   * this hub always serves (tests of the shared state; never two such hubs for agents, since
   * each would know only the catalogs of the agents connected to it). */
  election?: ElectionOptions | false;
  /** Start with an empty store although the data dir was initialised and its state.json is
   * missing (`isthmus hub --init`); refused when state.json exists. */
  init?: boolean;
}

export interface ElectionOptions {
  client: Etcd3;
  /** The hub's key prefix in etcd; the election lives under `<prefix>election/`. */
  prefix: string;
  ttlSeconds: number;
  /** The address agents and the CLI reach this replica at, sent to them by followers; default
   * the listen address with its bound port when its host is not a wildcard, else none. */
  advertiseAddress?: string;
}

/** Starts a hub: opens the store, binds gRPC and metrics, and begins warm-up. */
export async function createHub(options: CreateHubOptions): Promise<Hub> {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const fileStore = options.store === undefined && config.store === "file";
  const prepared = await prepareDataDir(config.dataDir, { init: options.init ?? false, fileStore });
  if (prepared.removed.length > 0)
    logger.warn("removed temp files of an interrupted write", { files: prepared.removed });
  const store =
    options.store ??
    (fileStore
      ? await openFileStore(config.dataDir, { create: prepared.createStore })
      : await openConfiguredEtcdStore(config.etcd));
  let registry: Registry;
  try {
    registry = await openRegistry(store, { logger: logger.child({ module: "registry" }) });
  } catch (err) {
    // A store this call opened is this call's to close (an etcd client keeps the process up).
    if (options.store === undefined) await store.close();
    throw err;
  }
  const hubCa = store.shared
    ? await loadOrCreateStoredHubCa(store, config.dataDir, logger)
    : await loadOrCreateHubCa(config.dataDir);
  // Replicas on etcd elect a leader; a hub on its own (file store) always leads.
  const election =
    options.election === false ? undefined : (options.election ?? electionOf(store, config));
  const metrics = createHubMetrics();
  const startedAt = Date.now();
  let version = 0;
  // Warm-up waits for the clusters that were enrolled before the restart.
  const enrolled = () =>
    [...registry.clusters.values()]
      .filter((r) => r.certSerials.length > 0)
      .map((r) => r.cluster.id);
  // Set by beginWarmup when this replica starts leading.
  let warm = false;
  const now = () => Date.now();

  const engine = createPolicyEngine({
    defaults: {
      sameCluster: config.defaults.sameCluster === "ALLOW" ? Decision.ALLOW : Decision.DENY,
      crossCluster: config.defaults.crossCluster === "ALLOW" ? Decision.ALLOW : Decision.DENY,
    },
  });
  engine.setPolicies([...registry.policies.values()]);

  // Compilation warnings by cluster, for status: the engine computes them by walking the
  // cluster's destinations, too slow to repeat for every cluster on every GetStatus (30-66 ms
  // at 200 clusters). Any change to the engine may change any cluster's warnings (a trust
  // domain is shared across clusters), so every change empties the cache.
  const warningCache = new Map<string, EngineWarning[]>();
  const { applyCatalog, setPolicies, setDefaults } = engine;
  engine.applyCatalog = (changes) => {
    warningCache.clear();
    return applyCatalog(changes);
  };
  engine.setPolicies = (policies) => {
    warningCache.clear();
    return setPolicies(policies);
  };
  engine.setDefaults = (defaults) => {
    warningCache.clear();
    return setDefaults(defaults);
  };
  const warnings = (clusterId: string): readonly EngineWarning[] => {
    let w = warningCache.get(clusterId);
    if (w === undefined) {
      w = engine.warnings(clusterId);
      warningCache.set(clusterId, w);
    }
    return w;
  };

  const adminDigests = config.adminTokens.map((t) => ({ ...t, hash: hashAdminToken(t.token) }));
  const caCert = new X509Certificate(hubCa.certPem);

  const catalogs = new Map<string, ClusterCatalog>();
  const self = { id: randomUUID(), address: "" };
  const distributor = createDistributor({
    debounce: config.debounce,
    desired: (id) => engine.intents(id),
    systemVersion: () => String(version),
    removalsAllowed: () => warm,
    logger: logger.child({ module: "distributor" }),
    metrics: {
      deltaSent: (cluster) => metrics.deltasSent.inc({ cluster }),
      debounced: (s) => metrics.debounce.observe(s),
      pushed: (s) => metrics.push.observe(s),
      nack: (cluster) => metrics.nacks.inc({ cluster }),
      converged: (s) => metrics.convergence.observe(s),
    },
  });

  // Agents' catalog updates that arrived in the same turn of the event loop go to the engine in
  // one batch: after a hub restart a hundred snapshots arrive together, and one batch computes
  // each logical service once instead of once per backing cluster's snapshot.
  let queued: {
    changes: CatalogChange[];
    origin: number | undefined;
    refused(err: unknown): void;
  }[] = [];
  const originsOf = (items: typeof queued) =>
    items.flatMap((q) => (q.origin === undefined ? [] : [q.origin]));
  /**
   * Applies every queued update in one engine batch. Smaller batches were measured and are
   * worse: the engine recomputes a logical service for all its importers whenever one of its
   * backing clusters changes, so ten batches of a restart's snapshots cost nearly ten full
   * compiles (and their garbage), where one batch blocks the event loop once (9 s for 100k
   * services on 2 cores).
   */
  const flushCatalog = (): void => {
    if (queued.length === 0) return;
    const batch = queued;
    queued = [];
    try {
      ctx.deliver(engine.applyCatalog(batch.flatMap((q) => q.changes)), originsOf(batch));
    } catch {
      // The engine checks a batch before it changes anything: nothing was applied. One by
      // one, so that a refused update holds back no other.
      for (const q of batch) {
        try {
          ctx.deliver(engine.applyCatalog(q.changes), originsOf([q]));
        } catch (err) {
          q.refused(err);
        }
      }
    }
  };
  const ctx: HubContext = {
    config,
    logger,
    registry,
    engine,
    distributor,
    metrics,
    hubCa,
    catalogs,
    leadership: election === undefined ? soleLeadership(self) : notStarted(self),
    streams: new Map(),
    catalogEvents: new Set(),
    warmingUp: () => !warm,
    systemVersion: () => String(version),
    now,
    warnings,
    deliver(deltas, origins = []) {
      if (deltas.size === 0) return;
      version += 1;
      distributor.changed(deltas.keys(), origins, (id) => {
        const d = deltas.get(id)!;
        return [...d.upserted.map((i) => i.name), ...d.removed];
      });
    },
    applyCatalog(changes, origin) {
      flushCatalog();
      if (changes.length === 0) return;
      ctx.deliver(engine.applyCatalog(changes), origin === undefined ? [] : [origin]);
    },
    catalogPending: () => queued.length > 0,
    queueCatalog(changes, origin, refused) {
      if (changes.length === 0) return;
      if (queued.length === 0) setImmediate(flushCatalog);
      queued.push({ changes, origin, refused });
    },
    clusterFacts(id) {
      const record = registry.clusters.get(id);
      const facts = catalogs.get(id)?.mesh;
      if (record === undefined) return undefined;
      return {
        kind: "cluster",
        cluster: {
          id,
          labels: { ...record.cluster.labels },
          network: facts?.network ?? "",
          trustDomain: facts?.trustDomain ?? "",
          gateways: facts?.eastWestGateways ?? [],
          locality: facts?.locality ?? "",
        },
      };
    },
    authorizeAdmin(call, role) {
      const token = bearer(call);
      if (token === undefined)
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          "missing bearer token (metadata authorization: Bearer <token>)",
        );
      const match = adminDigests.find((t) => tokenMatches(token, t.hash));
      if (match === undefined) throw new GrpcError(Code.UNAUTHENTICATED, "unknown bearer token");
      if (role === "admin" && match.role !== "admin") {
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `token "${match.name}" has role viewer; this call needs admin`,
        );
      }
    },
    verifyAgent(call) {
      if (config.insecure)
        throw new GrpcError(
          Code.FAILED_PRECONDITION,
          "the hub runs without TLS (insecure); agents need TLS",
        );
      const raw = call.peerCertificate?.raw;
      if (raw === undefined || raw.length === 0)
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate required: enroll first");
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(raw);
      } catch (err) {
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          `unreadable client certificate: ${errorField(err)}`,
        );
      }
      if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate not issued by this hub");
      }
      const t = now();
      if (t < Date.parse(cert.validFrom) || t > Date.parse(cert.validTo)) {
        throw new GrpcError(
          Code.UNAUTHENTICATED,
          `client certificate expired or not yet valid (valid ${cert.validFrom} to ${cert.validTo})`,
        );
      }
      let clusterId: string;
      try {
        clusterId = clusterIdFromCertificate(raw);
      } catch (err) {
        throw new GrpcError(Code.UNAUTHENTICATED, errorField(err));
      }
      const record = registry.clusters.get(clusterId);
      if (record === undefined)
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `cluster "${clusterId}" is not registered (deleted?)`,
        );
      if (!record.certSerials.includes(cert.serialNumber.toLowerCase())) {
        throw new GrpcError(
          Code.PERMISSION_DENIED,
          `client certificate of cluster "${clusterId}" was revoked`,
        );
      }
      return clusterId;
    },
  };

  // Clusters known from the store take part in policy (labels) before they reconnect.
  for (const id of registry.clusters.keys()) {
    const facts = ctx.clusterFacts(id);
    if (facts !== undefined) engine.applyCatalog([facts]);
  }
  // Every registry change reaches the engine here, whether this hub wrote it or another
  // replica on the same store did (through the store's watch).
  registry.follow((change) => {
    if (change.policies) ctx.deliver(engine.setPolicies([...registry.policies.values()]));
    for (const { id, previous, current } of change.clusters) {
      if (current === undefined) forgetCluster(ctx, id);
      else if (previous === undefined || !sameLabels(previous, current)) {
        const facts = ctx.clusterFacts(id);
        if (facts !== undefined) ctx.applyCatalog([facts]);
      }
    }
  });

  let warmupTimer: NodeJS.Timeout | undefined;
  const endWarmup = (reason: string) => {
    if (warm) return;
    warm = true;
    if (warmupTimer !== undefined) clearTimeout(warmupTimer);
    logger.info("warm-up ended", { reason });
    version += 1;
    distributor.changedAll();
  };
  /** Warm-up of a start or a takeover: removals wait for the known clusters or the grace. */
  const beginWarmup = () => {
    if (warmupTimer !== undefined) clearTimeout(warmupTimer);
    warm = enrolled().length === 0 || config.warmupSeconds === 0;
    if (warm) return;
    warmupTimer = setTimeout(() => endWarmup("grace period passed"), config.warmupSeconds * 1000);
    warmupTimer.unref();
  };
  if (election === undefined) beginWarmup();
  const agentHooks = {
    snapshotReceived() {
      if (warm) return;
      const waiting = enrolled().filter((id) => (catalogs.get(id)?.revision ?? 0n) === 0n);
      if (waiting.length === 0) endWarmup("every known cluster reconnected");
    },
  };

  const { limits } = config;
  const gate = createGate({
    limits,
    adminToken: (token) => adminDigests.find((t) => tokenMatches(token, t.hash)),
    clusterOf: (peerCertificate) =>
      ctx.verifyAgent({
        metadata: new Metadata(),
        peer: "",
        peerCertificate,
        signal: new AbortController().signal,
      }),
    refused: (reason) => metrics.refusedCalls.inc({ reason }),
  });
  const server = createServer({
    // The transport's limit is the largest method's; the gate checks each method's own.
    maxReceiveMessageBytes: Math.max(...Object.values(limits.maxMessageBytes)),
    keepaliveMs: limits.keepaliveMs,
    keepaliveTimeoutMs: limits.keepaliveTimeoutMs,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    idleTimeoutMs: limits.idleTimeoutMs,
    maxConnectionAgeMs: limits.maxConnectionAgeMs,
    maxConnectionAgeGraceMs: limits.maxConnectionAgeGraceMs,
    interceptors: [
      createRoleGate(() => ctx.leadership, HUB_PATHS, (election?.ttlSeconds ?? 0) * 1000),
      gate,
    ],
  });
  addService(
    server,
    AgentService,
    createAgentHandlers(ctx, agentHooks, (clusterId, csrPem) =>
      signAgentCsr(hubCa, csrPem, { clusterId, validitySeconds: config.clientCertTtlSeconds }),
    ),
  );
  addService(server, AdminService, createAdminHandlers(ctx));

  let credentials: ServerCredentials;
  if (config.insecure) credentials = insecureServerCredentials();
  else {
    const serverCert = config.tls
      ? {
          certPem: await readFile(config.tls.certFile, "utf8"),
          keyPem: await readFile(config.tls.keyFile, "utf8"),
        }
      : await issueServerCertificate(
          hubCa,
          splitNames([...config.serverNames, ...advertisedHost(election)]),
        );
    credentials = serverCredentials({
      certChainPem: serverCert.certPem,
      keyPem: serverCert.keyPem,
      clientCaPem: hubCa.certPem,
      clientCerts: "optional",
    });
  }
  const port = await listen(server, config.listen, credentials, {
    maxConnections: limits.maxConnections,
    maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    onRefused: (reason) => metrics.refusedConnections.inc({ reason }),
  });
  if (election === undefined) metrics.leader.set(1);
  else {
    const e = election;
    self.address = e.advertiseAddress ?? advertisedAddress(config.listen, port);
    const elected = startLeadership({
      client: e.client,
      prefix: e.prefix,
      ttlSeconds: e.ttlSeconds,
      self,
      where: store.location,
      logger,
    });
    ctx.leadership = followElection(
      elected,
      {
        resync: () => registry.catchUp(),
        beginWarmup,
        dropAgents: (reason) => dropAgents(ctx, reason),
      },
      logger,
    );
    elected.onChange((v) => metrics.leader.set(v.leading ? 1 : 0));
  }

  let http: HttpServer | undefined;
  let metricsPort = 0;
  if (config.metricsListen !== "") {
    http = serveHttp(metrics, () => readiness(ctx.leadership));
    const [host, p] = splitHostPort(config.metricsListen);
    await new Promise<void>((resolve, reject) => {
      http!.once("error", reject);
      http!.listen(p, host, () => resolve());
    });
    const address = http.address();
    metricsPort = typeof address === "object" && address !== null ? address.port : 0;
  }
  logger.info("hub started", {
    store: store.location,
    port,
    metricsPort,
    clusters: registry.clusters.size,
    policies: registry.policies.size,
    warmingUp: !warm,
    startupMs: Date.now() - startedAt,
  });

  return {
    port,
    metricsPort,
    caPem: hubCa.certPem,
    context: ctx,
    async close() {
      // Resigning first hands the lead over at once, without waiting for the lease to expire.
      await ctx.leadership.close();
      if (warmupTimer !== undefined) clearTimeout(warmupTimer);
      for (const c of catalogs.values()) if (c.graceTimer !== undefined) clearTimeout(c.graceTimer);
      for (const s of ctx.streams.values()) s.abort();
      distributor.stop();
      await shutdown(server, 1000);
      if (http !== undefined) await new Promise<void>((resolve) => http!.close(() => resolve()));
      await registry.close();
      await store.close();
    },
  };
}

/** The election of replicas on an etcd store (one that exposes its client and prefix). */
function electionOf(store: Store | undefined, config: HubConfig): ElectionOptions | undefined {
  const etcd = store as Partial<EtcdStore> | undefined;
  if (etcd?.client === undefined || etcd.prefix === undefined) return undefined;
  return {
    client: etcd.client,
    prefix: etcd.prefix,
    ttlSeconds: config.leaderLeaseSeconds,
    ...(config.advertiseAddress === "" ? {} : { advertiseAddress: config.advertiseAddress }),
  };
}

/** The host a replica advertises, for its self-issued certificate (agents follow hints to it). */
function advertisedHost(election: ElectionOptions | undefined): string[] {
  const address = election?.advertiseAddress ?? "";
  const host = address.slice(0, address.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  return host === "" ? [] : [host];
}

const sameLabels = (a: ClusterRecord, b: ClusterRecord) =>
  JSON.stringify(Object.entries(a.cluster.labels).sort()) ===
  JSON.stringify(Object.entries(b.cluster.labels).sort());

/** A deleted cluster leaves at once: its stream is cut (its certificates are revoked with the
 * record), its catalog dropped, and the engine forgets it. */
function forgetCluster(ctx: HubContext, id: string): void {
  ctx.streams.get(id)?.abort();
  const cat = ctx.catalogs.get(id);
  if (cat?.graceTimer !== undefined) clearTimeout(cat.graceTimer);
  for (const k of cat?.services.keys() ?? [])
    for (const l of ctx.catalogEvents) l(id, undefined, k);
  ctx.catalogs.delete(id);
  ctx.distributor.forget(id);
  ctx.metrics.catalogServices.remove({ cluster: id });
  ctx.applyCatalog([{ kind: "cluster-removed", clusterId: id }]);
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  return [host === "" ? "0.0.0.0" : host, Number(address.slice(i + 1))];
}
