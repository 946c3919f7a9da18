import { createLogger, type LogFormat, type Logger } from "@isthmus/logging";
import type { KubeConfig } from "@kubernetes/client-node";
import { assignDefined } from "./assign-defined.js";
import {
  identitySources,
  MESH_ROOT_CONFIG_MAP,
  meshCaSources,
  meshRootSources,
  observedIdentity,
} from "./certificate-sources.js";
import { type Controller, type ControllerOptions, createController } from "./controller.js";
import type { Delay } from "./discovery/informer.js";
import { startHealthServer } from "./http.js";
import { createSecretIdentityStore, type IdentityStore } from "./identity.js";
import {
  createKubeClient,
  type KubeClient,
  kubeConfigFromDefault,
  kubeConfigFromString,
} from "./kube/client.js";
import { type AgentMetrics, createAgentMetrics } from "./metrics.js";
import { createSession, type Session, type SessionOptions, type SessionState } from "./session.js";

export const AGENT_VERSION = "0.1.0";

export interface AgentConfig {
  /** This cluster's id at the hub (DNS-1123 label). */
  clusterId: string;
  /** Hub address, host:port. */
  hubAddress: string;
  /** PEM of the CA that issued the hub's server certificate. */
  hubCaPem: string;
  /** One-time bootstrap token; only needed until the identity Secret exists. */
  bootstrapToken?: string;
  /** TLS server name of the hub, when it differs from the address host. */
  hubServerName?: string;
  /** Kubeconfig YAML text (e.g. kubesim's `kubeconfig()`); else `kubeconfigPath`; else default loading. */
  kubeconfig?: string;
  kubeconfigPath?: string;
  /** Namespace of the agent: where the identity Secret lives. Default isthmus-system. */
  namespace?: string;
  /** Namespace of the Istio control plane. Default istio-system. */
  istioNamespace?: string;
  /** Cluster locality (region/zone); default from the nodes' topology labels. */
  locality?: string;
  /** Istio's plug-in CA Secret (in istioNamespace) whose certificates' expiry is exported. */
  meshCaSecret?: string;
  /** host:port of /healthz, /readyz and /metrics; port 0 picks one; undefined: no server. */
  listen?: string;
  /** Format of the logger the agent creates when none is given; default json. */
  logFormat?: LogFormat;
  logger?: Logger;
  /** Identity storage; default the Secret isthmus-agent-identity in `namespace`. */
  identityStore?: IdentityStore;
  /** Testing hooks: injected sleep and randomness (backoff and jitter). */
  delay?: Delay;
  random?: () => number;
  /** Catalog delta debounce window and maximum (ms). */
  debounceMs?: number;
  maxDebounceMs?: number;
  /** How often objects whose apply failed are retried, in ms. Default 30 s. */
  retryIntervalMs?: number;
}

export interface AgentStatus {
  clusterId: string;
  session: SessionState;
  systemVersion: string;
  ready: boolean;
  pruning: boolean;
  informers: {
    name: string;
    synced: boolean;
    healthy: boolean;
    restarts: number;
    lastError?: string;
  }[];
  warnings: { code: string; message: string }[];
}

export interface Agent {
  /** Syncs the caches, adopts owned objects, serves health and metrics, and dials the hub. */
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): AgentStatus;
  /** Address of the health/metrics server once started, e.g. "127.0.0.1:41234". */
  healthAddress(): string | undefined;
  readonly controller: Controller;
  readonly session: Session;
  readonly metrics: AgentMetrics;
}

function loadKubeConfig(config: AgentConfig): KubeConfig {
  if (config.kubeconfig !== undefined) return kubeConfigFromString(config.kubeconfig);
  return kubeConfigFromDefault(config.kubeconfigPath);
}

