// Floors: the cheapest round trips this machine can do over loopback, measured in the same run
// as the other benchmarks so that theirs can be read against them. A hub answering an agent
// or an admin call can never be faster than an empty gRPC unary call through our own glue.
import { once } from "node:events";
import { Agent, createServer as createHttpServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import {
  AdminService,
  addService,
  Code,
  createClient,
  createServer,
  GrpcError,
  insecureClientCredentials,
  insecureServerCredentials,
  listen,
  type ServiceHandlers,
  shutdown,
} from "@isthmus/proto";
import { type BenchOptions, type Figure, timeEach } from "./harness.js";

/** AdminService.GetStatus through @isthmus/proto's glue, loopback, plaintext. */
const GRPC = "grpc unary round trip";
/** GET of a 22-byte JSON body from node:http, loopback, one keep-alive connection. */
const HTTP = "http round trip";

function sizes(smoke: boolean): { count: number; warmup: number } {
  return smoke ? { count: 50, warmup: 10 } : { count: 5000, warmup: 1000 };
}

/** AdminService with GetStatus answering a fixed status and every other method refused. */
function adminHandlers(): ServiceHandlers<(typeof AdminService)["method"]> {
  const handlers: Record<string, unknown> = {};
  for (const method of AdminService.methods) {
    handlers[method.localName] = () =>
      Promise.reject(new GrpcError(Code.UNIMPLEMENTED, "not part of the floor benchmark"));
  }
  handlers.getStatus = async () => ({ hubVersion: "floor", systemVersion: "1", policyCount: 0 });
  return handlers as ServiceHandlers<(typeof AdminService)["method"]>;
}

async function grpcRoundTrip(smoke: boolean): Promise<Figure> {
  const server = createServer();
  addService(server, AdminService, adminHandlers());
  const port = await listen(server, "127.0.0.1:0", insecureServerCredentials());
  const client = createClient(AdminService, `127.0.0.1:${port}`, insecureClientCredentials());
  try {
    const { count, warmup } = sizes(smoke);
    const samples = await timeEach(count, warmup, async () => {
      const status = await client.getStatus({});
      if (status.hubVersion !== "floor") throw new Error("unexpected GetStatus answer");
    });
    return { name: GRPC, unit: "µs", samples, reference: HTTP };
  } finally {
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
  const grpc = await grpcRoundTrip(smoke);
  return [grpc, http];
}
