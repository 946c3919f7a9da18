// The agent's Kubernetes REST client: the few calls it makes (list, get, create, replace,
// server-side apply, delete, watch) as plain JSON over node:http(s), with the kubeconfig's
// TLS settings and credentials. About 400 lines: one closure over the connection agents and
// the reused credentials; errors are api-error.ts, kubeconfig loading kubeconfig.ts.
import {
  Agent as HttpAgent,
  request as httpRequest,
  type RequestOptions,
  STATUS_CODES,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import type { KubeObject } from "../kube-object.js";
import { isKubeApiError, KubeApiError, parseError } from "./api-error.js";
import { apiVersionOf, collectionPath, objectPath, type Resource } from "./resources.js";

// Re-exported: callers import the client's errors and kubeconfig loaders from here.
export { isKubeApiError, KubeApiError } from "./api-error.js";
export { kubeConfigFromDefault, kubeConfigFromString } from "./kubeconfig.js";

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; default 500. */
  pageSize?: number;
}

/** The few REST calls the agent makes, as plain JSON (no model classes). */
export interface KubeClient {
  readonly config: KubeConfig;
  /** Closes idle keep-alive connections. */
  close(): void;
  /** Lists every page of a collection; items get their apiVersion and kind. */
  list(res: Resource, options?: ListOptions): Promise<ListResult>;
  /** Reads one object; undefined when it does not exist. */
  get(res: Resource, name: string, namespace?: string): Promise<KubeObject | undefined>;
  create(res: Resource, obj: KubeObject): Promise<KubeObject>;
  /** Replaces an object (PUT); `metadata.resourceVersion` makes it conditional. */
  replace(res: Resource, obj: KubeObject, options?: { fieldManager?: string }): Promise<KubeObject>;
  /** Server-side apply (`application/apply-patch+yaml`). The object the server answers with
   * is decoded only with `returnObject` (the agent reads its objects through its informers,
   * and checks the answer only when it restores an object someone else changed). */
  apply(
    res: Resource,
    obj: KubeObject,
    options: { fieldManager: string; force: boolean; returnObject?: boolean },
  ): Promise<KubeObject | undefined>;
  /** Deletes an object; `uid` makes it conditional (precondition). Missing objects are fine. */
  delete(res: Resource, name: string, namespace: string | undefined, uid?: string): Promise<void>;
  /** Watches a collection, as client-node's `Watch.watch` does (same arguments, same calls):
   * `path` is the collection's path, `query` is sent with `watch=true`; every event line
   * is parsed and given to `onEvent` (type, object, the whole event; a line that is not
   * JSON is skipped); `done` is called once, with null when the server ends the watch, or
   * the error (a status other than 200 carries `statusCode`). Resolves once the answer's
   * headers arrived (or the request failed) with the controller that ends the watch. Read
   * with plain `node:http` rather than client-node's fetch, stream and readline per line:
   * the agent reads every change to its objects this way. */
  watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: KubeObject, event: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

/** How long credentials from an auth provider or exec plugin are reused before client-node
 * is asked again (it caches tokens itself and refreshes them when they expire). */
const DYNAMIC_AUTH_TTL_MS = 1000;

interface RequestSetup {
  agent: HttpAgent;
  /** Watches hold their connection for minutes: an agent of their own, so that they never
   * take the sockets of requests. */
  watchAgent: HttpAgent;
  headers: Record<string, string>;
}

/** What a watch error carries, as client-node's: the HTTP status for ListWatch (410: relist). */
class WatchError extends Error {
  override readonly name = "WatchError";
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

export interface KubeClientOptions {
  /** Clock for the reuse of dynamic credentials (ms). */
  now?: () => number;
}

/** A client over the kubeconfig's current context (its TLS settings and credentials).
 * Long as a closure, not as one job: its inner functions share the connection agents and the
 * reused credentials; none is over about 80 lines.
 */
export function createKubeClient(config: KubeConfig, options: KubeClientOptions = {}): KubeClient {
  const clock = options.now ?? Date.now;
  const server = config.getCurrentCluster()?.server;
  if (server === undefined) throw new Error("kubeconfig: no current cluster");
  const base = new URL(server);
  const secure = base.protocol === "https:";
  const send = secure ? httpsRequest : httpRequest;
  const basePath = base.pathname.replace(/\/$/, "");
  const target = {
    protocol: base.protocol,
    hostname: base.hostname.startsWith("[") ? base.hostname.slice(1, -1) : base.hostname,
    port: base.port === "" ? (secure ? 443 : 80) : Number(base.port),
  };
  // client-node's applyToHTTPSOptions reads the TLS files, builds a new HTTP agent and asks the
  // authenticator on every call. It is asked once for the TLS settings (one keep-alive agent
  // for every call), and again for the headers only when the user's credentials can change
  // (an auth provider such as the in-cluster token file, or an exec plugin), at most once per
  // DYNAMIC_AUTH_TTL_MS.
  const user = config.getCurrentUser();
  const dynamicAuth = user?.authProvider !== undefined || user?.exec !== undefined;
  let agent: HttpAgent | undefined;
  let watchAgent: HttpAgent | undefined;
  let setup: Promise<RequestSetup> | undefined;
  let setupAt = 0;

  async function requestSetup(): Promise<RequestSetup> {
    const opts: RequestOptions & Record<string, unknown> = { headers: {} };
    await config.applyToHTTPSOptions(opts as never);
    if (agent === undefined) {
      const tls = {
        keepAlive: true,
        maxSockets: 32,
        ...(opts.ca === undefined ? {} : { ca: opts.ca }),
        ...(opts.cert === undefined ? {} : { cert: opts.cert }),
        ...(opts.key === undefined ? {} : { key: opts.key }),
        ...(opts.rejectUnauthorized === undefined
          ? {}
          : { rejectUnauthorized: opts.rejectUnauthorized }),
        ...(opts.servername === undefined ? {} : { servername: opts.servername }),
      };
      agent = secure
        ? new HttpsAgent(tls as never)
        : new HttpAgent({ keepAlive: true, maxSockets: 32 });
      const watchTls = { ...tls, keepAlive: false, maxSockets: Number.POSITIVE_INFINITY };
      watchAgent = secure ? new HttpsAgent(watchTls as never) : new HttpAgent({ keepAlive: false });
    }
    const headers: Record<string, string> = {
      ...(opts.headers as Record<string, string>),
      accept: "application/json",
    };
    if (opts.auth !== undefined)
      headers.authorization = `Basic ${Buffer.from(String(opts.auth)).toString("base64")}`;
    return { agent, watchAgent: watchAgent as HttpAgent, headers };
  }

  function currentSetup(): Promise<RequestSetup> {
    const now = clock();
    if (setup === undefined || (dynamicAuth && now - setupAt >= DYNAMIC_AUTH_TTL_MS)) {
      setupAt = now;
      const next = requestSetup();
      setup = next;
      // A failed setup (an exec plugin that failed) is not kept: the next call asks again.
      next.catch(() => {
        if (setup === next) setup = undefined;
      });
    }
    return setup;
  }

  async function call(
    method: string,
    path: string,
    what: string,
    request: {
      query?: Record<string, string | undefined>;
      body?: unknown;
      contentType?: string;
      /** Decode the answer (default); false: undefined, the body is read and dropped. */
      decode?: boolean;
    } = {},
  ): Promise<unknown> {
    let search = "";
    if (request.query !== undefined) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(request.query)) if (v !== undefined) params.set(k, v);
      const q = params.toString();
      if (q !== "") search = `?${q}`;
    }
    const { agent: requestAgent, headers: common } = await currentSetup();
    const headers: Record<string, string> = { ...common };
    let body: string | undefined;
    if (request.body !== undefined) {
      body = JSON.stringify(request.body);
      headers["content-type"] = request.contentType ?? "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    const { status, text, retryAfter } = await new Promise<{
      status: number;
      text: string;
      retryAfter: string | undefined;
    }>((resolve, reject) => {
      const req = send(
        { ...target, path: basePath + path + search, method, headers, agent: requestAgent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const ra = res.headers["retry-after"];
            resolve({
              status: res.statusCode ?? 0,
              text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8"),
              retryAfter: Array.isArray(ra) ? ra[0] : ra,
            });
          });
          res.on("error", reject);
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error("request timed out after 60s")));
      req.on("error", reject);
      req.end(body);
    }).catch((err: unknown) => {
      throw new KubeApiError(
        0,
        "NetworkError",
        `${what}: ${err instanceof Error ? err.message : String(err)}`,
        undefined,
        { cause: err },
      );
    });
    if (status >= 400 || status === 0) throw parseError(status, text, retryAfter, what);
    return request.decode === false ? undefined : JSON.parse(text);
  }

  async function watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, object: KubeObject, event: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let doneCalled = false;
    const finish = (err: unknown) => {
      if (doneCalled) return;
      doneCalled = true;
      controller.abort();
      done(err);
    };
    const params = new URLSearchParams({ watch: "true" });
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    let setup: RequestSetup;
    try {
      setup = await currentSetup();
    } catch (err) {
      finish(err);
      return controller;
    }
    await new Promise<void>((resolve) => {
      const req = send(
        {
          ...target,
          path: `${basePath}${path}?${params.toString()}`,
          method: "GET",
          headers: setup.headers,
          agent: setup.watchAgent,
          signal: controller.signal,
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            const status = res.statusCode ?? 0;
            finish(new WatchError(res.statusMessage || STATUS_CODES[status] || "Error", status));
            return resolve();
          }
          res.socket.setKeepAlive(true, 30_000);
          res.setEncoding("utf8");
          // The text after the last newline: the start of the next line.
          let pending = "";
          res.on("data", (chunk: string) => {
            const text = pending + chunk;
            let start = 0;
            for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
              if (doneCalled) return;
              const line = text.slice(start, end);
              start = end + 1;
              let event: { type: string; object: KubeObject } | undefined;
              try {
                event = JSON.parse(line) as { type: string; object: KubeObject };
              } catch {
                // not an event line: skipped, as client-node does
              }
              if (event !== undefined) onEvent(event.type, event.object, event);
            }
            pending = text.slice(start);
          });
          res.on("end", () => finish(null));
          res.on("close", () => finish(null));
          res.on("error", finish);
          resolve();
        },
      );
      req.on("error", (err) => {
        finish(err);
        resolve();
      });
      req.end();
    });
    return controller;
  }

  const client: KubeClient = {
    config,
    close: () => {
      agent?.destroy();
      watchAgent?.destroy();
    },
    watch,
    async list(res, options = {}) {
      const items: KubeObject[] = [];
      let resourceVersion = "";
      let token: string | undefined;
      const apiVersion = apiVersionOf(res);
      do {
        const page = (await call(
          "GET",
          collectionPath(res, options.namespace),
          `could not list ${res.plural}`,
          {
            query: {
              labelSelector: options.labelSelector,
              fieldSelector: options.fieldSelector,
              limit: String(options.pageSize ?? 500),
              continue: token,
            },
          },
        )) as { items?: KubeObject[]; metadata?: { resourceVersion?: string; continue?: string } };
        for (const item of page.items ?? []) {
          item.apiVersion = apiVersion;
          item.kind = res.kind;
          items.push(item);
        }
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        token = page.metadata?.continue || undefined;
      } while (token !== undefined);
      return { items, resourceVersion };
    },
    async get(res, name, namespace) {
      try {
        return (await call(
          "GET",
          objectPath(res, name, namespace),
          `could not get ${res.kind} ${namespace ?? ""}/${name}`,
        )) as KubeObject;
      } catch (err) {
        if (isKubeApiError(err) && err.code === 404) return undefined;
        throw err;
      }
    },
    async create(res, obj) {
      return (await call(
        "POST",
        collectionPath(res, obj.metadata.namespace),
        `could not create ${res.kind} ${obj.metadata.namespace ?? ""}/${obj.metadata.name}`,
        {
          body: obj,
        },
      )) as KubeObject;
    },
    async replace(res, obj, options = {}) {
      return (await call(
        "PUT",
        objectPath(res, obj.metadata.name, obj.metadata.namespace),
        `could not update ${res.kind} ${obj.metadata.namespace ?? ""}/${obj.metadata.name}`,
        { body: obj, query: { fieldManager: options.fieldManager } },
      )) as KubeObject;
    },
    async apply(res, obj, options) {
      const query: Record<string, string> = { fieldManager: options.fieldManager };
      if (options.force) query.force = "true";
      const answer = await call(
        "PATCH",
        objectPath(res, obj.metadata.name, obj.metadata.namespace),
        `could not apply ${res.kind} ${obj.metadata.namespace ?? ""}/${obj.metadata.name}`,
        {
          query,
          body: obj,
          contentType: "application/apply-patch+yaml",
          decode: options.returnObject === true,
        },
      );
      return options.returnObject === true ? (answer as KubeObject) : undefined;
    },
    async delete(res, name, namespace, uid) {
      try {
        await call(
          "DELETE",
          objectPath(res, name, namespace),
          `could not delete ${res.kind} ${namespace ?? ""}/${name}`,
          {
            body:
              uid === undefined
                ? { kind: "DeleteOptions", apiVersion: "v1" }
                : { kind: "DeleteOptions", apiVersion: "v1", preconditions: { uid } },
            decode: false,
          },
        );
      } catch (err) {
        if (isKubeApiError(err) && err.code === 404) return;
        throw err;
      }
    },
  };
  return client;
}
