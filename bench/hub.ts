import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  Action,
  ConfigDeltaSchema,
  type ConnectionPolicySchema,
  type Intent,
  type ServiceSchema,
  Visibility,
} from "@isthmus/proto";
import { type BenchOptions, type Figure, timeEach } from "./harness.js";
import { connectSimulatedAgent, startBenchHub } from "./lib/bench-hub.js";

interface Scale {
  clusters: number;
  servicesPerCluster: number;
  policyChanges: number;
  serviceChanges: number;
}

function scale(smoke: boolean): Scale {
  return smoke
    ? { clusters: 3, servicesPerCluster: 10, policyChanges: 2, serviceChanges: 2 }
    : { clusters: 200, servicesPerCluster: 250, policyChanges: 10, serviceChanges: 20 };
}

const clusterId = (i: number) => `c${String(i).padStart(3, "0")}`;

function service(i: number, ready: number): MessageInitShape<typeof ServiceSchema> {
  return {
    namespace: "app",
    name: `svc-${i}`,
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    selector: { app: `svc-${i}` },
    visibility: Visibility.PRIVATE,
    readyEndpoints: ready,
    serviceAccounts: [`sa-${i % 50}`],
    inMesh: true,
  };
}

function allowWebTo(
  name: string,
  services: string[],
): MessageInitShape<typeof ConnectionPolicySchema> {
  return {
    name,
    priority: 100,
    action: Action.ALLOW,
    from: [{ namespaces: ["web"] }],
    to: [{ namespaces: ["app"], services }],
  };
}

interface SimAgent {
  /** Resolves at the ACK of the first delta received after the call. */
  nextAck(): Promise<number>;
  /** Bytes of the last delta received. */
  lastBytes: number;
  /** The cluster's whole desired set as one delta, in bytes. */
  fullBytes(): number;
  snapshot(services: MessageInitShape<typeof ServiceSchema>[]): Promise<void>;
  update(service: MessageInitShape<typeof ServiceSchema>): Promise<void>;
  close(): void;
}

async function simAgent(
  address: string,
  caPem: string,
  id: string,
  token: string,
  services: number,
): Promise<SimAgent> {
  const held = new Map<string, Intent>();
  let waiters: ((t: number) => void)[] = [];
  let revision = 1n;
  const sim = await connectSimulatedAgent(address, caPem, id, token, (d) => {
    agent.lastBytes = toBinary(ConfigDeltaSchema, d).length;
    for (const i of d.upserted) held.set(i.name, i);
    for (const n of d.removed) held.delete(n);
    const t = performance.now();
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve(t);
  });
  const agent: SimAgent = {
    lastBytes: 0,
    nextAck: () => new Promise((resolve) => waiters.push(resolve)),
    fullBytes: () =>
      toBinary(
        ConfigDeltaSchema,
        create(ConfigDeltaSchema, { nonce: "x", upserted: [...held.values()], complete: true }),
      ).length,
    snapshot: (list) =>
      sim.send({
        message: {
          case: "catalogUpdate",
          value: {
            fullSnapshot: true,
            revision: revision++,
            upsertedServices: list,
            upsertedIdentities: identities(),
          },
        },
      }),
    update: (s) =>
      sim.send({
        message: {
          case: "catalogUpdate",
          value: {
            revision: revision++,
            upsertedServices: [s],
            originTime: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 },
          },
        },
      }),
    close: () => sim.close(),
  };
  function identities() {
    return [
      {
        namespace: "web",
        serviceAccount: "frontend",
        labelSets: [{ labels: { app: "frontend" }, podCount: 2 }],
        podCount: 2,
      },
      ...Array.from({ length: Math.min(50, services) }, (_, i) => ({
        namespace: "app",
        serviceAccount: `sa-${i}`,
        labelSets: [{ labels: { app: `svc-${i}` }, podCount: 1 }],
        podCount: 1,
      })),
    ];
  }
  return agent;
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
  const bench = await startBenchHub({ windowMs: 10, maxMs: 100 });
  const { hub, address, admin, auth } = bench;
  const agents: SimAgent[] = [];
  try {
    await admin.applyPolicies(
      { policies: [allowWebTo("base", ["svc-0", "svc-1", "svc-2", "svc-3", "svc-4"])] },
      auth,
    );
    for (let i = 0; i < s.clusters; i++) {
      const id = clusterId(i);
      const created = await admin.createCluster({ cluster: { id, labels: { env: "prod" } } }, auth);
      agents.push(
        await simAgent(address, hub.caPem, id, created.bootstrapToken, s.servicesPerCluster),
      );
    }
    const services = Array.from({ length: s.servicesPerCluster }, (_, i) => service(i, 2));
    await Promise.all(agents.map((a) => a.snapshot(services)));
    // Let the snapshots' own deltas drain: every cluster reported and nothing in flight.
    for (;;) {
      const st = await admin.getStatus({}, auth);
      const done = st.clusters.every(
        (c) => c.pendingNonce === "" && c.serviceCount === s.servicesPerCluster,
      );
      if (done) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300));

    const policySamples: number[] = [];
    for (let k = 0; k < s.policyChanges; k++) {
      const acks = Promise.all(agents.map((a) => a.nextAck()));
      const t0 = performance.now();
      await admin.applyPolicies({ policies: [allowWebTo(`extra-${k}`, [`svc-${5 + k}`])] }, auth);
      policySamples.push(Math.max(...(await acks)) - t0);
    }

    const serviceSamples: number[] = [];
    let bytes = 0;
    for (let k = 0; k < s.serviceChanges; k++) {
      // svc-0 is imported by every cluster: its weight (ready endpoints of c001) changes in
      // the import of every other cluster.
      const acks = Promise.all(agents.filter((_, i) => i !== 1).map((a) => a.nextAck()));
      const t0 = performance.now();
      await agents[1]!.update(service(0, 3 + k));
      serviceSamples.push(Math.max(...(await acks)) - t0);
      bytes = agents[0]!.lastBytes;
    }
    const full = agents[0]!.fullBytes();
    // The floor: the cheapest admin call (one map lookup) over the same TLS channel, with
    // every agent connected. GetStatus would build 200 cluster statuses and is no floor.
    const floor = await timeEach(smoke ? 20 : 500, smoke ? 5 : 100, () =>
      admin.getPolicy({ name: "base" }, auth),
    );
    return [
      {
        name: "unary round trip on the hub (floor)",
        unit: "ms",
        samples: floor.map((us) => us / 1000),
      },
      {
        name: `policy change -> ${s.clusters} agents ACKed`,
        unit: "ms",
        samples: policySamples,
        reference: "unary round trip on the hub (floor)",
      },
      {
        name: `service change -> ${s.clusters - 1} affected agents ACKed`,
        unit: "ms",
        samples: serviceSamples,
        reference: "unary round trip on the hub (floor)",
      },
      {
        name: "bytes of that delta to one cluster",
        unit: "B",
        samples: [bytes],
        reference: "bytes of a full snapshot of the cluster",
      },
      { name: "bytes of a full snapshot of the cluster", unit: "B", samples: [full] },
    ];
  } finally {
    for (const a of agents) a.close();
    await bench.close();
  }
}
