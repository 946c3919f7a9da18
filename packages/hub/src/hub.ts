// The hub: durable registry, catalog merged from agent streams, the policy engine, and
// delivery of intents; serves AgentService and AdminService on one TLS port.
import { randomUUID } from "node:crypto";
import { type Logger, silentLogger } from "@isthmus/logging";
import type { CertifiedKey } from "@isthmus/pki";
import { createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import { Code, Decision, GrpcError, shutdown, splitHostPort } from "@isthmus/proto";
import type { Etcd3 } from "etcd3";
import { createAuth } from "./auth.js";
import { createCatalogQueue } from "./catalog-queue.js";
import type { HubConfig } from "./config.js";
import type { ClusterCatalog, EngineWarning, HubContext } from "./context.js";
import { loadOrCreateHubCa, prepareDataDir } from "./data-dir.js";
import { createDistributor, type DistributorOptions } from "./distributor.js";
import type { HubHealth } from "./health.js";
import { loadOrCreateStoredHubCa } from "./hub-ca-store.js";
import { type LeaderInfo, soleLeadership, startLeadership } from "./leadership.js";
import { createHubMetrics, type HubMetrics } from "./metrics.js";
import { createObjectRequests } from "./object-requests.js";
import { openRegistry, type Registry } from "./registry.js";
import { followRegistry } from "./registry-changes.js";
import { advertisedAddress, followElection, notStarted, readiness } from "./replica-role.js";
import { serveGrpc, serveMetrics } from "./serve.js";
import { dropAgents } from "./state-follow.js";
import { openFileStore, type Store } from "./store.js";
import { openConfiguredEtcdStore } from "./store-config.js";
import type { EtcdStore } from "./store-etcd.js";
import { createWarmup } from "./warmup.js";

export { HUB_VERSION } from "./version.js";

export interface Hub {
  /** Bound gRPC port. */
  port: number;
  /** Bound metrics port, 0 when disabled. */
  metricsPort: number;
  /** Bound plaintext gRPC health port, 0 when disabled. */
  grpcHealthPort: number;
  /** The control-plane CA that agents verify the hub with. */
  caPem: string;
  context: HubContext;
  /** Readiness: gRPC health (grpc.health.v1) and /readyz; SERVING once listening. */
  health: HubHealth;
  close(): Promise<void>;
}

export interface CreateHubOptions {
  config: HubConfig;
  logger?: Logger;
  /** Store to use instead of the one config.store names (the file store in config.dataDir,
   * or etcd). */
  store?: Store;
  /** Start with an empty store although the data dir was initialised and its state.json is
   * missing (`isthmus hub --init`); refused when state.json exists. */
  init?: boolean;
  /** The election among the replicas sharing an etcd store: only the leader serves agents
   * and admin calls and pushes (docs/high-availability.md). Default: on an etcd store, an
   * election with config.leaderLeaseSeconds and config.advertiseAddress. `false`: no election,
   * this hub always serves (tests of the shared state; never two such hubs for agents, since
   * each would know only the catalogs of the agents connected to it). */
  election?: ElectionOptions | false;
}

export interface ElectionOptions {
  client: Etcd3;
  /** The hub's key prefix in etcd; the election lives under `<prefix>election/`. */
  prefix: string;
  ttlSeconds: number;
  /** The address agents and the CLI reach this replica at, sent to them by followers; default
   * the listen address with its bound port when its host is not a wildcard, else none. */
  advertiseAddress?: string;
  /** Where the other replicas reach this one (the crashed-leader probe); default the
   * advertised address. */
  peerAddress?: string;
}

/** Starts a hub: opens the store, binds gRPC and metrics, and begins warm-up. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the order of startup, read top to bottom, each step a call; a third of it is the context literal and the returned close
export async function createHub(options: CreateHubOptions): Promise<Hub> {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const { store, registry, hubCa } = await openState(options, logger);
  // Replicas on etcd elect a leader; a hub on its own (file store) always leads.
  const election =
    options.election === false ? undefined : (options.election ?? electionOf(store, config));
  const self: LeaderInfo = { id: randomUUID(), address: "" };
  const metrics = createHubMetrics({ defaultMetrics: config.metricsListen !== "" });
  metrics.certificates("ca", hubCa.certPem);
  const startedAt = Date.now();
  let version = 0;
  const catalogs = new Map<string, ClusterCatalog>();
  const warmup = createWarmup({
    registry,
    catalogs,
    warmupSeconds: config.warmupSeconds,
    logger,
    ended() {
      version += 1;
      distributor.changedAll();
    },
  });
  const now = () => Date.now();

  const engine = createEngine(config, registry);

  const warnings = warningCache(engine);
  const auth = createAuth({ config, registry, hubCa, now });

  const distributor = createDistributor({
    debounce: config.debounce,
    desired: (id) => engine.intents(id),
    systemVersion: () => String(version),
    removalsAllowed: () => warmup.warm(),
    logger: logger.child({ module: "distributor" }),
    metrics: distributorMetrics(metrics),
  });

  const deliver: HubContext["deliver"] = (deltas, origins = []) => {
    if (deltas.size === 0) return;
    version += 1;
    distributor.changed(deltas.keys(), origins, (id) => {
      const d = deltas.get(id)!;
      return [...d.upserted.map((i) => i.name), ...d.removed];
    });
  };
  const queue = createCatalogQueue(engine, deliver);
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
    objectRequests: createObjectRequests(now),
    warmingUp: () => !warmup.warm(),
    systemVersion: () => String(version),
    now,
    warnings,
    deliver,
    clusterFacts: (id) => clusterFacts(registry, catalogs, id),
    ...queue,
    authorizeAdmin: auth.authorizeAdmin,
    verifyAgent: auth.verifyAgent,
  };

  // Clusters known from the store take part in policy (labels) before they reconnect.
  for (const id of registry.clusters.keys()) {
    const facts = ctx.clusterFacts(id);
    if (facts !== undefined) engine.applyCatalog([facts]);
  }
  followRegistry(ctx);

  const { server, port, health } = await serveGrpc(ctx, auth, warmup, {
    electionWaitMs: (election?.ttlSeconds ?? 0) * 1000,
    advertisedHost: hostOf(election?.advertiseAddress),
  });
  if (election === undefined) {
    warmup.start();
    metrics.leader.set(1);
  } else {
    self.address = election.advertiseAddress ?? advertisedAddress(config.listen, port);
    if (election.peerAddress !== undefined) self.peer = election.peerAddress;
    const elected = startLeadership({
      client: election.client,
      prefix: election.prefix,
      ttlSeconds: election.ttlSeconds,
      self,
      where: store.location,
      logger,
    });
    ctx.leadership = followElection(
      elected,
      {
        resync: () => registry.catchUp(),
        beginWarmup: () => warmup.begin(),
        dropAgents: (reason) => dropAgents(ctx, reason),
      },
      logger,
    );
    elected.onChange((v) => metrics.leader.set(v.leading ? 1 : 0));
  }
  // Ready: serving (not starting or stopping), and in a role (docs/high-availability.md).
  const ready = () =>
    health.ready() ? readiness(ctx.leadership) : { ready: false, detail: "not serving" };
  metrics.observe({
    ready: () => ready().ready,
    clusters: () =>
      [...registry.clusters.keys()].map((id) => [id, catalogs.get(id)?.connected === true]),
  });
  const { http, port: metricsPort } = await serveMetrics(metrics, config.metricsListen, ready);
  const plainHealth =
    config.grpcHealthListen === ""
      ? undefined
      : await health.servePlaintext(config.grpcHealthListen);
  health.setReady(true);
  logger.info("hub started", {
    store: store.location,
    port,
    metricsPort,
    grpcHealthPort: plainHealth?.port ?? 0,
    clusters: registry.clusters.size,
    policies: registry.policies.size,
    warmingUp: !warmup.warm(),
    startupMs: Date.now() - startedAt,
  });

  return {
    port,
    metricsPort,
    grpcHealthPort: plainHealth?.port ?? 0,
    caPem: hubCa.certPem,
    context: ctx,
    health,
    async close() {
      health.setReady(false);
      // Resigning first hands the lead over at once, without waiting for the lease to expire.
      await ctx.leadership.close();
      warmup.stop();
      for (const c of catalogs.values()) if (c.graceTimer !== undefined) clearTimeout(c.graceTimer);
      // UNAVAILABLE: the agent reconnects later; the stream's end is no failure to warn about.
      for (const s of ctx.streams.values())
        s.abort(new GrpcError(Code.UNAVAILABLE, "the hub is shutting down"));
      distributor.stop();
      await plainHealth?.close();
      await shutdown(server, 1000);
      if (http !== undefined) await new Promise<void>((resolve) => http.close(() => resolve()));
      await registry.close();
      await store.close();
    },
  };
}

/**
 * Compilation warnings by cluster, for status: the engine computes them by walking the
 * cluster's destinations, too slow to repeat for every cluster on every GetStatus (30-66 ms
 * at 200 clusters). Any change to the engine may change any cluster's warnings (a trust
 * domain is shared across clusters), so the cache holds for one engine revision.
 */
function warningCache(engine: PolicyEngine): (clusterId: string) => readonly EngineWarning[] {
  const cache = new Map<string, EngineWarning[]>();
  let revision = engine.revision();
  return (clusterId) => {
    if (engine.revision() !== revision) {
      cache.clear();
      revision = engine.revision();
    }
    let w = cache.get(clusterId);
    if (w === undefined) {
      w = engine.warnings(clusterId);
      cache.set(clusterId, w);
    }
    return w;
  };
}

/** A registered cluster's facts for the engine: its labels and what its agent reported. */
function clusterFacts(
  registry: Registry,
  catalogs: ReadonlyMap<string, ClusterCatalog>,
  id: string,
): ReturnType<HubContext["clusterFacts"]> {
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
}

/** The election of replicas on an etcd store (one that exposes its client and prefix). */
function electionOf(store: Store, config: HubConfig): ElectionOptions | undefined {
  const etcd = store as Partial<EtcdStore>;
  if (etcd.client === undefined || etcd.prefix === undefined) return undefined;
  return {
    client: etcd.client,
    prefix: etcd.prefix,
    ttlSeconds: config.leaderLeaseSeconds,
    ...(config.advertiseAddress === "" ? {} : { advertiseAddress: config.advertiseAddress }),
    ...(config.peerAddress === "" ? {} : { peerAddress: config.peerAddress }),
  };
}

/** The host of a "host:port" address, for the self-issued certificate. */
function hostOf(address: string | undefined): string | undefined {
  return address === undefined ? undefined : splitHostPort(address)?.host || undefined;
}

/** Prepares the data dir, then opens the store, the registry and the hub CA. */
async function openState(
  options: CreateHubOptions,
  logger: Logger,
): Promise<{ store: Store; registry: Registry; hubCa: CertifiedKey }> {
  const { config } = options;
  const fileStore = options.store === undefined && config.store === "file";
  const prepared = await prepareDataDir(config.dataDir, { init: options.init ?? false, fileStore });
  if (prepared.removed.length > 0)
    logger.warn("removed temp files of an interrupted write", { files: prepared.removed });
  const store =
    options.store ??
    (fileStore
      ? await openFileStore(config.dataDir, { create: prepared.createStore })
      : await openConfiguredEtcdStore(config.etcd, logger.child({ module: "store" })));
  let registry: Registry;
  try {
    registry = await openRegistry(store, { logger: logger.child({ module: "registry" }) });
  } catch (err) {
    // A store this call opened is this call's to close (an etcd client keeps the process up).
    if (options.store === undefined) await store.close();
    throw err;
  }
  // Replicas on a shared store must sign and trust agents with one CA: it lives there.
  const hubCa = store.shared
    ? await loadOrCreateStoredHubCa(store, config.dataDir, logger)
    : await loadOrCreateHubCa(config.dataDir);
  return { store, registry, hubCa };
}

/** The policy engine with the configured defaults and the stored policies. */
function createEngine(config: HubConfig, registry: Registry): PolicyEngine {
  const engine = createPolicyEngine({
    defaults: {
      sameCluster: config.defaults.sameCluster === "ALLOW" ? Decision.ALLOW : Decision.DENY,
      crossCluster: config.defaults.crossCluster === "ALLOW" ? Decision.ALLOW : Decision.DENY,
    },
  });
  engine.setPolicies([...registry.policies.values()]);
  return engine;
}

function distributorMetrics(metrics: HubMetrics): DistributorOptions["metrics"] {
  return {
    deltaSent: (cluster) => metrics.deltasSent.inc({ cluster }),
    debounced: (s) => metrics.debounce.observe(s),
    pushed: (s) => metrics.push.observe(s),
    nack: (cluster) => metrics.nacks.inc({ cluster }),
    converged: (s) => metrics.convergence.observe(s),
  };
}
