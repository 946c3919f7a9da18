// The hub's listeners: the gRPC server (the gate, AgentService and AdminService, TLS with
// optional client certificates; gRPC health and reflection) and the HTTP server of /healthz,
// /readyz and /metrics.
import { readFile } from "node:fs/promises";
import type { Server as HttpServer } from "node:http";
import { Metadata, type ServerCredentials } from "@grpc/grpc-js";
import { issueServerCertificate, signAgentCsr } from "@isthmus/pki";
import {
  AdminService,
  AgentService,
  addService,
  createServer,
  insecureServerCredentials,
  listen,
  serverCredentials,
  splitHostPort,
} from "@isthmus/proto";
import { createAdminHandlers } from "./admin-service.js";
import { createAgentHandlers } from "./agent-service.js";
import type { HubAuth } from "./auth.js";
import type { HubContext } from "./context.js";
import { createGate } from "./gate.js";
import { createGrpcServerMetrics } from "./grpc-metrics.js";
import { addHealthAndReflection, type HubHealth } from "./health.js";
import { type HubMetrics, serveHttp } from "./metrics.js";
import { createRoleGate, HUB_PATHS } from "./replica-role.js";

export type GrpcServer = ReturnType<typeof createServer>;

function splitNames(names: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const ip = /^[0-9.]+$|:/;
  return {
    dnsNames: names.filter((n) => !ip.test(n)),
    ipAddresses: names.filter((n) => ip.test(n)),
  };
}

/** Binds the gRPC server on `config.listen`; returns it, its port and its health service. */
export async function serveGrpc(
  ctx: HubContext,
  auth: HubAuth,
  agentHooks: { snapshotReceived(): void },
  /** Followers wait this long for an election before refusing a call; the host agents reach
   * this replica at (in the self-issued certificate). */
  role: { electionWaitMs: number; advertisedHost: string | undefined },
): Promise<{ server: GrpcServer; port: number; health: HubHealth }> {
  const { config, hubCa, metrics } = ctx;
  const { limits } = config;
  const gate = createGate({
    limits,
    adminToken: auth.adminToken,
    clusterOf: (peerCertificate) =>
      ctx.verifyAgent({
        metadata: new Metadata(),
        peer: "",
        peerCertificate,
        signal: new AbortController().signal,
      }),
    refused: (reason) => metrics.refusedCalls.inc({ reason }),
  });
  const server = createServer({
    // The transport's limit is the largest method's; the gate checks each method's own.
    maxReceiveMessageBytes: Math.max(...Object.values(limits.maxMessageBytes)),
    keepaliveMs: limits.keepaliveMs,
    keepaliveTimeoutMs: limits.keepaliveTimeoutMs,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    idleTimeoutMs: limits.idleTimeoutMs,
    maxConnectionAgeMs: limits.maxConnectionAgeMs,
    maxConnectionAgeGraceMs: limits.maxConnectionAgeGraceMs,
    // The gate first: its refusals stop the client's upload (RST_STREAM on the raw call,
    // which a wrapping interceptor would hide), and a follower names the leader only to
    // callers it has authenticated.
    interceptors: [
      gate,
      createRoleGate(() => ctx.leadership, HUB_PATHS, role.electionWaitMs),
      createGrpcServerMetrics(metrics.registry),
    ],
  });
  const health = addHealthAndReflection(server);
  addService(
    server,
    AgentService,
    createAgentHandlers(ctx, agentHooks, (clusterId, csrPem) =>
      signAgentCsr(hubCa, csrPem, { clusterId, validitySeconds: config.clientCertTtlSeconds }),
    ),
  );
  addService(server, AdminService, createAdminHandlers(ctx));

  let credentials: ServerCredentials;
  if (config.insecure) credentials = insecureServerCredentials();
  else {
    const serverCert = config.tls
      ? {
          certPem: await readFile(config.tls.certFile, "utf8"),
          keyPem: await readFile(config.tls.keyFile, "utf8"),
        }
      : await issueServerCertificate(
          hubCa,
          splitNames(
            role.advertisedHost === undefined
              ? config.serverNames
              : [...config.serverNames, role.advertisedHost],
          ),
        );
    metrics.certificates("server", serverCert.certPem);
    credentials = serverCredentials({
      certChainPem: serverCert.certPem,
      keyPem: serverCert.keyPem,
      clientCaPem: hubCa.certPem,
      clientCerts: "optional",
    });
  }
  const port = await listen(server, config.listen, credentials, {
    maxConnections: limits.maxConnections,
    maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    onRefused: (reason) => metrics.refusedConnections.inc({ reason }),
  });
  return { server, port, health };
}

/** Binds the metrics server on `address` ("" for none); returns it and its port (0: none). */
export async function serveMetrics(
  metrics: HubMetrics,
  address: string,
  ready: () => { ready: boolean; detail: string },
): Promise<{ http: HttpServer | undefined; port: number }> {
  if (address === "") return { http: undefined, port: 0 };
  const split = splitHostPort(address);
  if (split === undefined) throw new Error(`metricsListen: "${address}" is not host:port`);
  const host = split.host === "" ? "0.0.0.0" : split.host;
  const http = serveHttp(metrics, ready);
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(split.port, host, () => resolve());
  });
  const bound = http.address();
  return { http, port: typeof bound === "object" && bound !== null ? bound.port : 0 };
}
