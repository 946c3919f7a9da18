// Floors: the cheapest round trips this machine can do over loopback, measured in the same run
// as the other benchmarks so that theirs can be read against them. A hub answering an agent
// or an admin call can never be faster than an empty gRPC call through our own glue.
import { once } from "node:events";
import { Agent, createServer as createHttpServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { createHubCa, issueServerCertificate } from "@isthmus/pki";
import {
  AdminService,
  AgentService,
  addService,
  Code,
  clientCredentials,
  createClient,
  createServer,
  GrpcError,
  insecureClientCredentials,
  insecureServerCredentials,
  listen,
  type ServiceHandlers,
  serverCredentials,
  shutdown,
} from "@isthmus/proto";
import { type BenchOptions, type Figure, timeEach } from "./harness.js";

type ServerCredentials = Parameters<typeof listen>[2];
type ChannelCredentials = Parameters<typeof createClient>[2];

/** AdminService.GetStatus through @isthmus/proto's glue, loopback, plaintext. */
const GRPC = "grpc unary round trip";
/** The same over TLS (ECDSA P-256 server certificate from a hub CA, as the hub serves). */
const GRPC_TLS = "grpc unary round trip, TLS";
/** One Ack up and one ConfigDelta down on an open AgentService.Connect stream, plaintext. */
const STREAM = "grpc stream ping-pong";
/** GET of a 22-byte JSON body from node:http, loopback, one keep-alive connection. */
const HTTP = "http round trip";

function sizes(smoke: boolean): { count: number; warmup: number } {
  return smoke ? { count: 50, warmup: 10 } : { count: 5000, warmup: 1000 };
}

const refuse = () =>
  Promise.reject(new GrpcError(Code.UNIMPLEMENTED, "not part of the floor benchmark"));

/** Every method of a service refused, but those given. */
function handlers<H>(service: { methods: { localName: string }[] }, given: Partial<H>): H {
  const all: Record<string, unknown> = {};
  for (const method of service.methods) all[method.localName] = refuse;
  return { ...all, ...given } as H;
}

type AdminHandlers = ServiceHandlers<(typeof AdminService)["method"]>;
type AgentHandlers = ServiceHandlers<(typeof AgentService)["method"]>;

async function unaryRoundTrip(
  smoke: boolean,
  name: string,
  credentials: { server: ServerCredentials; client: ChannelCredentials },
  reference: string,
): Promise<Figure> {
  const server = createServer();
  addService(
    server,
    AdminService,
    handlers<AdminHandlers>(AdminService, {
      getStatus: async () => ({ hubVersion: "floor", systemVersion: "1", policyCount: 0 }),
    }),
  );
  const port = await listen(server, "127.0.0.1:0", credentials.server);
  const client = createClient(AdminService, `127.0.0.1:${port}`, credentials.client);
  try {
    const { count, warmup } = sizes(smoke);
    const samples = await timeEach(count, warmup, async () => {
      const status = await client.getStatus({});
      if (status.hubVersion !== "floor") throw new Error("unexpected GetStatus answer");
    });
    return { name, unit: "µs", samples, reference };
  } finally {
    client.close();
    await shutdown(server, 1000);
  }
}

async function tlsCredentials(): Promise<{
  server: ServerCredentials;
  client: ChannelCredentials;
}> {
  const ca = await createHubCa();
  const cert = await issueServerCertificate(ca, { ipAddresses: ["127.0.0.1"] });
  return {
    server: serverCredentials({ certChainPem: cert.certPem, keyPem: cert.keyPem }),
    client: clientCredentials({ caPem: ca.certPem }),
  };
}

async function streamPingPong(smoke: boolean): Promise<Figure> {
  const server = createServer();
  addService(
    server,
    AgentService,
    handlers<AgentHandlers>(AgentService, {
      connect: async (stream) => {
        for await (const req of stream.requests) {
          if (req.message.case !== "ack") continue;
          await stream.send({
            message: { case: "configDelta", value: { nonce: req.message.value.nonce } },
          });
        }
      },
    }),
  );
  const port = await listen(server, "127.0.0.1:0", insecureServerCredentials());
  const client = createClient(AgentService, `127.0.0.1:${port}`, insecureClientCredentials());
  const stream = client.connect();
  const responses = stream.responses[Symbol.asyncIterator]();
  let nonce = 0;
  try {
    const { count, warmup } = sizes(smoke);
    const samples = await timeEach(count, warmup, async () => {
      nonce += 1;
      await stream.send({ message: { case: "ack", value: { nonce: `n${nonce}` } } });
      const next = await responses.next();
      const delta = next.done ? undefined : next.value.message;
      if (delta?.case !== "configDelta" || delta.value.nonce !== `n${nonce}`) {
        throw new Error(`expected the ConfigDelta of n${nonce}`);
      }
    });
    return { name: STREAM, unit: "µs", samples, reference: GRPC };
  } finally {
    stream.end();
    client.close();
    await shutdown(server, 1000);
  }
}

async function httpRoundTrip(smoke: boolean): Promise<Figure> {
  const body = Buffer.from('{"hubVersion":"floor"}');
  const server = createHttpServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<void>((done, fail) => {
      const req = request({ host: "127.0.0.1", port, path: "/status", agent }, (res) => {
        let length = 0;
        res.on("data", (chunk: Buffer) => {
          length += chunk.length;
        });
        res.on("end", () =>
          length === body.length ? done() : fail(new Error("short http response")),
        );
        res.on("error", fail);
      });
      req.on("error", fail);
      req.end();
    });
  try {
    const { count, warmup } = sizes(smoke);
    const samples = await timeEach(count, warmup, get);
    return { name: HTTP, unit: "µs", samples };
  } finally {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  }
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const http = await httpRoundTrip(smoke);
  const insecure = { server: insecureServerCredentials(), client: insecureClientCredentials() };
  const grpc = await unaryRoundTrip(smoke, GRPC, insecure, HTTP);
  const grpcTls = await unaryRoundTrip(smoke, GRPC_TLS, await tlsCredentials(), GRPC);
  const stream = await streamPingPong(smoke);
  return [grpc, grpcTls, stream, http];
}
