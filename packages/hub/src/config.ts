// hub.yaml: its fields, their defaults and the check of each, with errors naming the field.
// Long file: one check per field of the file, in the order of the file's reference.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  defaultLimits,
  defaultWatch,
  type LimitsConfig,
  resolveLimits,
  resolveWatch,
  type WatchConfig,
} from "./limits-config.js";

export type Role = "admin" | "viewer";

export interface AdminToken {
  /** Label for logs; the token itself is never logged. */
  name: string;
  role: Role;
  token: string;
}

const CLUSTER_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Hub settings. The YAML file uses the same keys (documented in packages/hub/README.md). */
export interface HubConfig {
  /** gRPC address, "host:port" (port 0 picks a free port). */
  listen: string;
  /** Address of /metrics, /healthz and /readyz; empty disables the HTTP server. */
  metricsListen: string;
  /** Plaintext gRPC address serving grpc.health.v1 alone (Kubernetes gRPC probes); empty: none. */
  grpcHealthListen: string;
  /** Directory of the embedded store and the control-plane CA. */
  dataDir: string;
  /** Plaintext gRPC, for local use only. Agents then cannot prove their identity, so the
   * agent service is refused unless TLS is on. */
  insecure: boolean;
  /** Server certificate files; when absent the hub issues one from its CA for serverNames. */
  tls: { certFile: string; keyFile: string } | undefined;
  /** DNS names and IPs of the self-issued server certificate. */
  serverNames: string[];
  adminTokens: AdminToken[];
  debounce: { windowMs: number; maxMs: number };
  /** After a restart, removals wait until known clusters reconnected or this passed. */
  warmupSeconds: number;
  /** A disconnected cluster's services stay (stale) this long. */
  graceSeconds: number;
  bootstrapTokenTtlSeconds: number;
  clientCertTtlSeconds: number;
  maxCatalogEntries: number;
  defaults: { sameCluster: "ALLOW" | "DENY"; crossCluster: "ALLOW" | "DENY" };
  /** What one client or connection may cost the hub (limits-config.ts). */
  limits: LimitsConfig;
  /** What one catalog watcher may cost the hub. */
  watch: WatchConfig;
  /** Replicas on etcd: TTL of the leader's election lease, in seconds (etcd's minimum is 2):
   * how long a crashed leader holds on before another replica takes over. */
  leaderLeaseSeconds: number;
  /** Replicas on etcd: "host:port" at which agents and the CLI reach this replica, sent by
   * followers as the leader hint; empty: the listen address unless its host is a wildcard. */
  advertiseAddress: string;
  /** With the etcd store: where the other replicas reach this one ("host:port"), for the
   * probe that finds a crashed leader (docs/high-availability.md); "" = advertiseAddress. */
  peerAddress: string;
  /** Log line format of `isthmus hub`; undefined: ISTHMUS_LOG_FORMAT, else json. */
  logFormat: "json" | "text" | undefined;
  /** The one cluster whose agent may forward ConnectionPolicy objects ("": none). */
  policySource: { cluster: string };
  /** Where clusters, tokens and policies live: `file` (state.json in dataDir, one hub) or
   * `etcd` (shared by hub replicas; `etcd` says where). */
  store: "file" | "etcd";
  etcd: EtcdConfig;
}

/** The etcd the store uses when `store` is `etcd` (store-config.ts reads the files). */
export interface EtcdConfig {
  /** Client URLs, all `http://` or all `https://`. */
  endpoints: string[];
  prefix: string;
  requestTimeoutMs: number;
  /** Writes etcd takes in one transaction (its --max-txn-ops). */
  maxTxnOps: number;
  /** PEM files: the CA that signed etcd's server certificate; a client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** etcd user; its password from passwordFile (or password, for local use). */
  username?: string;
  password?: string;
  passwordFile?: string;
}

