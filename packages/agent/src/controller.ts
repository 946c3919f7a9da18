import { type Logger, silentLogger } from "@isthmus/logging";
import { withDefaultAccess } from "./apply/default-access.js";
import { createReconciler, type Reconciler, type ReconcilerOptions } from "./apply/reconciler.js";
import { assignDefined } from "./assign-defined.js";
import { type ConflictWatch, createConflictWatch } from "./conflicts/watch.js";
import {
  type ClusterCache,
  type ClusterCacheOptions,
  createClusterCache,
} from "./discovery/cache.js";
import type { KubeClient } from "./kube/client.js";
import type { KubeObject } from "./kube-object.js";
import { maskPodAddresses, readClusterObjects } from "./report/cluster-objects.js";

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
  /** How often objects whose apply failed are retried, in ms. Default 30 s; 0 disables. A
   * namespace that appears retries them at once (an import waits for its namespace). */
  retryIntervalMs?: number;
  /** Quiet window of conflict detection after a change, in ms. Default 200. */
  conflictWindowMs?: number;
}

/**
 * The agent's Kubernetes side without the hub: the informer cache and the reconciler, wired
 * so that local endpoint churn and mesh changes re-render locally and drifted objects are
 * repaired. `start` syncs the caches and adopts the owned objects already in the cluster.
 */
export interface Controller {
  readonly cache: ClusterCache;
  readonly reconciler: Reconciler;
  /** Foreign policies that change what Istio enforces for Isthmus decisions. */
  readonly conflicts: ConflictWatch;
  /** The live objects the mesh model reads, listed now, pod IPs replaced by stand-ins. */
  clusterObjects(): Promise<KubeObject[]>;
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
  // An object refused because its namespace did not exist (an import lives in the service's
  // namespace) is written as soon as the namespace appears, not on the next retry tick.
  cache.onNamespaceAdded((namespace) => {
    const n = reconciler.retryFailed();
    if (n > 0) logger.info("namespace created: retrying failed objects", { namespace, objects: n });
  });
  const conflicts = createConflictWatch({
    clusterId: options.clusterId,
    cache,
    reconciler,
    logger: logger.child({ module: "conflicts" }),
    ...(options.conflictWindowMs === undefined ? {} : { windowMs: options.conflictWindowMs }),
  });

  // A NACKed object is not resent by the hub until its intent changes: keep trying it here.
  let retryTimer: NodeJS.Timeout | undefined;
  const retryIntervalMs = options.retryIntervalMs ?? 30_000;

  return {
    cache,
    reconciler,
    conflicts,
    async clusterObjects() {
      const objects = await readClusterObjects(
        options.client,
        options.clusterId,
        options.istioNamespace ?? "istio-system",
      );
      return maskPodAddresses(objects);
    },
    async start() {
      await cache.start();
      reconciler.adopt();
      conflicts.detect();
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
      conflicts.stop();
      reconciler.stop();
      await cache.stop();
    },
  };
}
