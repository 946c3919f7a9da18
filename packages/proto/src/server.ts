// A grpc-js server with connection limits: how many connections one address may hold, how
// long a TLS handshake may take, when an idle connection is closed, how many streams a
// connection may open. grpc-js accepts connections itself when bound with bindAsync and
// offers no hook there, so `listen` accepts them on its own TCP server, counts them and
// hands them to grpc-js through its connection injector.
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { splitHostPort } from "./host-port.js";

const MiB = 1024 * 1024;

/** Options of a server. Durations in milliseconds; 0 turns a timeout off. */
export interface ServerOptions {
  /** Largest message accepted from a client, in bytes (default 32 MiB): the transport's
   * limit, checked on the length prefix before the message is buffered. */
  maxReceiveMessageBytes?: number;
  /** Keepalive ping interval (default 30 s): a peer that does not answer a ping within
   * `keepaliveTimeoutMs` (default 10 s) is disconnected. */
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open (default 100). */
  maxConcurrentStreams?: number;
  /** A connection without an open stream for this long is closed with GOAWAY (default 0: never). */
  idleTimeoutMs?: number;
  /** A connection older than this is closed with GOAWAY (default 0: never), its calls given
   * `maxConnectionAgeGraceMs` more (default 0: as long as they take). */
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
  /** Interceptors of every call (grpc-js server interceptors), in order. */
  interceptors?: grpc.ServerInterceptor[];
}

/** Creates a grpc-js server with Isthmus' limits and keepalive settings. */
export function createServer(options: ServerOptions = {}): grpc.Server {
  const grpcOptions: grpc.ServerOptions = {
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 32 * MiB,
    "grpc.max_send_message_length": 32 * MiB,
    "grpc.keepalive_time_ms": options.keepaliveMs ?? 30_000,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? 10_000,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams ?? 100,
    interceptors: options.interceptors ?? [],
  };
  // grpc-js reads "unlimited" from an absent option, not from 0.
  if (options.idleTimeoutMs) grpcOptions["grpc.max_connection_idle_ms"] = options.idleTimeoutMs;
  if (options.maxConnectionAgeMs) {
    grpcOptions["grpc.max_connection_age_ms"] = options.maxConnectionAgeMs;
    if (options.maxConnectionAgeGraceMs)
      grpcOptions["grpc.max_connection_age_grace_ms"] = options.maxConnectionAgeGraceMs;
  }
  return new grpc.Server(grpcOptions);
}

/** Limits on the connections `listen` accepts. */
export interface ConnectionLimits {
  /** Open connections in all (default 10,000); more are closed on accept. */
  maxConnections?: number;
  /** Open connections from one IP address (default 64); more are closed on accept. */
  maxConnectionsPerAddress?: number;
  /** A TLS handshake not done within this long closes the connection (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Told of every connection refused on accept. */
  onRefused?: (reason: "too-many-connections" | "too-many-from-address", address: string) => void;
}

/**
 * TLS credentials with a handshake timeout: Node's TLS server takes it as a constructor
 * option, which grpc-js builds from the credentials; every other part is the wrapped
 * credentials' own (as grpc-js' own interceptor-adding wrapper does).
 */
class HandshakeTimeoutCredentials extends grpc.ServerCredentials {
  constructor(
    private readonly inner: grpc.ServerCredentials,
    handshakeTimeoutMs: number,
  ) {
    const base = inner._getConstructorOptions();
    super(base === null ? null : { ...base, handshakeTimeout: handshakeTimeoutMs });
  }
  override _addWatcher(watcher: Parameters<grpc.ServerCredentials["_addWatcher"]>[0]): void {
    this.inner._addWatcher(watcher);
  }
  override _removeWatcher(watcher: Parameters<grpc.ServerCredentials["_removeWatcher"]>[0]): void {
    this.inner._removeWatcher(watcher);
  }
  override _isSecure(): boolean {
    return this.inner._isSecure();
  }
  override _getSecureContextOptions() {
    return this.inner._getSecureContextOptions();
  }
  override _getInterceptors() {
    return this.inner._getInterceptors();
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other instanceof HandshakeTimeoutCredentials && this.inner._equals(other.inner);
  }
}

interface Listener {
  tcp: TcpServer;
  injector: grpc.ConnectionInjector;
  sockets: Set<Socket>;
}

/** The TCP servers `listen` opened per grpc-js server, closed by `shutdown`. */
const listeners = new WeakMap<grpc.Server, Listener[]>();

function listenAddress(address: string): { host: string; port: number } {
  if (!address.includes(":")) throw new Error(`listen: address "${address}" is not host:port`);
  const split = splitHostPort(address);
  if (split === undefined) throw new Error(`listen: address "${address}": port must be 0-65535`);
  return { host: split.host === "" ? "0.0.0.0" : split.host, port: split.port };
}

/**
 * Binds a server to `address` ("host:port", port 0 for any) and resolves with the bound port.
 * Connections over `limits` are closed as they are accepted, before any byte is read.
 */
export async function listen(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials,
  limits: ConnectionLimits = {},
): Promise<number> {
  const { host, port } = listenAddress(address);
  const maxConnections = limits.maxConnections ?? 10_000;
  const perAddress = limits.maxConnectionsPerAddress ?? 64;
  const handshakeTimeoutMs = limits.handshakeTimeoutMs ?? 10_000;
  const wrapped =
    credentials._isSecure() && handshakeTimeoutMs > 0
      ? new HandshakeTimeoutCredentials(credentials, handshakeTimeoutMs)
      : credentials;
  const injector = server.createConnectionInjector(wrapped);
  const sockets = new Set<Socket>();
  const byAddress = new Map<string, number>();
  const tcp = createTcpServer({ noDelay: true }, (socket) => {
    const from = socket.remoteAddress ?? "unknown";
    const count = byAddress.get(from) ?? 0;
    const refused =
      sockets.size >= maxConnections
        ? "too-many-connections"
        : count >= perAddress
          ? "too-many-from-address"
          : undefined;
    if (refused !== undefined) {
      socket.destroy();
      limits.onRefused?.(refused, from);
      return;
    }
    sockets.add(socket);
    byAddress.set(from, count + 1);
    socket.once("close", () => {
      sockets.delete(socket);
      const left = (byAddress.get(from) ?? 1) - 1;
      if (left === 0) byAddress.delete(from);
      else byAddress.set(from, left);
    });
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const entry: Listener = { tcp, injector, sockets };
  listeners.set(server, [...(listeners.get(server) ?? []), entry]);
  const bound = tcp.address();
  return typeof bound === "object" && bound !== null ? bound.port : port;
}

/** Stops a server: refuses new calls, waits up to `graceMs` for running calls, then cancels them. */
export async function shutdown(server: grpc.Server, graceMs = 5_000): Promise<void> {
  const own = listeners.get(server) ?? [];
  listeners.delete(server);
  for (const l of own) l.tcp.close();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const l of own) {
    l.injector.destroy();
    for (const socket of l.sockets) socket.destroy();
  }
}