export const defaultHubConfig: HubConfig = {
  listen: "0.0.0.0:8443",
  metricsListen: "0.0.0.0:9090",
  grpcHealthListen: "",
  dataDir: "/var/lib/isthmus",
  insecure: false,
  tls: undefined,
  serverNames: ["localhost", "127.0.0.1"],
  adminTokens: [],
  debounce: { windowMs: 100, maxMs: 1000 },
  warmupSeconds: 60,
  graceSeconds: 300,
  bootstrapTokenTtlSeconds: 24 * 3600,
  clientCertTtlSeconds: 24 * 3600,
  maxCatalogEntries: 200_000,
  defaults: { sameCluster: "ALLOW", crossCluster: "DENY" },
  limits: defaultLimits,
  watch: defaultWatch,
  logFormat: undefined,
  policySource: { cluster: "" },
  store: "file",
  etcd: { endpoints: [], prefix: "/isthmus/", requestTimeoutMs: 5000, maxTxnOps: 128 },
  leaderLeaseSeconds: 5,
  advertiseAddress: "",
  peerAddress: "",
};

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Obj, allowed: string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      throw new ConfigError(`${where}${key}: unknown field (known: ${allowed.join(", ")})`);
  }
}

function str(v: unknown, path: string): string {
  if (typeof v !== "string" || v === "")
    throw new ConfigError(`${path}: must be a non-empty string`);
  return v;
}

