// The gate every call passes before its request is read: who the client is (admin token,
// cluster certificate, or for enrollment its address), whether it may call the method, how
// often and how many calls at once, and how large its request messages may be. It is a
// grpc-js server interceptor: it sees the request headers before the handler asks for the
// body, so a refused call's body is never read, let alone decoded.
import * as http2 from "node:http2";
import type { PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { AdminService, AgentService, Code } from "@isthmus/proto";
import type { Role } from "./config.js";
import { type LimitsConfig, messageLimit } from "./limits-config.js";

/** How a method's caller proves who it is. */
type Credential = "admin" | "viewer" | "cluster" | "bootstrap";

/** Why the gate refused a call (label of isthmus_hub_refused_calls_total). */
export type RefusalReason =
  | "unauthenticated"
  | "permission-denied"
  | "auth-throttled"
  | "rate-limited"
  | "too-many-calls"
  | "message-too-large";

export interface GateOptions {
  limits: LimitsConfig;
  /** The name and role of an admin API token, undefined when no configured token matches. */
  adminToken(token: string): { name: string; role: Role } | undefined;
  /** The cluster a client certificate belongs to; throws a GrpcError when it is not valid. */
  clusterOf(peerCertificate: PeerCertificate | undefined): string;
  refused(reason: RefusalReason): void;
  now?: () => number;
}

/** AdminService methods that change state or make an agent list its cluster; the others are
 * open to viewers. */
const ADMIN_METHODS = new Set([
  "getClusterObjects",
  "createCluster",
  "deleteCluster",
  "rotateClusterToken",
  "applyPolicies",
  "deletePolicy",
]);

interface MethodRule {
  name: string;
  credential: Credential;
  maxMessageBytes: number;
}

function methodRules(limits: LimitsConfig): Map<string, MethodRule> {
  const rules = new Map<string, MethodRule>();
  const add = (
    service: typeof AdminService | typeof AgentService,
    credentialOf: (m: string) => Credential,
  ) => {
    for (const m of service.methods) {
      rules.set(`/${service.typeName}/${m.name}`, {
        name: m.localName,
        credential: credentialOf(m.localName),
        maxMessageBytes: messageLimit(limits, m.localName),
      });
    }
  };
  add(AgentService, (m) => (m === "enroll" ? "bootstrap" : "cluster"));
  add(AdminService, (m) => (ADMIN_METHODS.has(m) ? "admin" : "viewer"));
  return rules;
}

/**
 * A token bucket: `burst` calls at once, refilled at `perSecond`. Written here rather than
 * taken from a rate-limit library: the ones on npm are promise-based or keep a timer per
 * key, and this runs synchronously on every call.
 */
interface Bucket {
  tokens: number;
  at: number;
}

class Buckets {
  private readonly buckets = new Map<string, Bucket>();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  private refill(key: string, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b === undefined) {
      // Keys come from addresses too: drop the buckets that are full again (forgetting
      // them changes nothing) before the map grows large.
      if (this.buckets.size >= 10_000) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    return b;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(key);
    }
  }

  /** Seconds until a call is allowed, 0 when one is now. */
  waitSeconds(key: string, now: number): number {
    const b = this.refill(key, now);
    return b.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }

  /** Takes one token (it may go below one: failures are counted even while refused). */
  take(key: string, now: number): void {
    const b = this.refill(key, now);
    b.tokens = Math.max(0, b.tokens - 1);
  }
}

function bearer(metadata: grpc.Metadata): string | undefined {
  const value = metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  return /^Bearer\s+(.+)$/i.exec(value)?.[1];
}

class Refusal {
  constructor(
    readonly reason: RefusalReason,
    readonly code: grpc.status,
    readonly details: string,
    readonly retryAfterSeconds?: number,
  ) {}
}

function statusOf(r: Refusal): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  const metadata = new grpc.Metadata();
  if (r.retryAfterSeconds !== undefined) metadata.set("retry-after", String(r.retryAfterSeconds));
  return { code: r.code, details: r.details, metadata };
}

/**
 * Asks the client to stop sending a refused call's request (RST_STREAM NO_ERROR after the
 * complete response, as HTTP/2 §8.1 allows): grpc-js would otherwise read and discard the rest
 * of it, and a 13.6 MiB body costs the hub its transfer and decryption on every refusal.
 * grpc-js offers no API for it: its own call object holds the HTTP/2 stream, and an
 * interceptor after the first sees it wrapped (`nextCall` of each ServerInterceptingCall).
 * Without one (another grpc-js) the body is drained as before.
 */
