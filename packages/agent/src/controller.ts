import { type Logger, silentLogger } from "@isthmus/logging";
import { withDefaultAccess } from "./apply/default-access.js";
import { createReconciler, type Reconciler, type ReconcilerOptions } from "./apply/reconciler.js";
import { assignDefined } from "./assign-defined.js";
import {
  type ClusterCache,
  type ClusterCacheOptions,
  createClusterCache,
} from "./discovery/cache.js";
import type { KubeClient } from "./kube/client.js";

export interface ControllerOptions {
  client: KubeClient;
  clusterId: string;
  istioNamespace?: string;
  locality?: string;
  delay?: ClusterCacheOptions["delay"];
  informerBackoff?: ClusterCacheOptions["backoff"];
  applyBackoff?: ReconcilerOptions["backoff"];
  maxAttempts?: number;
  logger?: Logger;
  onInformerStatus?: ClusterCacheOptions["onInformerStatus"];
  onWrite?: ReconcilerOptions["onWrite"];
  now?: () => Date;
  /** How often objects whose apply failed are retried, in ms. Default 30 s; 0 disables. */
  retryIntervalMs?: number;
}

/**
 * The agent's Kubernetes side without the hub: the informer cache and the reconciler, wired
 * so that local endpoint churn and mesh changes re-render locally and drifted objects are
 * repaired. `start` syncs the caches and adopts the owned objects already in the cluster.
 */
export interface Controller {
  readonly cache: ClusterCache;
  readonly reconciler: Reconciler;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createController(options: ControllerOptions): Controller {
  const logger = options.logger ?? silentLogger;
  const cacheOptions: ClusterCacheOptions = {
    client: options.client,
    clusterId: options.clusterId,
    logger: logger.child({ module: "discovery" }),
  };
  assignDefined(cacheOptions, {
    istioNamespace: options.istioNamespace,
    locality: options.locality,
    delay: options.delay,
    backoff: options.informerBackoff,
    onInformerStatus: options.onInformerStatus,
    now: options.now,
  });
  const cache = createClusterCache(cacheOptions);

  const reconcilerOptions: ReconcilerOptions = {
    client: options.client,
    live: cache,
    logger: logger.child({ module: "apply" }),
  };
  assignDefined(reconcilerOptions, {
    delay: options.delay,
    backoff: options.applyBackoff,
    maxAttempts: options.maxAttempts,
    onWrite: options.onWrite,
    now: options.now,
  });
  const reconciler = withDefaultAccess(createReconciler(reconcilerOptions), cache);

  cache.onEndpoints((ns, name) => {
    reconciler.endpointsChanged(ns, name);
    void reconciler.serviceChanged(ns, name);
  });
  cache.onMesh(() => reconciler.meshChanged());
  cache.onRendered((event, obj) => reconciler.objectChanged(obj, event === "delete"));

  // A NACKed object is not resent by the hub until its intent changes: keep trying it here.
  let retryTimer: NodeJS.Timeout | undefined;
  const retryIntervalMs = options.retryIntervalMs ?? 30_000;

  return {
    cache,
    reconciler,
    async start() {
      await cache.start();
      reconciler.adopt();
      if (retryIntervalMs > 0) {
        retryTimer = setInterval(() => {
          const n = reconciler.retryFailed();
          if (n > 0) logger.info("retrying failed objects", { objects: n });
        }, retryIntervalMs);
        retryTimer.unref();
      }
    },
    async stop() {
      if (retryTimer !== undefined) clearInterval(retryTimer);
      reconciler.stop();
      await cache.stop();
    },
  };
}
