import { readFile, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { stringify } from "yaml";
import type { Faults } from "./faults.js";
import { createFaults } from "./faults.js";
import type { KubeObject } from "./object.js";
import { clone } from "./object.js";
import type { ResourceType } from "./resources.js";
import { parseApiVersion } from "./resources.js";
import { both, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import { createHandler, parseObjects } from "./server.js";
import { badRequest, isKubeSimError } from "./status.js";
import type { PatchType } from "./store.js";
import { Store } from "./store.js";
import type { ServingCertificate } from "./tls.js";
import { generateServingCertificate } from "./tls.js";

export interface KubeSimOptions {
  /** Cluster name used for the kubeconfig cluster, user and context. Default `kubesim`. */
  name?: string;
  /** Listen address. Default `127.0.0.1`. */
  host?: string;
  /** Listen port; 0 (the default) picks a free one, reported by `port` and `url`. */
  port?: number;
  /** Serve HTTPS: `true` generates a throwaway CA and server certificate; or pass your own. */
  tls?: boolean | ServingCertificate;
  /** Require `Authorization: Bearer <token>` on every request except health and version. */
  token?: string;
  /** Events kept for watch resume; older resourceVersions get 410 Expired. Default 10000. */
  historySize?: number;
  /** Validate objects (names, core required fields, Istio schemas). Default true. */
  validate?: boolean;
  /** Namespaces that exist at start. Default default, kube-system, kube-public, kube-node-lease, istio-system. */
  namespaces?: string[];
  /** Watch duration when the client sends no `timeoutSeconds`. Default 1800. */
  watchTimeoutSeconds?: number;
  /** Interval of BOOKMARK events on watches that allow them. Default 10000 ms. */
  bookmarkIntervalMs?: number;
  /** A watch whose client leaves more than this many bytes unread is ended. Default 16 MiB. */
  watchBufferBytes?: number;
  /** Clock for creationTimestamp and AGE. */
  now?: () => Date;
}

export interface ListFilter {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ApplyOptions {
  fieldManager: string;
  force?: boolean;
}

/** One simulated cluster: an in-memory API server with an in-process API and fault controls. */
export interface KubeSim {
  readonly name: string;
  /** `http(s)://host:port`; throws before `listen()`. */
  readonly url: string;
  readonly port: number;
  /** PEM of the CA that signed the serving certificate (HTTPS only). */
  readonly caPem: string | undefined;
  readonly faults: Faults;
  /** Starts listening; resolves to the URL. */
  listen(): Promise<string>;
  /** Ends watches and stops listening. */
  close(): Promise<void>;
  /** A kubeconfig (YAML) for kubectl and client-node `KubeConfig.loadFromString`. */
  kubeconfig(): string;
  /** Writes `kubeconfig()` to `path` (mode 0600) and returns the path. */
  writeKubeconfig(path: string): Promise<string>;
  create(obj: KubeObject): KubeObject;
  get(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject;
  /** Like `get`, but undefined when the object does not exist. */
  find(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject | undefined;
  list(apiVersion: string, kind: string, filter?: ListFilter): KubeObject[];
  update(obj: KubeObject): KubeObject;
  updateStatus(obj: KubeObject): KubeObject;
  patch(
    apiVersion: string,
    kind: string,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    type?: Exclude<PatchType, "apply">,
  ): KubeObject;
  apply(obj: KubeObject, options: ApplyOptions): KubeObject;
  delete(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject;
  /**
   * Loads objects (multi-document YAML or parsed objects) as the cluster's controllers would
   * write them: created or replaced, status included. Namespaces and CRDs go first.
   */
  load(objects: string | KubeObject[]): KubeObject[];
  loadFile(path: string): Promise<KubeObject[]>;
  /** The current global resourceVersion. */
  resourceVersion(): string;
  /** Sends a BOOKMARK now on every watch that allows bookmarks. */
  sendBookmarks(): void;
  /** How many watch streams are open (to see a client re-watch, or a slow one dropped). */
  openWatches(): number;
  /** The served resource types (built in and from CRDs). */
  resourceTypes(): ResourceType[];
}

const defaultNamespaces = [
  "default",
  "kube-system",
  "kube-public",
  "kube-node-lease",
  "istio-system",
];

const seedOrder = (o: KubeObject): number =>
  o.kind === "Namespace" ? 0 : o.kind === "CustomResourceDefinition" ? 1 : 2;

/** Creates a simulated cluster (not yet listening; the in-process API works at once). */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the KubeSim object literal, one short method per in-process verb over one store
export function createKubeSim(options: KubeSimOptions = {}): KubeSim {
  const name = options.name ?? "kubesim";
  const host = options.host ?? "127.0.0.1";
  const now = options.now ?? (() => new Date());
  const store = new Store({
    historySize: options.historySize ?? 10000,
    validate: options.validate ?? true,
    now,
  });
  const cert: ServingCertificate | undefined =
    options.tls === true
      ? generateServingCertificate([host, "localhost", "127.0.0.1"])
      : options.tls === false
        ? undefined
        : options.tls;
  let server: Server | undefined;
  let port = 0;

  const typeOf = (apiVersion: string, kind: string): ResourceType =>
    store.typeForObject(apiVersion, kind);
  const out = (o: KubeObject): KubeObject => clone(o);
  const inNs = (t: ResourceType, obj: KubeObject): KubeObject =>
    t.namespaced && (obj.metadata.namespace === undefined || obj.metadata.namespace === "")
      ? { ...obj, metadata: { ...obj.metadata, namespace: "default" } }
      : obj;

  const load = (objects: string | KubeObject[]): KubeObject[] => {
    let list: KubeObject[];
    try {
      list = typeof objects === "string" ? parseObjects(objects) : objects;
    } catch (err: unknown) {
      throw badRequest(`could not load objects: ${(err as Error).message}`);
    }
    const sorted = [...list].sort((a, b) => seedOrder(a) - seedOrder(b));
    return sorted.map((o) => {
      if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") {
        throw badRequest(
          `could not load objects: apiVersion and kind are required (object ${JSON.stringify(o.metadata?.name)})`,
        );
      }
      const t = typeOf(o.apiVersion, o.kind);
      const ns = t.namespaced ? (o.metadata?.namespace ?? "default") : undefined;
      const obj = clone(o);
      if (ns !== undefined) obj.metadata.namespace = ns;
      const existing = store
        .collection(t)
        .byKey.get(ns === undefined ? obj.metadata.name : `${ns}/${obj.metadata.name}`);
      if (existing === undefined)
        return out(store.create(t, obj, { trusted: true, fieldManager: "kubesim-seed" }).obj);
      const { resourceVersion: _rv, ...meta } = obj.metadata;
      return out(
        store.update(
          t,
          ns,
          obj.metadata.name,
          { ...obj, metadata: meta as KubeObject["metadata"] },
          { trusted: true, fieldManager: "kubesim-seed" },
        ).obj,
      );
    });
  };

  let handler: ReturnType<typeof createHandler> | undefined;
  const faults = createFaults({
    closeWatches: () => handler?.closeWatches() ?? 0,
    compact: () => store.compact(),
  });
  const http = createHandler({
    store,
    faults,
    token: options.token,
    now,
    serverAddress: () => `${host}:${port}`,
    watchTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 10000,
    watchBufferBytes: options.watchBufferBytes ?? 16 * 1024 * 1024,
    seed: (yaml) => load(yaml),
  });
  handler = http;

  for (const ns of options.namespaces ?? defaultNamespaces) {
    store.create(
      store.typeFor("", "v1", "namespaces")!,
      { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
      { trusted: true, fieldManager: "kubesim" },
    );
  }

  const scheme = cert === undefined ? "http" : "https";
  const urlHost = host.includes(":") ? `[${host}]` : host;

  const sim: KubeSim = {
    name,
    get url() {
      if (server === undefined)
        throw new Error(`kubesim ${name}: not listening; call listen() first`);
      return `${scheme}://${urlHost}:${port}`;
    },
    get port() {
      return port;
    },
    caPem: cert?.caPem,
    faults: faults,
    async listen() {
      if (server !== undefined) return sim.url;
      const s =
        cert === undefined
          ? createHttpServer(http.handle)
          : createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, http.handle);
      s.keepAliveTimeout = 60_000;
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(options.port ?? 0, host, () => resolve());
      });
      server = s;
      port = (s.address() as AddressInfo).port;
      return sim.url;
    },
    async close() {
      http.shutdown();
      faults.reset();
      const s = server;
      if (s === undefined) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
    kubeconfig() {
      const cluster: Record<string, unknown> = { server: sim.url };
      if (cert !== undefined)
        cluster["certificate-authority-data"] = Buffer.from(cert.caPem).toString("base64");
      // client-node refuses plain http:// servers unless TLS verification is marked skipped.
      else cluster["insecure-skip-tls-verify"] = true;
      const user: Record<string, unknown> =
        options.token === undefined ? {} : { token: options.token };
      return stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name, cluster }],
        users: [{ name: `${name}-user`, user }],
        contexts: [
          { name, context: { cluster: name, user: `${name}-user`, namespace: "default" } },
        ],
        "current-context": name,
        preferences: {},
      });
    },
    async writeKubeconfig(path) {
      await writeFile(path, sim.kubeconfig(), { mode: 0o600 });
      return path;
    },
    create(obj) {
      const t = typeOf(obj.apiVersion, obj.kind);
      return out(store.create(t, inNs(t, obj), { fieldManager: "kubesim" }).obj);
    },
    get(apiVersion, kind, n, namespace) {
      const t = typeOf(apiVersion, kind);
      return withApiVersion(out(store.getStored(t, namespace, n).obj), apiVersion);
    },
    find(apiVersion, kind, n, namespace) {
      try {
        return sim.get(apiVersion, kind, n, namespace);
      } catch (err: unknown) {
        if (isKubeSimError(err) && err.code === 404) return undefined;
        throw err;
      }
    },
    list(apiVersion, kind, filter = {}) {
      const t = typeOf(apiVersion, kind);
      const selector = both(
        parseLabelSelector(filter.labelSelector),
        parseFieldSelector(filter.fieldSelector, t.kind),
      );
      return store
        .list(t, { namespace: filter.namespace, selector })
        .items.map((s) => withApiVersion(out(s.obj), apiVersion));
    },
    update(input) {
      const t = typeOf(input.apiVersion, input.kind);
      const obj = inNs(t, input);
      return out(
        store.update(t, obj.metadata.namespace, obj.metadata.name, obj, { fieldManager: "kubesim" })
          .obj,
      );
    },
    updateStatus(input) {
      const t = typeOf(input.apiVersion, input.kind);
      const obj = inNs(t, input);
      return out(
        store.update(t, obj.metadata.namespace, obj.metadata.name, obj, {
          fieldManager: "kubesim",
          subresource: "status",
        }).obj,
      );
    },
    patch(apiVersion, kind, n, namespace, body, type = "merge") {
      const t = typeOf(apiVersion, kind);
      return out(store.patch(t, namespace, n, type, body, { fieldManager: "kubesim" }).obj);
    },
    apply(input, opts) {
      const t = typeOf(input.apiVersion, input.kind);
      const obj = inNs(t, input);
      const o = { fieldManager: opts.fieldManager, force: opts.force === true };
      return out(store.apply(t, obj.metadata.namespace, obj.metadata.name, obj, o).obj);
    },
    delete(apiVersion, kind, n, namespace) {
      const t = typeOf(apiVersion, kind);
      return out(store.delete(t, namespace, n).obj);
    },
    load,
    async loadFile(path) {
      return load(await readFile(path, "utf8"));
    },
    resourceVersion: () => String(store.rv),
    sendBookmarks: () => http.sendBookmarks(),
    openWatches: () => http.openWatches(),
    resourceTypes: () => [...store.types.values()],
  };
  return sim;
}

function withApiVersion(o: KubeObject, apiVersion: string): KubeObject {
  if (o.apiVersion === apiVersion) return o;
  const { group } = parseApiVersion(apiVersion);
  return parseApiVersion(o.apiVersion).group === group ? { ...o, apiVersion } : o;
}

/** Creates a simulated cluster and starts listening. */
export async function startKubeSim(options: KubeSimOptions = {}): Promise<KubeSim> {
  const sim = createKubeSim(options);
  await sim.listen();
  return sim;
}