export function stopReading(call: grpc.ServerInterceptingCallInterface): void {
  let at: unknown = call;
  for (let depth = 0; depth < 8 && typeof at === "object" && at !== null; depth++) {
    const stream = (at as { stream?: unknown }).stream;
    if (typeof stream === "object" && stream !== null && "rstCode" in stream) {
      const http2Stream = stream as http2.ServerHttp2Stream;
      if (!http2Stream.closed) http2Stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    at = (at as { nextCall?: unknown }).nextCall;
  }
}

/** The gate as a grpc-js server interceptor (see the file comment). */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its inner functions share the rate buckets and the open calls by client; none is over 80 lines
export function createGate(options: GateOptions): grpc.ServerInterceptor {
  const { limits } = options;
  const now = options.now ?? Date.now;
  const rules = methodRules(limits);
  const calls = new Buckets(limits.requestsPerSecond, limits.requestBurst);
  const failures = new Buckets(limits.authFailuresPerMinute / 60, limits.authFailureBurst);
  const open = new Map<string, number>();

  /** Who is calling (a key for its limits), or why the call is refused. */
  function identify(
    rule: MethodRule,
    call: grpc.ServerInterceptingCallInterface,
    metadata: grpc.Metadata,
    address: string,
  ): string | Refusal {
    if (rule.credential === "cluster") {
      try {
        return `cluster:${options.clusterOf(call.getAuthContext().sslPeerCertificate)}`;
      } catch (err) {
        const e = err as { code?: number; message?: string };
        return new Refusal(
          "unauthenticated",
          e.code ?? Code.UNAUTHENTICATED,
          e.message ?? String(err),
        );
      }
    }
    // Tokens can be guessed, certificates cannot: an address that failed too often is refused
    // whatever token it sends, so that guessing goes no faster than the failure rate.
    const wait = failures.waitSeconds(address, now());
    if (wait > 0)
      return new Refusal(
        "auth-throttled",
        Code.RESOURCE_EXHAUSTED,
        `too many failed authentications from ${address}; retry after ${wait} s`,
        wait,
      );
    if (rule.credential === "bootstrap") return `address:${address}`;
    const token = bearer(metadata);
    const known = token === undefined ? undefined : options.adminToken(token);
    if (known === undefined) {
      failures.take(address, now());
      return new Refusal(
        "unauthenticated",
        Code.UNAUTHENTICATED,
        token === undefined
          ? "missing bearer token (metadata authorization: Bearer <token>)"
          : "unknown bearer token",
      );
    }
    if (rule.credential === "admin" && known.role !== "admin")
      return new Refusal(
        "permission-denied",
        Code.PERMISSION_DENIED,
        `token "${known.name}" has role viewer; this call needs admin`,
      );
    return `token:${known.name}`;
  }

  /** Refuses a call of a known client over its rate or its open calls, else counts it open. */
  function admit(client: string): Refusal | undefined {
    const wait = calls.waitSeconds(client, now());
    if (wait > 0)
      return new Refusal(
        "rate-limited",
        Code.RESOURCE_EXHAUSTED,
        `client ${client} exceeds ${limits.requestsPerSecond} calls/s (burst ${limits.requestBurst}); retry after ${wait} s`,
        wait,
      );
    const n = open.get(client) ?? 0;
    if (n >= limits.maxCallsPerClient)
      return new Refusal(
        "too-many-calls",
        Code.RESOURCE_EXHAUSTED,
        `client ${client} has ${n} calls open (limits.maxCallsPerClient); end one and retry`,
        1,
      );
    calls.take(client, now());
    open.set(client, n + 1);
    return undefined;
  }

  const release = (client: string) => {
    const n = (open.get(client) ?? 1) - 1;
    if (n <= 0) open.delete(client);
    else open.set(client, n);
  };

  return (descriptor, call) => {
    const rule = rules.get(descriptor.path);
    // No rule: grpc.health.v1 and reflection (health.ts), open to probes without credentials.
    if (rule === undefined) return new grpc.ServerInterceptingCall(call);
    let client: string | undefined;
    let refusing = false;
    const address = call.getConnectionInfo().remoteAddress ?? "unknown";
    const refuse = (r: Refusal) => {
      refusing = true;
      options.refused(r.reason);
      intercepting.sendStatus(statusOf(r));
      stopReading(call);
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const who = identify(rule, call, metadata, address);
        if (who instanceof Refusal) return refuse(who);
        const over = admit(who);
        if (over !== undefined) return refuse(over);
        client = who;
        next(metadata);
      })
      .withOnReceiveMessage((message: Buffer, next) => {
        if (message.length <= rule.maxMessageBytes) return next(message);
        refuse(
          new Refusal(
            "message-too-large",
            Code.RESOURCE_EXHAUSTED,
            `${rule.name}: request message of ${message.length} bytes exceeds limits.maxMessageBytes (${rule.maxMessageBytes} bytes)`,
          ),
        );
      })
      .withOnCancel(() => {
        if (client !== undefined) release(client);
        client = undefined;
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        // A refused enrollment is a failed guess of a bootstrap token.
        if (!refusing && rule.credential === "bootstrap" && status.code === Code.PERMISSION_DENIED)
          failures.take(address, now());
        next(status);
      })
      .build();
    const intercepting = new grpc.ServerInterceptingCall(call, responder);
    return intercepting;
  };
}
