import { errorField, type Logger, silentLogger } from "@isthmus/logging";
import {
  type ADD,
  type DELETE,
  ERROR,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  type UPDATE,
  type Watch,
} from "@kubernetes/client-node";
import { assignDefined } from "../assign-defined.js";
import type { KubeClient } from "../kube/client.js";
import type { Resource } from "../kube/resources.js";
import type { KubeObject } from "../kube-object.js";

export type InformerEvent = typeof ADD | typeof UPDATE | typeof DELETE;
export type Delay = (ms: number) => Promise<void>;

export const realDelay: Delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Health of one informer, as `/readyz` and the metrics show it. */
export interface InformerStatus {
  name: string;
  /** Listed at least once since start. */
  synced: boolean;
  /** Not currently failing: listed and watching. */
  healthy: boolean;
  /** The last list or watch error, if any. */
  lastError: string | undefined;
  /** How many times the list/watch was restarted after an error. */
  restarts: number;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  resource: Resource;
  /** Name in logs and metrics; default the resource plural. */
  name?: string;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Keeps only what the agent reads of each object (memory with 50k pods). */
  transform?: (obj: KubeObject) => T;
  /** Injected sleep for restart backoff. */
  delay?: Delay;
  /** Server-side watch timeout (the watch is renewed after it). Default 300 s. */
  watchTimeoutSeconds?: number;
  /** A watch silent for longer than this is stalled. Default watchTimeoutSeconds + 60 s. */
  stallMs?: number;
  /** Restart backoff after a failed list or watch: initial and maximum, in ms. */
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
  /** Called when the status changes (healthy/unhealthy, synced, restarts). */
  onStatus?: (status: InformerStatus) => void;
}

/**
 * A cache fed by client-node's ListWatch that does not stay dead: client-node relists on
 * 410 Gone itself but stops on any other watch error and on a failed list; this wrapper
 * restarts it with exponential backoff (from the last resourceVersion, so a compacted
 * history gives 410 and a relist) and reports its health.
 */
export interface Informer<T extends KubeObject> {
  readonly name: string;
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  on(event: InformerEvent, cb: (obj: T) => void): void;
  /** Starts listing and watching; resolves after the first successful list. */
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): InformerStatus;
}

type WatchFn = Watch["watch"];

/**
 * Long as a closure, not as one job: its inner functions share one informer's cache, watch
 * and restart state; none is over about 80 lines.
 */
