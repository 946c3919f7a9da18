// A simulated agent for hub benchmarks: enrolls with a real bootstrap token and CSR, opens
// the Connect stream with its client certificate, says Hello and ACKs every ConfigDelta as
// soon as it is decoded (no Kubernetes behind it).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createAgentCsr } from "@isthmus/pki";
import {
  AgentService,
  type ConfigDelta,
  type ConnectRequestSchema,
  clientCredentials,
  createClient,
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
  (async () => {
    for await (const m of stream.responses) {
      if (m.message.case !== "configDelta") continue;
      const d = m.message.value;
      await stream.send({
        message: { case: "ack", value: { nonce: d.nonce, systemVersion: d.systemVersion } },
      });
      onDelta(d);
    }
  })().catch(() => {});
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
