// Failover benchmark: three `isthmus hub` processes on one real etcd, 200 simulated agents
// given every replica's address; the leader is killed (-9) and each agent's time from the
// kill to being connected to the new leader and in sync (the hub's status) is one sample.
// The floor, same run: one hub on its file store killed and restarted on its port. (Policy
// write latency on etcd against the file store: the `store` benchmark.)
// Needs `npm run build` (the hubs are the compiled CLI) and etcd on PATH.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { etcdAvailable, startEtcd } from "../test/helpers/etcd.js";
import { startHubReplicas } from "../test/helpers/hub-replicas.js";
import type { BenchOptions, Figure } from "./harness.js";
import { startFailoverAgents } from "./lib/failover-agents.js";

const ADMIN_TOKEN = "bench-admin-token-0123456789";
const HUB_CONFIG = {
  warmupSeconds: 30,
  // Every simulated agent connects from 127.0.0.1: above the default of 64 per address.
  limits: { maxConnectionsPerAddress: 10_000, requestBurst: 100_000 },
};

type Hubs = Awaited<ReturnType<typeof startHubReplicas>>;

/** Milliseconds from `since` until each cluster is connected and in sync at the leader. */
async function timesToSync(hubs: Hubs, caPem: string, clusters: number, since: number) {
  const done = new Map<string, number>();
  const deadline = Date.now() + 60_000;
  while (done.size < clusters) {
    if (Date.now() > deadline) throw new Error(`only ${done.size}/${clusters} in sync after 60 s`);
    try {
      const s = await hubs.atLeader(caPem, (c) => c.getStatus({}, hubs.call), 1_000);
      const t = performance.now();
      for (const c of s.clusters) {
        const id = c.cluster?.id ?? "";
        if (!done.has(id) && c.connected && c.inSync && c.catalogRevision > 0n)
          done.set(id, t - since);
      }
    } catch {
      // No leader yet: poll again.
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return [...done.values()];
}

async function readCa(endpoints: string[]): Promise<string> {
  const client = new Etcd3({ hosts: endpoints });
  try {
    for (;;) {
      const v = await client.get("/isthmus/control-plane/ca").string();
      if (v !== null) return (JSON.parse(v) as { certPem: string }).certPem;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    client.close();
  }
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  if (!etcdAvailable) throw new Error("failover: no `etcd` on PATH (Debian package etcd-server)");
  const agents = smoke ? 5 : 200;
  const rounds = smoke ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), "isthmus-bench-failover-"));
  const etcd = await startEtcd();
  const failover: number[] = [];
  const restart: number[] = [];
  try {
    // Three replicas on etcd, leases of 2 s (etcd's minimum: what bounds a crash failover).
    const ha = await startHubReplicas({
      dir: join(dir, "ha"),
      count: 3,
      etcdEndpoints: etcd.endpoints,
      adminToken: ADMIN_TOKEN,
      config: HUB_CONFIG,
    });
    try {
      const caPem = await readCa(etcd.endpoints);
      const fleet = await startFailoverAgents(ha, caPem, agents);
      try {
        await timesToSync(ha, caPem, agents, performance.now());
        for (let r = 0; r < rounds; r++) {
          const leader = await fleet.leader();
          const killed = performance.now();
          await leader.kill("SIGKILL");
          failover.push(...(await timesToSync(ha, caPem, agents, killed)));
          await leader.start();
        }
      } finally {
        fleet.close();
      }
    } finally {
      await ha.close();
    }
    // The floor: one hub on its file store, killed and started again on the same port.
    const single = await startHubReplicas({
      dir: join(dir, "single"),
      count: 1,
      etcdEndpoints: [],
      adminToken: ADMIN_TOKEN,
      config: { ...HUB_CONFIG, store: "file" },
      store: "file",
    });
    try {
      const caPem = single.caPem();
      const fleet = await startFailoverAgents(single, caPem, agents);
      try {
        await timesToSync(single, caPem, agents, performance.now());
        for (let r = 0; r < rounds; r++) {
          const hub = single.replicas[0]!;
          const killed = performance.now();
          await hub.kill("SIGKILL");
          await hub.start();
          restart.push(...(await timesToSync(single, caPem, agents, killed)));
        }
      } finally {
        fleet.close();
      }
    } finally {
      await single.close();
    }
  } finally {
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    {
      name: `single hub kill -9 + restart -> ${agents} agents in sync`,
      unit: "ms",
      samples: restart,
    },
    {
      name: `leader kill -9 -> ${agents} agents in sync at the new leader`,
      unit: "ms",
      samples: failover,
      reference: `single hub kill -9 + restart -> ${agents} agents in sync`,
    },
  ];
}
