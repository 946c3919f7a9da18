import { create } from "@bufbuild/protobuf";
import {
  type LocalFacts,
  type LocalServiceEndpoints,
  type RenderResult,
  renderIntent,
} from "@isthmus/agent";
import {
  type ImportBackendSchema,
  type ImportIntentSchema,
  type Intent,
  IntentSchema,
} from "@isthmus/proto";

type IntentInit = Parameters<typeof create<typeof IntentSchema>>[1];
type ImportInit = Parameters<typeof create<typeof ImportIntentSchema>>[1] & {
  namespace: string;
  service: string;
};
type BackendInit = Parameters<typeof create<typeof ImportBackendSchema>>[1] & {
  clusterId: string;
};

export function intent(init: IntentInit): Intent {
  return create(IntentSchema, init);
}

/**
 * An import as the hub sends it: the ImportIntent `import/<ns>/<svc>` and one
 * ImportBackendIntent `import/<ns>/<svc>/<cluster>` per backend, with the header's ports.
 */
export function importIntents(version: string, value: ImportInit, backends: BackendInit[]) {
  const name = `import/${value.namespace}/${value.service}`;
  return [
    intent({ name, version, kind: { case: "importIntent", value } }),
    ...backends.map((backend) =>
      intent({
        name: `${name}/${backend.clusterId}`,
        version: `${version}-${backend.clusterId}`,
        kind: {
          case: "importBackendIntent",
          value: {
            namespace: value.namespace,
            service: value.service,
            ports: value.ports ?? [],
            backend,
          },
        },
      }),
    ),
  ];
}

/** Renders an import's intents the way the agent does: the header with its backends, then
 * each backend, objects in that order. */
export function renderImportIntents([header, ...backends]: Intent[], f: LocalFacts): RenderResult {
  const values = backends.map(
    (b) => (b.kind.case === "importBackendIntent" ? b.kind.value.backend! : undefined)!,
  );
  const results = [renderIntent(header!, f, values), ...backends.map((b) => renderIntent(b, f))];
  return {
    intentName: header!.name,
    intentVersion: header!.version,
    objects: results.flatMap((r) => r.objects),
    errors: results.flatMap((r) => r.errors),
  };
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

export const importPayments = importIntents(
  "v1-abc",
  { namespace: "payments", service: "payments-api", ports: paymentsPorts, localBackend: true },
  [
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
);

export const paymentsEndpoints: LocalServiceEndpoints = {
  addresses: ["10.0.0.12", "10.0.0.11"],
  targetPorts: { http: 8080, api: 9091, metrics: 9100 },
  inMesh: true,
  podPorts: { 80: 8080, 9090: 9091, 9100: 9100 },
  podPortsKnown: true,
};
