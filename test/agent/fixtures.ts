import { create } from "@bufbuild/protobuf";
import type { LocalFacts, LocalServiceEndpoints } from "@isthmus/agent";
import { type Intent, IntentSchema } from "@isthmus/proto";

type IntentInit = Parameters<typeof create<typeof IntentSchema>>[1];

export function intent(init: IntentInit): Intent {
  return create(IntentSchema, init);
}

/** Local facts over a fixed endpoint table, as the informer cache would give them. */
export function facts(
  table: Record<string, LocalServiceEndpoints> = {},
  overrides: Partial<Omit<LocalFacts, "endpoints">> = {},
): LocalFacts {
  return {
    clusterId: "prod-eu",
    trustDomain: "prod-eu.example",
    network: "net-eu",
    locality: "eu-west1/eu-west1-b",
    ...overrides,
    endpoints: (ns, name) => table[`${ns}/${name}`],
  };
}

export const paymentsPorts = [
  { name: "http", port: 80, targetPort: "8080", protocol: "TCP" },
  { name: "api", port: 9090, targetPort: "grpc", appProtocol: "grpc" },
  { name: "metrics", port: 9100, targetPort: "9100" },
];

export const importPayments = intent({
  name: "import/payments/payments-api",
  version: "v1-abc",
  kind: {
    case: "importIntent",
    value: {
      namespace: "payments",
      service: "payments-api",
      ports: paymentsPorts,
      localBackend: true,
      backends: [
        {
          clusterId: "prod-us",
          network: "net-us",
          locality: "us-east1/us-east1-a",
          weight: 6,
          gateways: [
            { address: "203.0.113.20", port: 15443 },
            { address: "203.0.113.21", port: 15443 },
          ],
        },
        {
          clusterId: "prod-asia",
          network: "net-asia",
          locality: "asia-east1",
          weight: 2,
          gateways: [{ address: "gw.asia.example", port: 0 }],
        },
      ],
    },
  },
});

export const paymentsEndpoints: LocalServiceEndpoints = {
  addresses: ["10.0.0.12", "10.0.0.11"],
  targetPorts: { http: 8080, api: 9091, metrics: 9100 },
  inMesh: true,
  podPorts: { 80: 8080, 9090: 9091, 9100: 9100 },
};