function int(v: unknown, path: string, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ConfigError(`${path}: must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function decision(v: unknown, path: string): "ALLOW" | "DENY" {
  if (v !== "ALLOW" && v !== "DENY")
    throw new ConfigError(`${path}: must be ALLOW or DENY, got ${JSON.stringify(v)}`);
  return v;
}

/** A "host:port" address, or "" for none. */
function hostPortOrEmpty(value: unknown, field: string): string {
  if (typeof value !== "string" || (value !== "" && !/^[^\s,]+:[0-9]{1,5}$/.test(value)))
    throw new ConfigError(`${field}: must be host:port or "", got ${JSON.stringify(value)}`);
  return value;
}

/**
 * Validates a config object (from YAML or flags) on top of the defaults. Errors name the
 * source and the field: `hub.yaml: debounce.windowMs: must be an integer >= 1, got "x"`.
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one check per config field, each a few lines; together they are the config's one place of validation
export function resolveHubConfig(
  input: unknown,
  source: string,
  base: HubConfig = defaultHubConfig,
): HubConfig {
  const at = `${source}: `;
  try {
    if (input === null || input === undefined) return { ...base };
    if (!isObj(input)) throw new ConfigError("expected a mapping at the top level");
    checkKeys(input, Object.keys(defaultHubConfig), "");
    const c: HubConfig = structuredClone(base);
    if (input.listen !== undefined) c.listen = str(input.listen, "listen");
    if (input.metricsListen !== undefined) {
      if (typeof input.metricsListen !== "string")
        throw new ConfigError("metricsListen: must be a string");
      c.metricsListen = input.metricsListen;
    }
    if (input.dataDir !== undefined) c.dataDir = str(input.dataDir, "dataDir");
    if (input.grpcHealthListen !== undefined) {
      if (typeof input.grpcHealthListen !== "string")
        throw new ConfigError("grpcHealthListen: must be a string (host:port, or empty)");
      c.grpcHealthListen = input.grpcHealthListen;
    }
    if (input.logFormat !== undefined && input.logFormat !== null) {
      if (input.logFormat !== "json" && input.logFormat !== "text")
        throw new ConfigError(
          `logFormat: must be json or text, got ${JSON.stringify(input.logFormat)}`,
        );
      c.logFormat = input.logFormat;
    }
    if (input.insecure !== undefined) {
      if (typeof input.insecure !== "boolean")
        throw new ConfigError("insecure: must be true or false");
      c.insecure = input.insecure;
    }
    if (input.tls !== undefined && input.tls !== null) {
      if (!isObj(input.tls))
        throw new ConfigError("tls: must be a mapping with certFile and keyFile");
      checkKeys(input.tls, ["certFile", "keyFile"], "tls.");
      c.tls = {
        certFile: str(input.tls.certFile, "tls.certFile"),
        keyFile: str(input.tls.keyFile, "tls.keyFile"),
      };
    }
    if (input.serverNames !== undefined) {
      if (!Array.isArray(input.serverNames)) throw new ConfigError("serverNames: must be a list");
      c.serverNames = input.serverNames.map((n, i) => str(n, `serverNames[${i}]`));
    }
    if (input.adminTokens !== undefined) {
      if (!Array.isArray(input.adminTokens)) throw new ConfigError("adminTokens: must be a list");
      c.adminTokens = input.adminTokens.map((t, i) => adminToken(t, `adminTokens[${i}]`));
    }
    if (input.debounce !== undefined) {
      if (!isObj(input.debounce)) throw new ConfigError("debounce: must be a mapping");
      checkKeys(input.debounce, ["windowMs", "maxMs"], "debounce.");
      if (input.debounce.windowMs !== undefined)
        c.debounce.windowMs = int(input.debounce.windowMs, "debounce.windowMs", 0);
      if (input.debounce.maxMs !== undefined)
        c.debounce.maxMs = int(input.debounce.maxMs, "debounce.maxMs", 0);
      if (c.debounce.maxMs < c.debounce.windowMs)
        throw new ConfigError("debounce.maxMs: must be >= debounce.windowMs");
    }
    for (const key of [
      "warmupSeconds",
      "graceSeconds",
      "bootstrapTokenTtlSeconds",
      "clientCertTtlSeconds",
      "maxCatalogEntries",
    ] as const) {
      if (input[key] !== undefined)
        c[key] = int(input[key], key, key.endsWith("TtlSeconds") ? 1 : 0);
    }
    if (input.defaults !== undefined) {
      if (!isObj(input.defaults)) throw new ConfigError("defaults: must be a mapping");
      checkKeys(input.defaults, ["sameCluster", "crossCluster"], "defaults.");
      if (input.defaults.sameCluster !== undefined)
        c.defaults.sameCluster = decision(input.defaults.sameCluster, "defaults.sameCluster");
      if (input.defaults.crossCluster !== undefined)
        c.defaults.crossCluster = decision(input.defaults.crossCluster, "defaults.crossCluster");
    }
    const fail = (message: string): never => {
      throw new ConfigError(message);
    };
    if (input.limits !== undefined) c.limits = resolveLimits(input.limits, c.limits, fail);
    if (input.watch !== undefined) c.watch = resolveWatch(input.watch, c.watch, fail);
    if (input.policySource !== undefined) {
      if (!isObj(input.policySource)) throw new ConfigError("policySource: must be a mapping");
      checkKeys(input.policySource, ["cluster"], "policySource.");
      const cluster = input.policySource.cluster ?? "";
      if (typeof cluster !== "string" || (cluster !== "" && !CLUSTER_ID.test(cluster)))
        throw new ConfigError(
          "policySource.cluster: must be a cluster id (DNS-1123 label) or empty",
        );
      c.policySource = { cluster };
    }
    if (input.store !== undefined) {
      if (input.store !== "file" && input.store !== "etcd")
        throw new ConfigError(`store: must be file or etcd, got ${JSON.stringify(input.store)}`);
      c.store = input.store;
    }
    if (input.etcd !== undefined) c.etcd = resolveEtcd(input.etcd, c.etcd);
    if (c.store === "etcd" && c.etcd.endpoints.length === 0)
      throw new ConfigError("etcd.endpoints: needed with store: etcd (etcd client URLs)");
    if (input.leaderLeaseSeconds !== undefined)
      c.leaderLeaseSeconds = int(input.leaderLeaseSeconds, "leaderLeaseSeconds", 2);
    if (input.advertiseAddress !== undefined)
      c.advertiseAddress = hostPortOrEmpty(input.advertiseAddress, "advertiseAddress");
    if (input.peerAddress !== undefined)
      c.peerAddress = hostPortOrEmpty(input.peerAddress, "peerAddress");
    return c;
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(at + err.message);
    throw err;
  }
}

const ETCD_KEYS = [
  "endpoints",
  "prefix",
  "requestTimeoutMs",
  "maxTxnOps",
  "caFile",
  "certFile",
  "keyFile",
  "username",
  "password",
  "passwordFile",
] as const;

function resolveEtcd(v: unknown, base: EtcdConfig): EtcdConfig {
  if (!isObj(v)) throw new ConfigError("etcd: must be a mapping");
  checkKeys(v, [...ETCD_KEYS], "etcd.");
  const e: EtcdConfig = structuredClone(base);
  if (v.endpoints !== undefined) {
    const list = typeof v.endpoints === "string" ? v.endpoints.split(",") : v.endpoints;
    if (!Array.isArray(list))
      throw new ConfigError(
        "etcd.endpoints: must be a list of URLs (or one comma-separated string)",
      );
    e.endpoints = list.map((u, i) => etcdUrl(u, `etcd.endpoints[${i}]`));
    const schemes = new Set(e.endpoints.map((u) => u.slice(0, u.indexOf(":"))));
    if (schemes.size > 1)
      throw new ConfigError("etcd.endpoints: mixes http:// and https://; use one scheme");
  }
  if (v.prefix !== undefined) {
    e.prefix = str(v.prefix, "etcd.prefix");
    if (!e.prefix.endsWith("/"))
      throw new ConfigError(`etcd.prefix: must end with "/", got "${e.prefix}"`);
  }
  if (v.requestTimeoutMs !== undefined)
    e.requestTimeoutMs = int(v.requestTimeoutMs, "etcd.requestTimeoutMs", 100);
  if (v.maxTxnOps !== undefined) e.maxTxnOps = int(v.maxTxnOps, "etcd.maxTxnOps", 1);
  for (const key of [
    "caFile",
    "certFile",
    "keyFile",
    "username",
    "password",
    "passwordFile",
  ] as const) {
    if (v[key] !== undefined) e[key] = str(v[key], `etcd.${key}`);
  }
  if ((e.certFile === undefined) !== (e.keyFile === undefined))
    throw new ConfigError(
      "etcd.certFile, etcd.keyFile: give both (client certificate and its key) or neither",
    );
  if (e.certFile !== undefined && e.caFile === undefined)
    throw new ConfigError(
      "etcd.caFile: needed with etcd.certFile (the CA of etcd's server certificate)",
    );
  if (
    (e.caFile !== undefined || e.certFile !== undefined) &&
    e.endpoints.some((u) => u.startsWith("http:"))
  )
    throw new ConfigError(
      "etcd.endpoints: TLS files are set but the endpoints are http://; use https://",
    );
  if (e.password !== undefined && e.passwordFile !== undefined)
    throw new ConfigError("etcd.password, etcd.passwordFile: give one of them");
  const hasPassword = e.password !== undefined || e.passwordFile !== undefined;
  if ((e.username !== undefined) !== hasPassword)
    throw new ConfigError(
      "etcd.username: give it together with etcd.passwordFile (or etcd.password)",
    );
  return e;
}

function etcdUrl(v: unknown, path: string): string {
  const text = typeof v === "string" ? v.trim() : v;
  let url: URL;
  try {
    url = new URL(str(text, path));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      `${path}: not a URL: ${JSON.stringify(text)} (expected http(s)://host:port)`,
    );
  }
  if (
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    url.port === "" ||
    url.pathname !== "/"
  )
    throw new ConfigError(`${path}: expected http(s)://host:port, got ${JSON.stringify(text)}`);
  return `${url.protocol}//${url.host}`;
}

function adminToken(v: unknown, path: string): AdminToken {
  if (!isObj(v))
    throw new ConfigError(`${path}: must be a mapping with name, role and token or tokenFile`);
  checkKeys(v, ["name", "role", "token", "tokenFile"], `${path}.`);
  const role = v.role;
  if (role !== "admin" && role !== "viewer")
    throw new ConfigError(`${path}.role: must be admin or viewer`);
  let token: string;
  if (v.token !== undefined) token = str(v.token, `${path}.token`);
  else if (v.tokenFile !== undefined) {
    const file = str(v.tokenFile, `${path}.tokenFile`);
    try {
      token = readFileSync(file, "utf8").trim();
    } catch (err) {
      throw new ConfigError(`${path}.tokenFile: cannot read ${file}: ${(err as Error).message}`);
    }
  } else throw new ConfigError(`${path}: give token or tokenFile`);
  if (token.length < 16) throw new ConfigError(`${path}: token must be at least 16 characters`);
  return { name: v.name === undefined ? path : str(v.name, `${path}.name`), role, token };
}

/** Reads and validates a YAML config file. */
export function loadHubConfigFile(file: string, base: HubConfig = defaultHubConfig): HubConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message}`);
  }
  return resolveHubConfig(data, file, base);
}
