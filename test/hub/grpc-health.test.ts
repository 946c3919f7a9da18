// The hub as gRPC tools and Kubernetes see it (issue 22): grpc.health.v1 answers without
// credentials and follows readiness, server reflection lists and describes the services (what
// grpcurl asks), and every call admitted past the gate is counted per method and status code.
// Calls are written by hand over HTTP/2, as a probe or grpcurl sends them, with no token.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { ClientHttp2Session } from "node:http2";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { Code, GrpcError } from "@isthmus/proto";
import { admin, type HubFixture, startHub } from "../helpers/hub-fixture.js";
import { grpcFrame, type RawResult, rawCall, rawSession } from "../helpers/raw-grpc.js";

const CHECK = "/grpc.health.v1.Health/Check";
const REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
/** grpc.health.v1.HealthCheckResponse.ServingStatus */
const SERVING = 1;
const NOT_SERVING = 2;

/** The messages of a response body (length-prefixed gRPC frames). */
function frames(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 5 <= data.length; ) {
    const length = data.readUInt32BE(at + 1);
    out.push(data.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

/** Fields of one protobuf message: number -> values (varints as numbers, the rest as bytes). */
function fields(message: Uint8Array): Map<number, (number | Uint8Array)[]> {
  const reader = new BinaryReader(message);
  const out = new Map<number, (number | Uint8Array)[]>();
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const value = wireType === 0 ? reader.int32() : wireType === 2 ? reader.bytes() : undefined;
    if (value === undefined) throw new Error(`unexpected wire type ${wireType} of field ${no}`);
    out.set(no, [...(out.get(no) ?? []), value]);
  }
  return out;
}

async function check(session: ClientHttp2Session, service: string): Promise<number> {
  const request = new BinaryWriter().tag(1, 2).string(service).finish();
  const res = await rawCall(session, CHECK, { body: grpcFrame(request) }).result;
  assert.equal(res.code, Code.OK, `Check("${service}"): ${res.message}`);
  return fields(frames(res.data)[0]!).get(1)?.[0] as number;
}

/** One ServerReflectionRequest (a field of the request oneof) on the given API version. */
async function reflect(
  session: ClientHttp2Session,
  path: string,
  field: number,
  value: string,
): Promise<RawResult & { messages: Map<number, (number | Uint8Array)[]>[] }> {
  const request = new BinaryWriter().tag(field, 2).string(value).finish();
  const res = await rawCall(session, path, { body: grpcFrame(request) }).result;
  return { ...res, messages: frames(res.data).map(fields) };
}

const text = (b: number | Uint8Array | undefined) =>
  b instanceof Uint8Array ? Buffer.from(b).toString("utf8") : String(b);

describe("hub gRPC health, reflection and per-RPC metrics", function () {
  this.timeout(60_000);
  let f: HubFixture;
  let session: ClientHttp2Session;
  const metricsText = async () =>
    (await fetch(`http://127.0.0.1:${f.hub.metricsPort}/metrics`)).text();
  before(async () => {
    f = await startHub();
    session = await rawSession({ port: f.hub.port, caPem: f.hub.caPem });
  });
  after(async () => {
    session.close();
    await f.close();
  });

  it("answers grpc.health.v1 Check without credentials and follows readiness", async () => {
    for (const name of ["", "isthmus.v1.AgentService", "isthmus.v1.AdminService"])
      assert.equal(await check(session, name), SERVING, `service "${name}"`);
    const readyz = () => fetch(`http://127.0.0.1:${f.hub.metricsPort}/readyz`);
    assert.equal((await readyz()).status, 200);

    f.hub.health.setReady(false);
    try {
      assert.equal(await check(session, ""), NOT_SERVING);
      assert.equal(await check(session, "isthmus.v1.AdminService"), NOT_SERVING);
      assert.equal((await readyz()).status, 503);
      assert.match(await metricsText(), /^isthmus_hub_ready 0$/m);
    } finally {
      f.hub.health.setReady(true);
    }
    assert.equal(await check(session, ""), SERVING);
    assert.match(await metricsText(), /^isthmus_hub_ready 1$/m);

    const unknown = await rawCall(session, CHECK, {
      body: grpcFrame(new BinaryWriter().tag(1, 2).string("no.such.Service").finish()),
    }).result;
    assert.equal(unknown.code, Code.NOT_FOUND);
  });

  it("serves health alone in plaintext on grpcHealthListen, as Kubernetes gRPC probes speak", async () => {
    const g = await startHub({ grpcHealthListen: "127.0.0.1:0" });
    const client = new grpc.Client(
      `127.0.0.1:${g.hub.grpcHealthPort}`,
      grpc.credentials.createInsecure(),
    );
    const call = (path: string, service: string) =>
      new Promise<{ code: number; status?: number }>((resolve) => {
        client.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from(new BinaryWriter().tag(1, 2).string(service).finish()),
          (err, res) =>
            resolve(
              err
                ? { code: err.code }
                : { code: Code.OK, status: fields(res!).get(1)?.[0] as number },
            ),
        );
      });
    try {
      assert.deepEqual(await call(CHECK, ""), { code: Code.OK, status: SERVING });
      g.hub.health.setReady(false);
      assert.deepEqual(await call(CHECK, ""), { code: Code.OK, status: NOT_SERVING });
      // Nothing else is served without TLS.
      const admin = await call("/isthmus.v1.AdminService/GetStatus", "");
      assert.equal(admin.code, Code.UNIMPLEMENTED);
    } finally {
      client.close();
      await g.close();
    }
  });

  it("lists and describes its services by reflection, v1 and v1alpha, without credentials", async () => {
    for (const path of [REFLECTION_V1, REFLECTION_V1ALPHA]) {
      // list_services (field 7) -> list_services_response (6) { repeated ServiceResponse (1) { name (1) } }
      const listed = await reflect(session, path, 7, "");
      assert.equal(listed.code, Code.OK, listed.message);
      const services = (listed.messages[0]!.get(6) ?? [])
        .flatMap((r) => fields(r as Uint8Array).get(1) ?? [])
        .map((s) => text(fields(s as Uint8Array).get(1)?.[0]))
        .sort();
      assert.deepEqual(services, [
        "grpc.health.v1.Health",
        "isthmus.v1.AdminService",
        "isthmus.v1.AgentService",
      ]);
    }
    // file_containing_symbol (4) -> file_descriptor_response (4) { repeated bytes (1) }: the
    // service's file and the files it imports, so that grpcurl can build every message.
    const described = await reflect(session, REFLECTION_V1, 4, "isthmus.v1.AdminService");
    assert.equal(described.code, Code.OK, described.message);
    const files = (described.messages[0]!.get(4) ?? [])
      .flatMap((r) => fields(r as Uint8Array).get(1) ?? [])
      .map((d) => text(fields(d as Uint8Array).get(1)?.[0]));
    for (const name of [
      "isthmus/v1/admin_service.proto",
      "isthmus/v1/policy.proto",
      "google/protobuf/timestamp.proto",
    ])
      assert.ok(files.includes(name), `${name} in ${files.join(", ")}`);
  });

  it("counts each admitted call by method and status code, and times it", async () => {
    await f.admin.listClusters({}, admin);
    await assert.rejects(
      f.admin.getCluster({ id: "nowhere" }, admin),
      (err: unknown) => err instanceof GrpcError && err.code === Code.NOT_FOUND,
    );
    // Refused by the gate: counted there, not as a handled call.
    await assert.rejects(f.admin.listPolicies({}), /missing bearer token/);

    const metrics = await (await fetch(`http://127.0.0.1:${f.hub.metricsPort}/metrics`)).text();
    const line = (method: string, code: string) =>
      new RegExp(
        `^isthmus_hub_grpc_server_handled_total\\{grpc_type="unary",grpc_service="isthmus\\.v1\\.AdminService",grpc_method="${method}",grpc_code="${code}"\\} 1$`,
        "m",
      );
    assert.match(metrics, line("ListClusters", "OK"));
    assert.match(metrics, line("GetCluster", "NOT_FOUND"));
    assert.doesNotMatch(metrics, /grpc_method="ListPolicies"/);
    assert.match(metrics, /^isthmus_hub_refused_calls_total\{reason="unauthenticated"\} 1$/m);
    assert.match(
      metrics,
      /^isthmus_hub_grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="isthmus\.v1\.AdminService",grpc_method="ListClusters"\} 1$/m,
    );
    // The health checks of the first test are calls too.
    assert.match(
      metrics,
      /^isthmus_hub_grpc_server_handled_total\{grpc_type="unary",grpc_service="grpc\.health\.v1\.Health",grpc_method="Check",grpc_code="OK"\} \d+$/m,
    );
  });

  it("exports build info, process metrics, agents' connection and certificates' expiry", async () => {
    await f.admin.createCluster({ cluster: { id: "prod-eu" } }, admin);
    const metrics = await (await fetch(`http://127.0.0.1:${f.hub.metricsPort}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `^isthmus_build_info\\{component="hub",version="\\d+\\.\\d+\\.\\d+",node="${process.versions.node}"\\} 1$`,
        "m",
      ),
    );
    assert.match(metrics, /^process_cpu_seconds_total \d/m);
    assert.match(metrics, /^nodejs_eventloop_lag_seconds \d/m);
    assert.doesNotMatch(metrics, /^isthmus_hub_process_/m);
    assert.match(metrics, /^isthmus_hub_agent_connected\{cluster="prod-eu"\} 0$/m);

    const ca = new X509Certificate(f.hub.caPem);
    const notAfter = Math.floor(Date.parse(ca.validTo) / 1000);
    const expiry = [
      ...metrics.matchAll(
        /^isthmus_hub_certificate_expiry_timestamp_seconds\{certificate="(\w+)",subject="[^"]*",serial="([0-9a-f]+)"\} (\d+)$/gm,
      ),
    ].map((m) => ({ certificate: m[1], serial: m[2], value: Number(m[3]) }));
    assert.deepEqual(
      expiry.map((e) => e.certificate),
      ["ca", "server"],
    );
    assert.deepEqual(expiry[0], {
      certificate: "ca",
      serial: ca.serialNumber.toLowerCase(),
      value: notAfter,
    });
    // The self-issued server certificate ends before its CA.
    assert.ok(expiry[1]!.value > Date.now() / 1000 && expiry[1]!.value <= notAfter);
  });
});
