// The `limits` and `watch` sections of hub.yaml: what one client, connection or catalog
// watcher may cost the hub. Documented in packages/hub/README.md.
import { AdminService, AgentService } from "@isthmus/proto";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Connection and call limits (keys of `limits` in hub.yaml). */
export interface LimitsConfig {
  /** Open connections in all; more are closed on accept. */
  maxConnections: number;
  /** Open connections from one IP address; more are closed on accept. */
  maxConnectionsPerAddress: number;
  /** A TLS handshake must finish within this long. */
  handshakeTimeoutMs: number;
  /** A connection without a call for this long is closed (GOAWAY); 0: never. */
  idleTimeoutMs: number;
  /** A connection is closed (GOAWAY) after this long, its calls given the grace; 0: never. */
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  /** Keepalive pings: every keepaliveMs; a peer that does not answer within
   * keepaliveTimeoutMs is disconnected. */
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** Streams (calls) one connection may have open at once (HTTP/2 setting). */
  maxConcurrentStreams: number;
  /** Calls one client (admin token, cluster certificate or, for Enroll, address) may have
   * open at once, across its connections. */
  maxCallsPerClient: number;
  /** Sustained calls per second of one client, and how many it may make in a burst. */
  requestsPerSecond: number;
  requestBurst: number;
  /** Failed authentications (missing or unknown token, refused enrollment) one address may
   * make per minute, and in a burst; beyond, calls that need a token are refused. */
  authFailuresPerMinute: number;
  authFailureBurst: number;
  /** Largest request message per method (lowerCamel name, e.g. applyPolicies), in bytes;
   * `default` for the methods not named. */
  maxMessageBytes: Record<string, number>;
}

/** Catalog watch limits (keys of `watch` in hub.yaml). */
export interface WatchConfig {
  /** Catalog entries whose change one watcher may have waiting; beyond, it is ended. */
  maxPendingChanges: number;
  /** A watcher that reads nothing for this long while changes wait is ended; 0: never. */
  stallSeconds: number;
}

export const defaultLimits: LimitsConfig = {
  maxConnections: 10_000,
  maxConnectionsPerAddress: 64,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxConnectionAgeMs: 0,
  maxConnectionAgeGraceMs: 0,
  keepaliveMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  maxConcurrentStreams: 100,
  maxCallsPerClient: 64,
  requestsPerSecond: 200,
  requestBurst: 1000,
  authFailuresPerMinute: 60,
  authFailureBurst: 20,
  maxMessageBytes: {
    default: 64 * KiB,
    // A batch of policies: thousands of rules with their selectors.
    applyPolicies: 16 * MiB,
    // Up to 10000 connections to explain (about 100 B each).
    explainBatch: 2 * MiB,
    // Agent stream messages: a full catalog snapshot of a large cluster (about 100k
    // services and identities at 250 B each), as much as an agent may send.
    connect: 32 * MiB,
  },
};

export const defaultWatch: WatchConfig = { maxPendingChanges: 250_000, stallSeconds: 60 };

/** Methods of the hub's services by lowerCamel name, the keys of limits.maxMessageBytes. */
export const methodNames: readonly string[] = [
  ...AgentService.methods.map((m) => m.localName),
  ...AdminService.methods.map((m) => m.localName),
];

/** The limits that 0 turns off; every other one is at least 1. */
const mayBeZero = ["idleTimeoutMs", "maxConnectionAgeMs", "maxConnectionAgeGraceMs"];

type Obj = Record<string, unknown>;
type Fail = (message: string) => never;

function intAt(v: unknown, path: string, min: number, fail: Fail): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    fail(`${path}: must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v as number;
}

function mapping(v: unknown, path: string, fail: Fail): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(`${path}: must be a mapping`);
  return v as Obj;
}

/** `limits` of hub.yaml over `base`; `fail` throws the config error naming the field. */
export function resolveLimits(input: unknown, base: LimitsConfig, fail: Fail): LimitsConfig {
  const obj = mapping(input, "limits", fail);
  const out: LimitsConfig = { ...base, maxMessageBytes: { ...base.maxMessageBytes } };
  const known = Object.keys(defaultLimits);
  for (const [key, value] of Object.entries(obj)) {
    if (!known.includes(key)) fail(`limits.${key}: unknown field (known: ${known.join(", ")})`);
    if (key === "maxMessageBytes") continue;
    (out as unknown as Record<string, number>)[key] = intAt(
      value,
      `limits.${key}`,
      mayBeZero.includes(key) ? 0 : 1,
      fail,
    );
  }
  if (obj.maxMessageBytes !== undefined) {
    const sizes = mapping(obj.maxMessageBytes, "limits.maxMessageBytes", fail);
    for (const [method, value] of Object.entries(sizes)) {
      if (method !== "default" && !methodNames.includes(method))
        fail(
          `limits.maxMessageBytes.${method}: unknown method (known: default, ${methodNames.join(", ")})`,
        );
      out.maxMessageBytes[method] = intAt(value, `limits.maxMessageBytes.${method}`, 1, fail);
    }
  }
  return out;
}

/** `watch` of hub.yaml over `base`. */
export function resolveWatch(input: unknown, base: WatchConfig, fail: Fail): WatchConfig {
  const obj = mapping(input, "watch", fail);
  const out = { ...base };
  for (const [key, value] of Object.entries(obj)) {
    if (key === "maxPendingChanges") out.maxPendingChanges = intAt(value, `watch.${key}`, 1, fail);
    else if (key === "stallSeconds") out.stallSeconds = intAt(value, `watch.${key}`, 0, fail);
    else fail(`watch.${key}: unknown field (known: maxPendingChanges, stallSeconds)`);
  }
  return out;
}

/** The largest request message limits allow for `method` (lowerCamel name). */
export function messageLimit(limits: LimitsConfig, method: string): number {
  return (
    limits.maxMessageBytes[method] ??
    limits.maxMessageBytes.default ??
    defaultLimits.maxMessageBytes.default!
  );
}
