// What one client or connection may cost the hub (issue 17, finding 3): calls are
// authenticated before their request is read, each method has its message size, clients
// have a call rate and a number of open calls, failed authentications are throttled per
// address, idle connections and unfinished handshakes are closed, and one address holds a
// bounded number of connections.
import assert from "node:assert/strict";
import { once } from "node:events";
import { type Socket, connect as tcpConnect } from "node:net";
import { defaultHubConfig, type HubConfig, resolveHubConfig } from "@isthmus/hub";
import { AdminService, Code, clientCredentials, createClient, GrpcError } from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import {
  ADMIN_TOKEN,
  admin,
  type HubFixture,
  startHub,
  VIEWER_TOKEN,
  viewer,
} from "../helpers/hub-fixture.js";
import { grpcFrame, rawCall, rawSession } from "../helpers/raw-grpc.js";

const MiB = 1024 * 1024;
const APPLY = "/isthmus.v1.AdminService/ApplyPolicies";
const STATUS = "/isthmus.v1.AdminService/GetStatus";

function limits(overrides: Partial<HubConfig["limits"]>): Partial<HubConfig> {
  return { limits: { ...defaultHubConfig.limits, ...overrides } };
}

/** 13.6 MiB that no protobuf decoder accepts (field number 0): decoding it fails at once,
 * so an answer other than INVALID_ARGUMENT means it was never decoded. */
const garbage = grpcFrame(Buffer.alloc(Math.round(13.6 * MiB), 0x07));

async function refusals(f: HubFixture, reason: string): Promise<number> {
  const metric = await f.hub.context.metrics.refusedCalls.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

function failsWith(code: Code, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GrpcError, `expected GrpcError, got ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

/** A bounded wait for an event, not a timing: it happens within 10 s or the test fails. */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what} still open after 10 s`)), 10_000).unref(),
    ),
  ]);
}

