// A hub for benchmarks, and a simulated agent: enrolls with a real bootstrap token and CSR, opens
// the Connect stream with its client certificate, says Hello and ACKs every ConfigDelta as
// soon as it is decoded (no Kubernetes behind it).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHub, defaultHubConfig, type Hub, type Store } from "@isthmus/hub";
import { createAgentCsr } from "@isthmus/pki";
import {
  AdminService,
  AgentService,
  Code,
  type ConfigDelta,
  type ConnectRequestSchema,
  clientCredentials,
  createClient,
  forEachMessage,
  GrpcError,
  type ServiceClient,
} from "@isthmus/proto";

export interface SimulatedAgent {
  send(message: MessageInitShape<typeof ConnectRequestSchema>): Promise<void>;
  close(): void;
}

export async function connectSimulatedAgent(
  address: string,
  caPem: string,
  clusterId: string,
  bootstrapToken: string,
  onDelta: (delta: ConfigDelta) => void,
): Promise<SimulatedAgent> {
  const csr = await createAgentCsr(clusterId);
  const anonymous = createClient(AgentService, address, clientCredentials({ caPem }));
  const enrolled = await anonymous.enroll({ clusterId, bootstrapToken, csrPem: csr.csrPem });
  anonymous.close();
  const client = createClient(
    AgentService,
    address,
    clientCredentials({ caPem, certChainPem: enrolled.certificateChainPem, keyPem: csr.keyPem }),
  );
  const stream = client.connect();
  // Not a `for await` loop: it would keep each agent's last delta alive, and the memory
  // benchmark would count 100 decoded snapshots as hub memory.
  forEachMessage(stream.responses, async (m) => {
    if (m.message.case !== "configDelta") return;
    const d = m.message.value;
    await stream.send({
      message: { case: "ack", value: { nonce: d.nonce, systemVersion: d.systemVersion } },
    });
    onDelta(d);
  }).catch((err: unknown) => {
    // A stream the benchmark did not cancel itself broke: say so, the figures are off.
    if (!(err instanceof GrpcError && err.code === Code.CANCELLED))
      console.error(`simulated agent ${clusterId}: stream failed: ${String(err)}`);
  });
  await stream.send({
    message: {
      case: "hello",
      value: {
        clusterId,
        agentVersion: "bench",
        mesh: {
          network: `net-${clusterId}`,
          trustDomain: `${clusterId}.local`,
          eastWestGateways: [{ address: "10.0.0.1", port: 15443 }],
        },
      },
    },
  });
  return {
    send: (message) => stream.send(message),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

const BENCH_TOKEN = "bench-admin-token-0123456789";

export interface BenchHub {
  hub: Hub;
  address: string;
  admin: ServiceClient<(typeof AdminService)["method"]>;
  /** Call options carrying the admin token. */
  auth: { metadata: Record<string, string> };
  close(): Promise<void>;
}

/** A hub on loopback TLS with a fresh data directory and an admin client; its state in
 * `store` when given (an etcd store), else in the data dir's file store. */
export async function startBenchHub(
  debounce: { windowMs: number; maxMs: number },
  store?: Store,
): Promise<BenchHub> {
  const dataDir = mkdtempSync(join(tmpdir(), "isthmus-bench-hub-"));
  const hub = await createHub({
    config: {
      ...defaultHubConfig,
      listen: "127.0.0.1:0",
      metricsListen: "",
      dataDir,
      adminTokens: [{ name: "bench", role: "admin", token: BENCH_TOKEN }],
      debounce,
      warmupSeconds: 0,
      // Every simulated agent connects from 127.0.0.1, as clusters behind one NAT would:
      // above the default of 64 connections per address.
      limits: { ...defaultHubConfig.limits, maxConnectionsPerAddress: 10_000 },
    },
    // On etcd: no election, this hub serves at once (the store benchmark measures writes and
    // a second replica's view of them, not leadership).
    ...(store !== undefined ? { store, election: false as const } : {}),
  });
  const address = `localhost:${hub.port}`;
  const admin = createClient(AdminService, address, clientCredentials({ caPem: hub.caPem }));
  return {
    hub,
    address,
    admin,
    auth: { metadata: { authorization: `Bearer ${BENCH_TOKEN}` } },
    async close() {
      admin.close();
      await hub.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
