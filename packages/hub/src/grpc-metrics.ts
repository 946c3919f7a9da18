// Per-RPC metrics of the hub's gRPC server, named as go-grpc-prometheus and the
// grpc-ecosystem middleware name them (grpc_service, grpc_method, grpc_type, grpc_code), so
// that dashboards written for gRPC servers work. A grpc-js server interceptor placed after
// the gate: calls the gate refuses never reach it (isthmus_hub_refused_calls_total counts
// them), and it starts its clock once the gate let the call's headers through.
import * as grpc from "@grpc/grpc-js";
import { Counter, Histogram, type Registry } from "prom-client";

/** Buckets of the handling time: unary calls take milliseconds, streams live for hours. */
const handlingBuckets = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600,
];

type GrpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

function grpcType(d: grpc.ServerMethodDefinition<unknown, unknown>): GrpcType {
  if (d.requestStream) return d.responseStream ? "bidi_stream" : "client_stream";
  return d.responseStream ? "server_stream" : "unary";
}

/** grpc-js codes by number: `OK`, `UNAVAILABLE`, as grpc_code labels are written. */
const codeNames = new Map<number, string>(
  Object.entries(grpc.status)
    .filter((e): e is [string, number] => typeof e[1] === "number")
    .map(([name, n]) => [n, name]),
);

/** Registers the gRPC server metrics on `registry` and returns the interceptor that feeds them. */
export function createGrpcServerMetrics(registry: Registry): grpc.ServerInterceptor {
  const labelNames = ["grpc_type", "grpc_service", "grpc_method"] as const;
  const started = new Counter({
    name: "isthmus_hub_grpc_server_started_total",
    help: "RPCs started on the server (after the gate admitted them)",
    labelNames,
    registers: [registry],
  });
  const handled = new Counter({
    name: "isthmus_hub_grpc_server_handled_total",
    help: "RPCs completed on the server, by status code (CANCELLED when the client went away)",
    labelNames: [...labelNames, "grpc_code"],
    registers: [registry],
  });
  const handling = new Histogram({
    name: "isthmus_hub_grpc_server_handling_seconds",
    help: "Time from an RPC's admission to its status, by method",
    labelNames,
    buckets: handlingBuckets,
    registers: [registry],
  });
  const received = new Counter({
    name: "isthmus_hub_grpc_server_msg_received_total",
    help: "Request messages received, by method",
    labelNames,
    registers: [registry],
  });
  const sent = new Counter({
    name: "isthmus_hub_grpc_server_msg_sent_total",
    help: "Response messages sent, by method",
    labelNames,
    registers: [registry],
  });

  return (descriptor, call) => {
    const slash = descriptor.path.lastIndexOf("/");
    const labels = {
      grpc_type: grpcType(descriptor),
      grpc_service: descriptor.path.slice(1, slash),
      grpc_method: descriptor.path.slice(slash + 1),
    };
    let startedAt: bigint | undefined;
    const finish = (code: number) => {
      if (startedAt === undefined) return;
      const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
      startedAt = undefined;
      handled.inc({ ...labels, grpc_code: codeNames.get(code) ?? String(code) });
      handling.observe(labels, seconds);
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        startedAt = process.hrtime.bigint();
        started.inc(labels);
        next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        received.inc(labels);
        next(message);
      })
      .withOnCancel(() => finish(grpc.status.CANCELLED))
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendMessage((message, next) => {
        sent.inc(labels);
        next(message);
      })
      .withSendStatus((status, next) => {
        finish(status.code);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