describe("hub limits", function () {
  this.timeout(60_000);
  let f: HubFixture | undefined;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await f?.close();
    f = undefined;
  });

  it("refuses an unauthenticated or viewer's large ApplyPolicies before decoding it", async () => {
    f = await startHub();
    const session = await rawSession({ port: f.hub.port, caPem: f.hub.caPem });
    try {
      const anonymous = await rawCall(session, APPLY, { body: garbage }).result;
      assert.equal(Code[anonymous.code], "UNAUTHENTICATED", anonymous.message);
      assert.match(anonymous.message, /missing bearer token/);
      // The hub asked the client to stop sending (RST_STREAM after the answer): most of the
      // 13.6 MiB never left the client.
      const sent = (session.socket as unknown as { bytesWritten: number }).bytesWritten;
      assert.ok(sent < garbage.length / 2, `the client sent ${sent} bytes of ${garbage.length}`);
      const wrong = await rawCall(session, APPLY, { body: garbage, token: "x".repeat(24) }).result;
      assert.equal(Code[wrong.code], "UNAUTHENTICATED", wrong.message);
      const viewerCall = await rawCall(session, APPLY, { body: garbage, token: VIEWER_TOKEN })
        .result;
      assert.equal(Code[viewerCall.code], "PERMISSION_DENIED", viewerCall.message);
      assert.match(viewerCall.message, /token "dash" has role viewer; this call needs admin/);
      // The admin's garbage is read and decoded: that is what the others were spared.
      const adminCall = await rawCall(session, APPLY, { body: garbage, token: ADMIN_TOKEN }).result;
      assert.equal(Code[adminCall.code], "INVALID_ARGUMENT", adminCall.message);
      assert.match(adminCall.message, /malformed isthmus\.v1\.ApplyPoliciesRequest/);
      assert.equal(await refusals(f, "unauthenticated"), 2);
      assert.equal(await refusals(f, "permission-denied"), 1);
    } finally {
      session.close();
    }
  });

  it("refuses a request over its method's message size before decoding it", async () => {
    f = await startHub(limits({ maxMessageBytes: { default: 4096, applyPolicies: 1 * MiB } }));
    const session = await rawSession({ port: f.hub.port, caPem: f.hub.caPem });
    try {
      const big = grpcFrame(Buffer.alloc(8192, 0x07));
      const status = await rawCall(session, STATUS, { body: big, token: ADMIN_TOKEN }).result;
      assert.equal(Code[status.code], "RESOURCE_EXHAUSTED", status.message);
      assert.match(
        status.message,
        /getStatus: request message of 8192 bytes exceeds limits\.maxMessageBytes \(4096 bytes\)/,
      );
      // The same bytes are within ApplyPolicies' limit: decoded, and refused as malformed.
      const apply = await rawCall(session, APPLY, { body: big, token: ADMIN_TOKEN }).result;
      assert.equal(Code[apply.code], "INVALID_ARGUMENT", apply.message);
      // Over the largest method's limit, grpc-js refuses on the length prefix alone.
      const huge = await rawCall(session, APPLY, {
        body: grpcFrame(Buffer.alloc(2 * MiB)),
        token: ADMIN_TOKEN,
      }).result;
      assert.equal(Code[huge.code], "RESOURCE_EXHAUSTED", huge.message);
      assert.equal(await refusals(f, "message-too-large"), 1);
      // A well-formed small call still goes through.
      assert.equal((await f.admin.getStatus({}, admin)).policyCount, 0);
    } finally {
      session.close();
    }
  });

  it("throttles token guessing per address with a retry hint; other addresses go on", async () => {
    f = await startHub(limits({ authFailureBurst: 5, authFailuresPerMinute: 6 }));
    const guesser = createClient(
      AdminService,
      f.address,
      clientCredentials({ caPem: f.hub.caPem }),
    );
    const answers: string[] = [];
    let retryAfter: string | undefined;
    try {
      for (let i = 0; i < 40; i++) {
        const token = `guess-${String(i).padStart(20, "0")}`;
        const err = await guesser
          .getStatus({}, { metadata: { authorization: `Bearer ${token}` } })
          .then(
            () => undefined,
            (e: unknown) => GrpcError.from(e),
          );
        assert.ok(err !== undefined, "a guessed token was accepted");
        answers.push(err.codeName);
        if (err.code === Code.RESOURCE_EXHAUSTED) {
          assert.match(
            err.message,
            /too many failed authentications from 127\.0\.0\.1; retry after \d+ s/,
          );
          retryAfter = String(err.metadata?.get("retry-after")[0]);
        }
      }
      assert.deepEqual(answers.slice(0, 5), Array(5).fill("UNAUTHENTICATED"));
      assert.deepEqual(answers.slice(5), Array(35).fill("RESOURCE_EXHAUSTED"));
      assert.match(retryAfter ?? "", /^[1-9]\d*$/);
      // The throttled address is refused even with the right token: guessing gains nothing.
      await assert.rejects(
        guesser.getStatus({}, admin),
        failsWith(Code.RESOURCE_EXHAUSTED, /too many failed authentications/),
      );
      // An admin on another address is not.
      const session = await rawSession({
        port: f.hub.port,
        caPem: f.hub.caPem,
        localAddress: "127.0.0.2",
      });
      try {
        const ok = await rawCall(session, STATUS, {
          body: grpcFrame(new Uint8Array()),
          token: ADMIN_TOKEN,
        }).result;
        assert.equal(Code[ok.code], "OK", ok.message);
      } finally {
        session.close();
      }
      assert.equal(await refusals(f, "auth-throttled"), 36);
    } finally {
      guesser.close();
    }
  });

  it("limits a client's call rate with a retry hint", async () => {
    f = await startHub(limits({ requestsPerSecond: 1, requestBurst: 3 }));
    for (let i = 0; i < 3; i++) await f.admin.getStatus({}, admin);
    const err = await f.admin.getStatus({}, admin).then(
      () => undefined,
      (e: unknown) => GrpcError.from(e),
    );
    assert.ok(err !== undefined, "the fourth call in a burst of three was served");
    assert.equal(err.codeName, "RESOURCE_EXHAUSTED", err.message);
    assert.match(err.message, /client token:ops exceeds 1 calls\/s \(burst 3\); retry after 1 s/);
    assert.equal(err.metadata?.get("retry-after")[0], "1");
    // Another token has its own budget.
    assert.equal((await f.admin.getStatus({}, viewer)).policyCount, 0);
  });

  it("refuses calls over a client's open-call limit and advertises the stream limit", async () => {
    f = await startHub(limits({ maxCallsPerClient: 2, maxConcurrentStreams: 7 }));
    const fixture = f;
    const watches = [new AbortController(), new AbortController()];
    const drains = watches.map((w) =>
      (async () => {
        for await (const _ of fixture.admin.watchCatalog({}, { ...viewer, signal: w.signal }));
      })().catch(() => {}),
    );
    await eventually(async () =>
      assert.equal((await fixture.hub.context.metrics.watchers.get()).values[0]?.value, 2),
    );
    await assert.rejects(
      (async () => {
        for await (const _ of fixture.admin.watchCatalog({}, viewer));
      })(),
      failsWith(
        Code.RESOURCE_EXHAUSTED,
        /client token:dash has 2 calls open \(limits\.maxCallsPerClient\)/,
      ),
    );
    // Unary calls of the same token wait for no stream: they are refused too, until one ends.
    await assert.rejects(
      f.admin.getStatus({}, viewer),
      failsWith(Code.RESOURCE_EXHAUSTED, /calls open/),
    );
    watches[0]!.abort();
    await drains[0];
    await eventually(async () =>
      assert.equal((await fixture.admin.getStatus({}, viewer)).policyCount, 0),
    );
    assert.ok((await refusals(f, "too-many-calls")) >= 2);
    watches[1]!.abort();
    await drains[1];
    const session = await rawSession({ port: f.hub.port, caPem: f.hub.caPem });
    try {
      assert.equal(session.remoteSettings.maxConcurrentStreams, 7);
    } finally {
      session.close();
    }
  });

  it("closes idle connections and handshakes that do not finish", async () => {
    f = await startHub(limits({ idleTimeoutMs: 200, handshakeTimeoutMs: 200 }));
    const idle = await rawSession({ port: f.hub.port, caPem: f.hub.caPem });
    const halfOpen = tcpConnect(f.hub.port, "127.0.0.1");
    sockets.push(halfOpen);
    await once(halfOpen, "connect");
    const halfOpenClosed = once(halfOpen, "close");
    await within(once(idle, "close"), "the idle HTTP/2 connection");
    await within(halfOpenClosed, "the connection that never started its TLS handshake");
  });

  it("closes connections over the per-address limit as they are accepted", async () => {
    f = await startHub(limits({ maxConnectionsPerAddress: 3 }));
    const port = f.hub.port;
    const open = async (localAddress: string) => {
      const s = tcpConnect({ port, host: "127.0.0.1", localAddress });
      sockets.push(s);
      await once(s, "connect");
      return s;
    };
    const first = await Promise.all([1, 2, 3].map(() => open("127.0.0.3")));
    const fourth = await open("127.0.0.3");
    await within(once(fourth, "close"), "the fourth connection from one address");
    // Another address is not affected, and the first three stay open.
    const other = await open("127.0.0.4");
    assert.ok(!other.destroyed && first.every((s) => !s.destroyed));
    const metric = await f.hub.context.metrics.refusedConnections.get();
    assert.equal(metric.values.find((v) => v.labels.reason === "too-many-from-address")?.value, 1);
    // A TLS client from another address still gets its calls through.
    const session = await rawSession({ port, caPem: f.hub.caPem, localAddress: "127.0.0.5" });
    try {
      const ok = await rawCall(session, STATUS, {
        body: grpcFrame(new Uint8Array()),
        token: ADMIN_TOKEN,
      }).result;
      assert.equal(Code[ok.code], "OK", ok.message);
    } finally {
      session.close();
    }
  });

  it("reads limits and watch from hub.yaml over the defaults and names a bad field", () => {
    const c = resolveHubConfig(
      {
        limits: { idleTimeoutMs: 0, maxMessageBytes: { getStatus: 1024 } },
        watch: { stallSeconds: 5 },
      },
      "hub.yaml",
    );
    assert.equal(c.limits.idleTimeoutMs, 0);
    assert.equal(c.limits.handshakeTimeoutMs, defaultHubConfig.limits.handshakeTimeoutMs);
    assert.deepEqual(c.limits.maxMessageBytes, {
      ...defaultHubConfig.limits.maxMessageBytes,
      getStatus: 1024,
    });
    assert.deepEqual(c.watch, { maxPendingChanges: 250_000, stallSeconds: 5 });
    const bad: [unknown, RegExp][] = [
      [
        { limits: { idleTimeout: 1 } },
        /: hub\.yaml: limits\.idleTimeout: unknown field \(known: maxConnections, /,
      ],
      [
        { limits: { handshakeTimeoutMs: 0 } },
        /: hub\.yaml: limits\.handshakeTimeoutMs: must be an integer >= 1, got 0$/,
      ],
      [
        { limits: { maxMessageBytes: { getStatuss: 1 } } },
        /limits\.maxMessageBytes\.getStatuss: unknown method \(known: default, enroll, /,
      ],
      [
        { limits: { maxMessageBytes: { connect: "32Mi" } } },
        /limits\.maxMessageBytes\.connect: must be an integer >= 1, got "32Mi"$/,
      ],
      [{ limits: 5 }, /: hub\.yaml: limits: must be a mapping$/],
      [
        { watch: { maxPendingChanges: 0 } },
        /: hub\.yaml: watch\.maxPendingChanges: must be an integer >= 1, got 0$/,
      ],
      [{ watch: { stall: 1 } }, /: hub\.yaml: watch\.stall: unknown field/],
    ];
    for (const [input, pattern] of bad)
      assert.throws(() => resolveHubConfig(input, "hub.yaml"), pattern);
  });
});
