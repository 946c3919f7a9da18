import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type CertifiedKey,
  clusterIdFromCertificate,
  createHubCa,
  issueServerCertificate,
  signAgentCsr,
} from "@isthmus/pki";
import {
  AgentService,
  addService,
  Code,
  type ConfigDelta,
  ConfigDeltaSchema,
  type ConnectRequest,
  type ConnectRequestSchema,
  type ConnectResponseSchema,
  createServer,
  GrpcError,
  listen,
  type ServerBidiStream,
  serverCredentials,
  shutdown,
} from "@isthmus/proto";

type HubStream = ServerBidiStream<typeof ConnectRequestSchema, typeof ConnectResponseSchema>;

/** One agent stream as the test hub sees it. */
export interface HubConnection {
  clusterId: string;
  received: ConnectRequest[];
  send(delta: MessageInitShape<typeof ConfigDeltaSchema>): Promise<void>;
  /** Resolves with the next message matching `pred` (already received ones count). */
  next<C extends NonNullable<ConnectRequest["message"]["case"]>>(
    kind: C,
    pred?: (m: Extract<ConnectRequest["message"], { case: C }>["value"]) => boolean,
  ): Promise<Extract<ConnectRequest["message"], { case: C }>["value"]>;
  /** Ends the stream with an error, as a hub restart would. */
  kill(): void;
}

/** A tiny hub: enrolls with one token, signs and renews certificates, and hands out streams. */
export interface TestHub {
  address: string;
  ca: CertifiedKey;
  token: string;
  enrollments: number;
  renewals: number;
  /** Resolves with the next agent stream. */
  nextConnection(): Promise<HubConnection>;
  close(): Promise<void>;
}

export async function startHub(options: { validitySeconds?: number } = {}): Promise<TestHub> {
  const ca = await createHubCa();
  const serverCert = await issueServerCertificate(ca, {
    ipAddresses: ["127.0.0.1"],
    dnsNames: ["localhost"],
  });
  const server = createServer();
  const waiting: ((c: HubConnection) => void)[] = [];
  const pendingConns: HubConnection[] = [];
  const hub: TestHub = {
    address: "",
    ca,
    token: "bootstrap-token-0123456789",
    enrollments: 0,
    renewals: 0,
    nextConnection() {
      const c = pendingConns.shift();
      if (c !== undefined) return Promise.resolve(c);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: () => shutdown(server, 100),
  };
  const sign = async (clusterId: string, csrPem: string) => {
    const issued = await signAgentCsr(ca, csrPem, {
      clusterId,
      validitySeconds: options.validitySeconds ?? 3600,
    });
    return {
      certificateChainPem: issued.certPem,
      caPem: ca.certPem,
      notAfter: timestampFromDate(issued.notAfter),
    };
  };
  addService(server, AgentService, {
    async enroll(req) {
      if (req.bootstrapToken !== hub.token)
        throw new GrpcError(Code.UNAUTHENTICATED, "invalid bootstrap token");
      hub.enrollments++;
      return sign(req.clusterId, req.csrPem);
    },
    async renew(req, ctx) {
      if (ctx.peerCertificate?.raw === undefined)
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate required");
      hub.renewals++;
      return sign(clusterIdFromCertificate(new Uint8Array(ctx.peerCertificate.raw)), req.csrPem);
    },
    async connect(stream: HubStream, ctx) {
      const raw = ctx.peerCertificate?.raw;
      if (raw === undefined || raw.length === 0)
        throw new GrpcError(Code.UNAUTHENTICATED, "client certificate required");
      const clusterId = clusterIdFromCertificate(new Uint8Array(raw));
      const received: ConnectRequest[] = [];
      const listeners: (() => void)[] = [];
      let killed: ((err: Error) => void) | undefined;
      const conn: HubConnection = {
        clusterId,
        received,
        send: (delta) =>
          stream.send({
            message: {
              case: "configDelta",
              value: create(ConfigDeltaSchema, delta) as ConfigDelta,
            },
          }),
        next(kind, pred) {
          let seen = 0;
          return new Promise((resolve) => {
            const check = () => {
              for (; seen < received.length; seen++) {
                const m = received[seen]!.message;
                if (m.case === kind && (pred === undefined || pred(m.value as never))) {
                  seen++;
                  resolve(m.value as never);
                  return true;
                }
              }
              return false;
            };
            if (!check()) listeners.push(() => void check());
          });
        },
        kill: () => killed?.(new GrpcError(Code.UNAVAILABLE, "hub going away")),
      };
      const ended = new Promise<never>((_, reject) => {
        killed = reject;
      });
      let welcomed = false;
      const reading = (async () => {
        for await (const req of stream.requests) {
          received.push(req);
          if (!welcomed && req.message.case === "hello") {
            welcomed = true;
            await stream.send({
              message: {
                case: "welcome",
                value: {
                  sessionId: `s-${Date.now()}`,
                  hubVersion: "0.0.0-test",
                  maxCatalogEntries: 100000,
                },
              },
            });
            const w = waiting.shift();
            if (w !== undefined) w(conn);
            else pendingConns.push(conn);
          }
          for (const l of listeners) l();
        }
      })();
      await Promise.race([reading, ended]);
    },
  });
  const port = await listen(
    server,
    "127.0.0.1:0",
    serverCredentials({
      certChainPem: serverCert.certPem,
      keyPem: serverCert.keyPem,
      clientCaPem: ca.certPem,
      clientCerts: "optional",
    }),
  );
  hub.address = `127.0.0.1:${port}`;
  return hub;
}
