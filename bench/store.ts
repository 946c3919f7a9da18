// Policy apply latency with the hub's state on etcd against the embedded file store, in the
// same run: one admin ApplyPolicies call (validate, write, compile) on a hub whose store is
// the file store, a one-member etcd, or a three-member etcd; the raw store write under it;
// and how long a policy applied at one replica takes to reach another replica's registry.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEtcdStore, openFileStore, type Store } from "@isthmus/hub";
import { Action } from "@isthmus/proto";
import {
  type EtcdCluster,
  etcdAvailable,
  startEtcd,
  startEtcdCluster,
} from "../test/helpers/etcd.js";
import { type BenchOptions, type Figure, timeEach } from "./harness.js";
import { type BenchHub, startBenchHub } from "./lib/bench-hub.js";

const DEBOUNCE = { windowMs: 10, maxMs: 100 };

const policy = (name: string, k: number) => ({
  name,
  priority: 100 + (k % 900),
  action: k % 2 === 0 ? Action.ALLOW : Action.DENY,
  from: [{ namespaces: [`web-${k % 40}`] }],
  to: [{ namespaces: ["app"], services: [`svc-${k % 250}`] }],
});

interface Scale {
  /** Policies stored before measuring, as a hub in use holds them. */
  preload: number;
  applies: number;
  warmup: number;
  batches: number;
  batchSize: number;
}

const scale = (smoke: boolean): Scale =>
  smoke
    ? { preload: 10, applies: 5, warmup: 2, batches: 2, batchSize: 10 }
    : { preload: 500, applies: 200, warmup: 20, batches: 20, batchSize: 100 };

/** ApplyPolicies latencies (ms) on `bench`: single new policies, then batches. */
async function applyLatency(bench: BenchHub, s: Scale, tag: string) {
  const { admin, auth } = bench;
  let k = 0;
  const next = () => policy(`${tag}-${k}`, k++);
  // In batches of 100: etcd takes at most 128 writes in one transaction (--max-txn-ops).
  for (let i = 0; i < s.preload; i += 100) {
    const policies = Array.from({ length: Math.min(100, s.preload - i) }, next);
    await admin.applyPolicies({ policies }, auth);
  }
  const single = await timeEach(s.applies, s.warmup, () =>
    admin.applyPolicies({ policies: [next()] }, auth),
  );
  const batch = await timeEach(s.batches, 1, () =>
    admin.applyPolicies({ policies: Array.from({ length: s.batchSize }, next) }, auth),
  );
  return { single: single.map((us) => us / 1000), batch: batch.map((us) => us / 1000) };
}

/** One put of a policy-sized value, straight to the store (ms). */
async function txnLatency(store: Store, s: Scale): Promise<number[]> {
  let k = 0;
  const samples = await timeEach(s.applies, s.warmup, () =>
    store.txn([{ op: "put", key: `bench/p-${k}`, value: policy(`p-${k}`, k++) }]),
  );
  return samples.map((us) => us / 1000);
}

/** Applied at replica `a` -> in replica `b`'s registry (ms), through etcd's watch. */
async function replicaLag(a: BenchHub, b: BenchHub, s: Scale): Promise<number[]> {
  const samples: number[] = [];
  for (let k = 0; k < s.applies; k++) {
    const name = `lag-${k}`;
    const t0 = performance.now();
    await a.admin.applyPolicies({ policies: [policy(name, k)] }, a.auth);
    while (!b.hub.context.registry.policies.has(name)) await new Promise(setImmediate);
    samples.push(performance.now() - t0);
  }
  return samples;
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const s = scale(smoke);
  const figures: Figure[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const fileHub = await startBenchHub(DEBOUNCE);
    cleanups.push(() => fileHub.close());
    const file = await applyLatency(fileHub, s, "file");
    const dir = await mkdtemp(join(tmpdir(), "isthmus-bench-store-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const fileStore = await openFileStore(dir, { create: true });
    cleanups.push(() => fileStore.close());
    figures.push(
      { name: "ApplyPolicies, 1 policy, file store", unit: "ms", samples: file.single },
      {
        name: `ApplyPolicies, ${s.batchSize} policies, file store`,
        unit: "ms",
        samples: file.batch,
      },
      {
        name: "store txn (1 put), file store",
        unit: "ms",
        samples: await txnLatency(fileStore, s),
      },
    );
    if (!etcdAvailable) {
      console.error("store: no `etcd` on PATH (Debian etcd-server): etcd figures skipped");
      return figures;
    }
    const clusters: [string, EtcdCluster][] = [
      ["1-member etcd", await startEtcd()],
      ["3-member etcd", await startEtcdCluster(3)],
    ];
    for (const [, c] of clusters) cleanups.push(() => c.close());
    for (const [label, etcd] of clusters) {
      const store = openEtcdStore({ endpoints: etcd.endpoints, prefix: "/bench/" });
      const hub = await startBenchHub(DEBOUNCE, store);
      cleanups.push(() => hub.close());
      const onEtcd = await applyLatency(hub, s, "etcd");
      const raw = openEtcdStore({ endpoints: etcd.endpoints, prefix: "/bench-raw/" });
      cleanups.push(() => raw.close());
      figures.push(
        {
          name: `ApplyPolicies, 1 policy, ${label}`,
          unit: "ms",
          samples: onEtcd.single,
          reference: "ApplyPolicies, 1 policy, file store",
        },
        {
          name: `ApplyPolicies, ${s.batchSize} policies, ${label}`,
          unit: "ms",
          samples: onEtcd.batch,
          reference: `ApplyPolicies, ${s.batchSize} policies, file store`,
        },
        {
          name: `store txn (1 put), ${label}`,
          unit: "ms",
          samples: await txnLatency(raw, s),
          reference: "store txn (1 put), file store",
        },
      );
      // A second replica on the same prefix: what reaches it, and how soon.
      const replica = await startBenchHub(
        DEBOUNCE,
        openEtcdStore({ endpoints: etcd.endpoints, prefix: "/bench/" }),
      );
      cleanups.push(() => replica.close());
      figures.push({
        name: `applied at one replica -> in the other's registry, ${label}`,
        unit: "ms",
        samples: await replicaLag(hub, replica, s),
        reference: `ApplyPolicies, 1 policy, ${label}`,
      });
    }
    return figures;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}
