import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as grpc from "@grpc/grpc-js";
import {
  Action,
  AdminService,
  AgentService,
  addService,
  type CallContext,
  type ClientBidiStream,
  Code,
  type ConnectRequestSchema,
  type ConnectResponseSchema,
  clientCredentials,
  createClient,
  createServer,
  forEachMessage,
  GrpcError,
  listen,
  type ServiceHandlers,
  serverCredentials,
  shutdown,
  Visibility,
} from "@isthmus/proto";
import { makeTlsFixture, type TlsFixture } from "../helpers/openssl-tls.js";

const unimplemented = () => Promise.reject(new GrpcError(Code.UNIMPLEMENTED, "not in this test"));

function adminHandlers(): ServiceHandlers<(typeof AdminService)["method"]> {
  return {
    createCluster: async (req) => ({ cluster: req.cluster, bootstrapToken: "t".repeat(32) }),
    listClusters: unimplemented,
    getCluster: async (req) => {
      throw new GrpcError(Code.NOT_FOUND, `cluster "${req.id}" not found`);
    },
    deleteCluster: unimplemented,
    rotateClusterToken: unimplemented,
    applyPolicies: async (req) => ({ policies: req.policies }),
    listPolicies: unimplemented,
    getPolicy: unimplemented,
    deletePolicy: unimplemented,
    explain: unimplemented,
    explainBatch: unimplemented,
    listCatalog: unimplemented,
    watchCatalog: async (req, stream) => {
      for (const name of ["a", "b", "c"]) {
        await stream.send({
          service: { clusterId: req.filter?.clusterId ?? "", service: { namespace: "ns", name } },
        });
      }
    },
    getStatus: async () => ({ hubVersion: "test", policyCount: 3 }),
  };
}

type Seen = { certificateSubject: string | undefined };

function agentHandlers(seen: Seen): ServiceHandlers<(typeof AgentService)["method"]> {
  return {
    enroll: async (req) => ({ certificateChainPem: `signed for ${req.clusterId}` }),
    renew: unimplemented,
    connect: async (stream, ctx: CallContext) => {
      const cn = ctx.peerCertificate?.subject?.CN;
      seen.certificateSubject = Array.isArray(cn) ? cn[0] : cn;
      let nonce = 0;
      for await (const req of stream.requests) {
        switch (req.message.case) {
          case "hello":
            await stream.send({
              message: {
                case: "welcome",
                value: { sessionId: `s-${req.message.value.clusterId}` },
              },
            });
            break;
          case "catalogUpdate": {
            const names = req.message.value.upsertedServices.map((s) => s.name);
            nonce += 1;
            await stream.send({
              message: {
                case: "configDelta",
                value: { nonce: `n${nonce}`, complete: true, removed: names },
              },
            });
            break;
          }
          case "ack":
            return;
          default:
            throw new GrpcError(Code.INVALID_ARGUMENT, `unexpected ${req.message.case}`);
        }
      }
    },
  };
}

async function startServer(
  tls: TlsFixture,
  clientCerts: "none" | "optional" | "required",
  maxBytes?: number,
) {
  const server = createServer(maxBytes === undefined ? {} : { maxReceiveMessageBytes: maxBytes });
  const seen: Seen = { certificateSubject: undefined };
  addService(server, AdminService, adminHandlers());
  addService(server, AgentService, agentHandlers(seen));
  const port = await listen(
    server,
    "127.0.0.1:0",
    serverCredentials({
      certChainPem: tls.serverCertPem,
      keyPem: tls.serverKeyPem,
      clientCaPem: tls.caPem,
      clientCerts,
    }),
  );
  return { server, port, seen, address: `localhost:${port}` };
}

async function next<T>(it: AsyncIterator<T>): Promise<T> {
  const r = await it.next();
  assert.equal(r.done, false, "stream ended early");
  return r.value as T;
}

