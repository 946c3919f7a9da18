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

/**
 * Per agent, the milliseconds from a kill until it was welcomed again and until it applied a
 * complete delta after that (it holds the whole desired config: the new hub's warm-up ended,
 * which waits for every known cluster, so these are close to each other).
 */
function recorder() {
  let since = 0;
  const welcomed = new Map<string, number>();
  const synced = new Map<string, number>();
  return {
    events: {
      welcome(id: string, at: number) {
        if (since > 0 && !welcomed.has(id)) welcomed.set(id, at - since);
      },
      complete(id: string, at: number) {
        if (since > 0 && welcomed.has(id) && !synced.has(id)) synced.set(id, at - since);
      },
    },
    start(at: number) {
      since = at;
      welcomed.clear();
      synced.clear();
    },
    async wait(count: number): Promise<{ welcomed: number[]; synced: number[] }> {
      const deadline = Date.now() + 120_000;
      while (synced.size < count) {
        if (Date.now() > deadline)
          throw new Error(`only ${synced.size}/${count} agents in sync 120 s after the kill`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return { welcomed: [...welcomed.values()], synced: [...synced.values()] };
    },
  };
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
  // ISTHMUS_BENCH_FAILOVER_ROUNDS: kills per setup (default 3; each setup enrolls every agent).
  const rounds = smoke ? 1 : Number(process.env.ISTHMUS_BENCH_FAILOVER_ROUNDS ?? 3);
  const dir = mkdtempSync(join(tmpdir(), "isthmus-bench-failover-"));
  const etcd = await startEtcd();
  const failover = { welcomed: [] as number[], synced: [] as number[] };
  const restart = { welcomed: [] as number[], synced: [] as number[] };
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
      const rec = recorder();
      rec.start(performance.now());
      const fleet = await startFailoverAgents(ha, caPem, agents, rec.events);
      try {
        await rec.wait(agents);
        for (let r = 0; r < rounds; r++) {
          const leader = await fleet.leader();
          rec.start(performance.now());
          await leader.kill("SIGKILL");
          const t = await rec.wait(agents);
          failover.welcomed.push(...t.welcomed);
          failover.synced.push(...t.synced);
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
      const rec = recorder();
      rec.start(performance.now());
      const fleet = await startFailoverAgents(single, caPem, agents, rec.events);
      try {
        await rec.wait(agents);
        for (let r = 0; r < rounds; r++) {
          const hub = single.replicas[0]!;
          rec.start(performance.now());
          await hub.kill("SIGKILL");
          await hub.start();
          const t = await rec.wait(agents);
          restart.welcomed.push(...t.welcomed);
          restart.synced.push(...t.synced);
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
  const floorWelcome = `single hub kill -9 + restart -> agent welcomed (${agents} agents)`;
  const floorSync = `single hub kill -9 + restart -> agent in sync (${agents} agents)`;
  return [
    { name: floorWelcome, unit: "ms", samples: restart.welcomed },
    { name: floorSync, unit: "ms", samples: restart.synced },
    {
      name: `leader kill -9 -> agent welcomed by the new leader (${agents} agents)`,
      unit: "ms",
      samples: failover.welcomed,
      reference: floorWelcome,
    },
    {
      name: `leader kill -9 -> agent in sync with the new leader (${agents} agents)`,
      unit: "ms",
      samples: failover.synced,
      reference: floorSync,
    },
  ];
}