export function createInformer<T extends KubeObject = KubeObject>(
  options: InformerOptions<T>,
): Informer<T> {
  const { client, resource } = options;
  const name = options.name ?? resource.plural;
  const delay = options.delay ?? realDelay;
  const initialMs = options.backoff?.initialMs ?? 500;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const logger = (options.logger ?? silentLogger).child({ informer: name });
  const transform = options.transform ?? ((o: KubeObject) => o as T);
  const watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
  const stallMs = options.stallMs ?? (watchTimeoutSeconds + 60) * 1000;
  const apiVersion =
    resource.group === "" ? resource.version : `${resource.group}/${resource.version}`;
  const path =
    resource.namespaced && options.namespace !== undefined
      ? `${resource.group === "" ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`}/namespaces/${options.namespace}/${resource.plural}`
      : `${resource.group === "" ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`}/${resource.plural}`;

  const status: InformerStatus = {
    name,
    synced: false,
    healthy: false,
    lastError: undefined,
    restarts: 0,
  };
  let stopped = true;
  let backoffMs = initialMs;
  let onSynced: (() => void) | undefined;
  const notify = () => options.onStatus?.({ ...status });
  const markHealthy = () => {
    backoffMs = initialMs;
    if (!status.healthy) {
      status.healthy = true;
      if (status.lastError !== undefined)
        logger.info("informer recovered", { resource: resource.plural });
      notify();
    }
  };

  const listFn = async (): Promise<KubernetesListObject<T>> => {
    const listOptions: Parameters<KubeClient["list"]>[1] = {};
    assignDefined(listOptions, {
      namespace: options.namespace,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
    });
    const result = await client.list(resource, listOptions);
    const items = result.items.map(transform);
    if (!status.synced) {
      status.synced = true;
      queueMicrotask(() => onSynced?.());
    }
    markHealthy();
    return {
      items,
      metadata: { resourceVersion: result.resourceVersion },
    } as KubernetesListObject<T>;
  };

  // The watch is the kube client's (plain node:http, one JSON.parse per line), in the shape
  // of client-node's Watch that ListWatch calls. Watch events go straight into ListWatch's
  // cache: slim them on the way in. The wrapper
  // also asks for bookmarks and a server-side timeout, and treats a watch that sends nothing
  // (not even a bookmark) for longer than that as stalled: it is cut and restarted as a
  // failure, so that a stuck watch is noticed instead of silently serving an old cache.
  // A watch the server accepted counts as healthy even before its first event.
  let quickCloses = 0;
  const watch = {
    watch: (async (p, query, callback, done) => {
      if (quickCloses > 0) await delay(Math.min(initialMs * 2 ** (quickCloses - 1), maxMs));
      if (stopped) {
        const aborted = new AbortController();
        aborted.abort();
        return aborted;
      }
      const startedAt = Date.now();
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      let controller: AbortController | undefined;
      const finish = (err: unknown) => {
        if (finished) return;
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
        // A watch that ends normally right after it started (a proxy cutting streams, an
        // overloaded server) must not become a tight reconnect loop.
        quickCloses = !err && Date.now() - startedAt < 1000 ? quickCloses + 1 : 0;
        done(err);
      };
      const arm = () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(() => {
          finish(new Error(`watch stalled: no event or bookmark for ${stallMs / 1000}s`));
          controller?.abort();
        }, stallMs);
        timer.unref();
      };
      arm();
      controller = await client.watch(
        p,
        { ...query, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds },
        (phase: string, obj: KubeObject, raw: unknown) => {
          arm();
          if (phase === "ADDED" || phase === "MODIFIED" || phase === "DELETED") {
            if (obj.apiVersion === undefined) obj.apiVersion = apiVersion;
            if (obj.kind === undefined) obj.kind = resource.kind;
            callback(phase, transform(obj), raw);
          } else callback(phase, obj, raw);
        },
        (err: unknown) => finish(err),
      );
      // A watch that connected after stop() (ListWatch.stop aborts only the request it
      // already holds) must not stay open.
      if (finished || stopped) controller.abort();
      else markHealthy();
      return controller;
    }) as WatchFn,
  } as unknown as Watch;

  const lw = new ListWatch<T>(
    path,
    watch,
    listFn as () => Promise<KubernetesListObject<T>>,
    false,
    options.labelSelector,
    options.fieldSelector,
  );

  lw.on(ERROR, (err?: unknown) => {
    if (stopped) return;
    status.healthy = false;
    status.lastError = errorField(err) || "list/watch failed";
    status.restarts++;
    const wait = backoffMs;
    backoffMs = Math.min(backoffMs * 2, maxMs);
    logger.warn("informer failed, restarting", {
      resource: resource.plural,
      err: status.lastError,
      backoff_ms: wait,
    });
    notify();
    void delay(wait).then(() => {
      if (!stopped) void lw.start();
    });
  });

  return {
    name,
    get: (n, ns) => lw.get(n, ns),
    list: (ns) => lw.list(ns),
    on: (event, cb) => lw.on(event as typeof ADD, cb as (o: KubernetesObject) => void),
    start() {
      stopped = false;
      const synced = status.synced
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onSynced = resolve;
          });
      void lw.start();
      return synced;
    },
    async stop() {
      stopped = true;
      onSynced = undefined;
      await lw.stop();
    },
    status: () => ({ ...status }),
  };
}
