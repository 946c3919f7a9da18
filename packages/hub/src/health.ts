// The hub's health as gRPC tools and Kubernetes read it: `grpc.health.v1.Health` (Check, Watch,
// List; Kubernetes' gRPC probes and grpc_health_probe call Check) and server reflection (v1 and
// v1alpha, so that `grpcurl` lists and calls the hub's services without .proto files). Both
// are open to every client: the gate has no rule for them (a probe carries no credentials),
// and what they tell is public (the schema is in proto/, readiness is on /readyz too).

import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { AdminService, AgentService } from "@isthmus/proto";
import { HealthImplementation, service as healthService } from "grpc-health-check";

/** The services whose health the hub reports: "" (the server as a whole) and each API. */
const SERVED = ["", AgentService.typeName, AdminService.typeName] as const;

export interface HubHealth {
  /** Whether the hub serves: SERVING on every health name, and /readyz 200. */
  ready(): boolean;
  setReady(ready: boolean): void;
  /**
   * Serves grpc.health.v1 alone, in plaintext, on `address` (host:port, port 0 picks one):
   * Kubernetes' gRPC probes speak no TLS, and the API port is TLS only.
   */
  servePlaintext(address: string): Promise<{ port: number; close(): Promise<void> }>;
}

/**
 * Adds the health and reflection services to `server`. The hub starts NOT_SERVING; it calls
 * `setReady(true)` once it listens, and `setReady(false)` when it begins to shut down.
 */
export function addHealthAndReflection(server: grpc.Server): HubHealth {
  const health = new HealthImplementation(
    Object.fromEntries(SERVED.map((name) => [name, "NOT_SERVING" as const])),
  );
  health.addToServer(server);
  new ReflectionService(reflectionPackage(), {
    services: [AgentService.typeName, AdminService.typeName, "grpc.health.v1.Health"],
  }).addToServer(server);
  let ready = false;
  return {
    ready: () => ready,
    async servePlaintext(address) {
      const plain = new grpc.Server();
      health.addToServer(plain);
      const port = await new Promise<number>((resolve, reject) =>
        plain.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
          err ? reject(new Error(`grpcHealthListen ${address}: ${err.message}`)) : resolve(p),
        ),
      );
      return {
        port,
        close: () =>
          new Promise<void>((resolve) => {
            // Health Watch streams stay open until their client goes: do not wait for them.
            plain.forceShutdown();
            resolve();
          }),
      };
    },
    setReady(next) {
      ready = next;
      for (const name of SERVED) health.setStatus(name, next ? "SERVING" : "NOT_SERVING");
    },
  };
}

/**
 * The proto-loader package definition @grpc/reflection reads: it only takes the serialized
 * file descriptors (`fileDescriptorProtos`) of each entry. The hub's services are protobuf-es
 * descriptors, so their files (and every file they import) are serialized here; the health
 * service's come from grpc-health-check's own proto-loader definition.
 */
function reflectionPackage(): ConstructorParameters<typeof ReflectionService>[0] {
  const files = new Map<string, Uint8Array>();
  const add = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, toBinary(FileDescriptorProtoSchema, file.proto));
    for (const dependency of file.dependencies) add(dependency);
  };
  add(AgentService.file);
  add(AdminService.file);
  const entry = (protos: readonly Uint8Array[]) => ({
    format: "Protocol Buffer 3 DescriptorProto",
    type: {},
    fileDescriptorProtos: protos.map((p) => Buffer.from(p)),
  });
  const healthCheck = healthService.Check;
  if (healthCheck === undefined) throw new Error("grpc-health-check: no Check method");
  return {
    "isthmus.v1": entry([...files.values()]),
    "grpc.health.v1": entry(healthCheck.requestType.fileDescriptorProtos),
  } as unknown as ConstructorParameters<typeof ReflectionService>[0];
}
