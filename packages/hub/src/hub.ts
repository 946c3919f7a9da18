// The hub: durable registry, catalog merged from agent streams, the policy engine, and
// delivery of intents; serves AgentService and AdminService on one TLS port.
import { readFile } from "node:fs/promises";
import type { Server as HttpServer } from "node:http";
import { Metadata, type ServerCredentials } from "@grpc/grpc-js";
import { type Logger, silentLogger } from "@isthmus/logging";
import { issueServerCertificate, signAgentCsr } from "@isthmus/pki";
import { createPolicyEngine } from "@isthmus/policy";
import {
  AdminService,
  AgentService,
  addService,
  createServer,
  Decision,
  insecureServerCredentials,
  listen,
  serverCredentials,
  shutdown,
} from "@isthmus/proto";
import { createAdminHandlers } from "./admin-service.js";
import { createAgentHandlers } from "./agent-service.js";
import { createAuth } from "./auth.js";
import { createCatalogQueue } from "./catalog-queue.js";
import type { HubConfig } from "./config.js";
import type { ClusterCatalog, EngineWarning, HubContext } from "./context.js";
import { loadOrCreateHubCa, prepareDataDir } from "./data-dir.js";
import { createDistributor } from "./distributor.js";
import { createGate } from "./gate.js";
import { createHubMetrics, serveHttp } from "./metrics.js";
import { openRegistry } from "./registry.js";
import { openFileStore, type Store } from "./store.js";

export { HUB_VERSION } from "./version.js";

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

export interface CreateHubOptions {
  config: HubConfig;
  logger?: Logger;
  /** Store to use instead of the file store in config.dataDir (e.g. etcd). */
  store?: Store;
  /** Start with an empty store although the data dir was initialised and its state.json is
   * missing (`isthmus hub --init`); refused when state.json exists. */
  init?: boolean;
}

/** Starts a hub: opens the store, binds gRPC and metrics, and begins warm-up. */
export async function createHub(options: CreateHubOptions): Promise<Hub> {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const prepared = await prepareDataDir(config.dataDir, {
    init: options.init ?? false,
    fileStore: options.store === undefined,
  });
  if (prepared.removed.length > 0)
    logger.warn("removed temp files of an interrupted write", { files: prepared.removed });
  const store =
    options.store ?? (await openFileStore(config.dataDir, { create: prepared.createStore }));
  const registry = await openRegistry(store);
  const hubCa = await loadOrCreateHubCa(config.dataDir);
  const metrics = createHubMetrics();
  const startedAt = Date.now();
  let version = 0;
  // Warm-up waits for the clusters that were enrolled before the restart.
  const enrolled = () =>
    [...registry.clusters.values()]
      .filter((r) => r.certSerials.length > 0)
      .map((r) => r.cluster.id);
  let warm = enrolled().length === 0 || config.warmupSeconds === 0;
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
  // domain is shared across clusters), so the cache holds for one engine revision.
  const warningCache = new Map<string, EngineWarning[]>();
  let warningRevision = engine.revision();
  const warnings = (clusterId: string): readonly EngineWarning[] => {
    if (engine.revision() !== warningRevision) {
      warningCache.clear();
      warningRevision = engine.revision();
    }
    let w = warningCache.get(clusterId);
    if (w === undefined) {
      w = engine.warnings(clusterId);
      warningCache.set(clusterId, w);
    }
    return w;
  };
  const auth = createAuth({ config, registry, hubCa, now });

  const catalogs = new Map<string, ClusterCatalog>();
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
    streams: new Map(),
    catalogEvents: new Set(),
    warmingUp: () => !warm,
    systemVersion: () => String(version),
    now,
    warnings,
    deliver,
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
    ...queue,
    authorizeAdmin: auth.authorizeAdmin,
    verifyAgent: auth.verifyAgent,
  };

  // Clusters known from the store take part in policy (labels) before they reconnect.
  for (const id of registry.clusters.keys()) {
    const facts = ctx.clusterFacts(id);
    if (facts !== undefined) engine.applyCatalog([facts]);
  }

  let warmupTimer: NodeJS.Timeout | undefined;
  const endWarmup = (reason: string) => {
    if (warm) return;
    warm = true;
    if (warmupTimer !== undefined) clearTimeout(warmupTimer);
    logger.info("warm-up ended", { reason });
    version += 1;
    distributor.changedAll();
  };
  if (!warm) {
    warmupTimer = setTimeout(() => endWarmup("grace period passed"), config.warmupSeconds * 1000);
    warmupTimer.unref();
  }
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
    adminToken: auth.adminToken,
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
    interceptors: [gate],
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
      : await issueServerCertificate(hubCa, splitNames(config.serverNames));
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

  let http: HttpServer | undefined;
  let metricsPort = 0;
  if (config.metricsListen !== "") {
    http = serveHttp(metrics, () => true);
    const [host, p] = splitHostPort(config.metricsListen);
    await new Promise<void>((resolve, reject) => {
      http!.once("error", reject);
      http!.listen(p, host, () => resolve());
    });
    const address = http.address();
    metricsPort = typeof address === "object" && address !== null ? address.port : 0;
  }
  logger.info("hub started", {
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
      if (warmupTimer !== undefined) clearTimeout(warmupTimer);
      for (const c of catalogs.values()) if (c.graceTimer !== undefined) clearTimeout(c.graceTimer);
      for (const s of ctx.streams.values()) s.abort();
      distributor.stop();
      await shutdown(server, 1000);
      if (http !== undefined) await new Promise<void>((resolve) => http!.close(() => resolve()));
      await store.close();
    },
  };
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  return [host === "" ? "0.0.0.0" : host, Number(address.slice(i + 1))];
}