/** One agent: the Kubernetes controller, the hub session, health and metrics. */
export function createAgent(config: AgentConfig): Agent {
  const format = config.logFormat === undefined ? {} : { format: config.logFormat };
  const logger = (config.logger ?? createLogger({ component: "agent", ...format })).child({
    cluster: config.clusterId,
  });
  const client = createKubeClient(loadKubeConfig(config));
  const identityStore = observedIdentity(
    config.identityStore ?? createSecretIdentityStore(client, config.namespace ?? "isthmus-system"),
  );
  const istioNamespace = config.istioNamespace ?? "istio-system";
  const metrics = createAgentMetrics(config.clusterId, {
    defaultMetrics: config.listen !== undefined,
    version: AGENT_VERSION,
    certificates: async () => [
      ...identitySources(identityStore.current()),
      ...meshRootSources(controller.cache.istioConfigMap(MESH_ROOT_CONFIG_MAP), istioNamespace),
      ...(config.meshCaSecret === undefined
        ? []
        : await meshCaSources(client, istioNamespace, config.meshCaSecret)),
    ],
  });
  const controller = agentController(config, client, metrics, logger);
  controller.reconciler.onEvent((e) => {
    if (e.type === "drift") metrics.driftRepaired(e.repair.kind);
  });
  const session = agentSession(config, identityStore, controller, metrics, logger);

  let started = false;
  let stopped = false;
  let synced = false;
  let server: { address: string; close(): Promise<void> } | undefined;

  const status = (): AgentStatus => {
    const informers = controller.cache.informerStatuses().map((s) => ({
      name: s.name,
      synced: s.synced,
      healthy: s.healthy,
      restarts: s.restarts,
      ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
    }));
    return {
      clusterId: config.clusterId,
      session: session.state(),
      systemVersion: session.systemVersion(),
      ready: synced && !stopped && informers.every((i) => i.healthy),
      pruning: controller.reconciler.pruning(),
      informers,
      warnings: controller.cache.mesh().warnings.map((w) => ({ code: w.code, message: w.message })),
    };
  };

  return {
    controller,
    session,
    metrics,
    status,
    healthAddress: () => server?.address,
    async start() {
      if (started) return;
      started = true;
      if (config.listen !== undefined) {
        server = await startHealthServer(
          config.listen,
          {
            live: () => !stopped,
            readiness: () => {
              const s = status();
              return {
                ready: s.ready,
                details: { session: s.session, informers: s.informers.filter((i) => !i.healthy) },
              };
            },
          },
          metrics.registry,
        );
        logger.info("serving health and metrics", { address: server.address });
      }
      await controller.start();
      synced = true;
      for (const w of controller.cache.mesh().warnings)
        logger.warn("cluster setup warning", { code: w.code, detail: w.message });
      session.start();
    },
    async stop() {
      stopped = true;
      await session.stop();
      await controller.stop();
      client.close();
      await server?.close();
    },
  };
}

function agentController(
  config: AgentConfig,
  client: KubeClient,
  metrics: AgentMetrics,
  logger: Logger,
): Controller {
  return createController(
    assignDefined<ControllerOptions>(
      {
        client,
        clusterId: config.clusterId,
        logger,
        onInformerStatus: (s) => metrics.informer(s),
        onWrite: (op) => metrics.write(op),
      },
      {
        istioNamespace: config.istioNamespace,
        locality: config.locality,
        delay: config.delay,
        retryIntervalMs: config.retryIntervalMs,
      },
    ),
  );
}

function agentSession(
  config: AgentConfig,
  identityStore: IdentityStore,
  controller: Controller,
  metrics: AgentMetrics,
  logger: Logger,
): Session {
  return createSession(
    assignDefined<SessionOptions>(
      {
        clusterId: config.clusterId,
        hubAddress: config.hubAddress,
        hubCaPem: config.hubCaPem,
        identityStore,
        controller,
        agentVersion: AGENT_VERSION,
        logger,
        onState: (s) => metrics.session(s),
        onCatalogSent: (u) => metrics.catalogSent(u.full, u.entries),
        onConfigApplied: (r) => metrics.configApplied(r.ok),
      },
      {
        bootstrapToken: config.bootstrapToken,
        serverNameOverride: config.hubServerName,
        delay: config.delay,
        random: config.random,
        debounceMs: config.debounceMs,
        maxDebounceMs: config.maxDebounceMs,
      },
    ),
  );
}