describe("grpc glue over TLS", () => {
  let tls: TlsFixture;
  before(() => {
    tls = makeTlsFixture();
  });

  it("serves unary, server-streaming and bidi calls with generated types", async () => {
    const { server, address, seen } = await startServer(tls, "optional");
    const admin = createClient(AdminService, address, clientCredentials({ caPem: tls.caPem }));
    const agent = createClient(
      AgentService,
      address,
      clientCredentials({
        caPem: tls.caPem,
        certChainPem: tls.clientCertPem,
        keyPem: tls.clientKeyPem,
      }),
    );
    try {
      const status = await admin.getStatus({});
      assert.equal(status.hubVersion, "test");
      assert.equal(status.policyCount, 3);

      const created = await admin.createCluster({
        cluster: { id: "prod-eu", labels: { env: "prod" } },
      });
      assert.equal(created.cluster?.labels.env, "prod");

      await assert.rejects(admin.getCluster({ id: "nope" }), (err: unknown) => {
        assert.ok(err instanceof GrpcError);
        assert.equal(err.code, Code.NOT_FOUND);
        assert.equal(err.message, 'cluster "nope" not found');
        return true;
      });

      const names: string[] = [];
      for await (const ev of admin.watchCatalog({ filter: { clusterId: "b" } })) {
        assert.equal(ev.service?.clusterId, "b");
        names.push(ev.service?.service?.name ?? "");
      }
      assert.deepEqual(names, ["a", "b", "c"]);

      const stream: ClientBidiStream<typeof ConnectRequestSchema, typeof ConnectResponseSchema> =
        agent.connect();
      const responses = stream.responses[Symbol.asyncIterator]();
      await stream.send({
        message: { case: "hello", value: { clusterId: "prod-eu", agentVersion: "0.1.0" } },
      });
      const welcome = await next(responses);
      assert.equal(welcome.message.case, "welcome");
      assert.equal(welcome.message.value?.sessionId, "s-prod-eu");
      await stream.send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: true,
            revision: 1n,
            upsertedServices: [
              {
                namespace: "payments",
                name: "payments-api",
                visibility: Visibility.PRIVATE,
                ports: [{ port: 8443, protocol: "TCP" }],
              },
            ],
          },
        },
      });
      const delta = await next(responses);
      assert.equal(delta.message.case, "configDelta");
      assert.deepEqual(delta.message.value?.removed, ["payments-api"]);
      await stream.send({ message: { case: "ack", value: { nonce: "n1" } } });
      stream.end();
      assert.equal((await responses.next()).done, true);
      assert.equal(seen.certificateSubject, "client");
    } finally {
      admin.close();
      agent.close();
      await shutdown(server);
    }
  });

  it("refuses invalid requests with INVALID_ARGUMENT naming the field", async () => {
    const { server, address } = await startServer(tls, "none");
    const admin = createClient(AdminService, address, clientCredentials({ caPem: tls.caPem }));
    try {
      await assert.rejects(
        admin.createCluster({ cluster: { id: "Not_A_Label" } }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcError);
          assert.equal(err.code, Code.INVALID_ARGUMENT);
          assert.match(
            err.message,
            /^invalid isthmus\.v1\.CreateClusterRequest: cluster\.id: does not match regex pattern `\^\[a-z0-9\].*: got "Not_A_Label"$/,
          );
          return true;
        },
      );
      await assert.rejects(
        admin.applyPolicies({ policies: [{ name: "p", from: [{}], to: [{}] }] }),
        (err: unknown) => {
          assert.ok(err instanceof GrpcError);
          assert.match(
            err.message,
            /policies\[0\]\.action: must not be in list \[0\] \[enum\.not_in\]: got 0$/,
          );
          return true;
        },
      );
      assert.equal((await admin.getStatus({})).hubVersion, "test");
    } finally {
      admin.close();
      await shutdown(server);
    }
  });

  it("refuses a malformed message and keeps serving", async () => {
    const { server, address } = await startServer(tls, "none");
    const raw = new grpc.Client(address, clientCredentials({ caPem: tls.caPem }));
    const admin = createClient(AdminService, address, clientCredentials({ caPem: tls.caPem }));
    try {
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        raw.makeUnaryRequest(
          "/isthmus.v1.AdminService/GetStatus",
          (b: Buffer) => b,
          (b: Buffer) => b,
          garbage,
          (e) => resolve(e as grpc.ServiceError),
        );
      });
      assert.equal(err.code, Code.INVALID_ARGUMENT);
      assert.match(err.details, /^malformed isthmus\.v1\.GetStatusRequest: /);
      assert.equal((await admin.getStatus({})).policyCount, 3);
    } finally {
      raw.close();
      admin.close();
      await shutdown(server);
    }
  });

  it("refuses an oversized message with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const { server, address } = await startServer(tls, "none", 4096);
    const admin = createClient(AdminService, address, clientCredentials({ caPem: tls.caPem }));
    try {
      const big = {
        policies: [
          {
            name: "p",
            action: Action.ALLOW,
            from: [{ namespaces: Array(200).fill("w".repeat(50)) }],
            to: [{}],
          },
        ],
      };
      await assert.rejects(admin.applyPolicies(big), (err: unknown) => {
        assert.ok(err instanceof GrpcError);
        assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
        assert.match(err.message, /Received message larger than max/);
        return true;
      });
      assert.equal((await admin.getStatus({})).policyCount, 3);
    } finally {
      admin.close();
      await shutdown(server);
    }
  });

  it("keeps no reference to a streamed message once it is handed out", async () => {
    // A quiet stream must not pin its last message (a catalog snapshot or a config delta can
    // be tens of MiB): WeakRefs to the last messages on both sides are cleared by a GC while
    // both ends wait for the next one.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const server = createServer();
    let received: WeakRef<object> | undefined;
    let release!: () => void;
    const quiet = new Promise<void>((r) => {
      release = r;
    });
    addService(server, AdminService, adminHandlers());
    addService(server, AgentService, {
      ...agentHandlers({ certificateSubject: undefined }),
      connect: async (stream) => {
        const requests = stream.requests[Symbol.asyncIterator]();
        received = new WeakRef(await next(requests));
        await stream.send({ message: { case: "welcome", value: { sessionId: "s" } } });
        const more = requests.next();
        await quiet;
        await more;
      },
    });
    const port = await listen(
      server,
      "127.0.0.1:0",
      serverCredentials({ certChainPem: tls.serverCertPem, keyPem: tls.serverKeyPem }),
    );
    const agent = createClient(
      AgentService,
      `localhost:${port}`,
      clientCredentials({ caPem: tls.caPem }),
    );
    try {
      const stream = agent.connect();
      const responses = stream.responses[Symbol.asyncIterator]();
      await stream.send({ message: { case: "hello", value: { clusterId: "c1" } } });
      const welcome = new WeakRef(await next(responses));
      const pending = responses.next();
      await new Promise((r) => setTimeout(r, 50));
      gc();
      await new Promise((r) => setImmediate(r));
      gc();
      assert.equal(welcome.deref(), undefined, "client side: the Welcome is not kept");
      assert.equal(received?.deref(), undefined, "server side: the Hello is not kept");
      release();
      stream.end();
      await pending;
    } finally {
      agent.close();
      await shutdown(server);
    }
  });

  it("forEachMessage handles messages in order and keeps none once handled", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    let finish!: () => void;
    const messages: AsyncIterable<number[]> = {
      [Symbol.asyncIterator]: () => {
        let i = 0;
        return {
          next: () =>
            i++ < 2
              ? Promise.resolve({ done: false, value: [i, ...Array(1000).fill(0)] })
              : new Promise((resolve) => {
                  finish = () => resolve({ done: true, value: undefined });
                }),
        };
      },
    };
    const seen: number[] = [];
    let last: WeakRef<number[]> | undefined;
    const done = forEachMessage(messages, async (m) => {
      await new Promise((r) => setImmediate(r));
      seen.push(m[0]!);
      last = new WeakRef(m);
    });
    await new Promise((r) => setTimeout(r, 20));
    gc();
    assert.deepEqual(seen, [1, 2]);
    assert.equal(last?.deref(), undefined, "the last handled message is not kept");
    finish();
    await done;
    await assert.rejects(
      forEachMessage(messages, () => {
        throw new Error("handler failed");
      }),
      /handler failed/,
    );
  });

  it("enforces client certificates when required", async () => {
    const { server, address } = await startServer(tls, "required");
    const anonymous = createClient(AdminService, address, clientCredentials({ caPem: tls.caPem }));
    const intruder = createClient(
      AdminService,
      address,
      clientCredentials({
        caPem: tls.caPem,
        certChainPem: tls.otherCaClientCertPem,
        keyPem: tls.otherCaClientKeyPem,
      }),
    );
    const member = createClient(
      AdminService,
      address,
      clientCredentials({
        caPem: tls.caPem,
        certChainPem: tls.clientCertPem,
        keyPem: tls.clientKeyPem,
      }),
    );
    try {
      await assert.rejects(anonymous.getStatus({}, { timeoutMs: 5000 }), (err: unknown) => {
        assert.ok(err instanceof GrpcError);
        assert.equal(err.code, Code.UNAVAILABLE);
        return true;
      });
      await assert.rejects(intruder.getStatus({}, { timeoutMs: 5000 }), (err: unknown) => {
        assert.ok(err instanceof GrpcError);
        assert.equal(err.code, Code.UNAVAILABLE);
        return true;
      });
      assert.equal((await member.getStatus({})).hubVersion, "test");
    } finally {
      for (const c of [anonymous, intruder, member]) c.close();
      await shutdown(server);
    }
  });
});
