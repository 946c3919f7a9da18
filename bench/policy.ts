// Policy engine benchmark: a seeded scene of clusters, services, workload identities and
// rules; the time and memory of a full compile, and the time from one change (a service
// appears, an identity's labels change, a rule's selector changes) to the intent deltas.
// `npx tsx bench/policy.ts [--smoke]` prints median and p99 of every figure.

import { constants, type NodeGCPerformanceDetail, PerformanceObserver } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import { createRandom, type Random } from "@isthmus/model";
import {
  type CatalogChange,
  type ClusterFacts,
  createPolicyEngine,
  freezePolicy,
  type PolicyEngine,
} from "@isthmus/policy";
import {
  Action,
  type ConnectionPolicy,
  ConnectionPolicySchema,
  type Service,
  ServiceSchema,
  Visibility,
  type WorkloadIdentity,
  WorkloadIdentitySchema,
} from "@isthmus/proto";
import { benchSeed } from "./harness.js";

interface Figure {
  name: string;
  unit: string;
  samples: number[];
  reference?: string;
}

export interface SceneSize {
  clusters: number;
  servicesPerCluster: number;
  identitiesPerCluster: number;
  namespaces: number;
  logicalServices: number;
  accountsPerNamespace: number;
  rules: number;
  /** Changes of each kind timed apart first, from cold code (the first after a compile). */
  warmup: number;
  changes: number;
}

export const FULL: SceneSize = {
  clusters: 100,
  servicesPerCluster: 1000,
  identitiesPerCluster: 200,
  namespaces: 50,
  logicalServices: 5000,
  accountsPerNamespace: 20,
  rules: 500,
  warmup: 30,
  changes: 300,
};

const SMOKE: SceneSize = {
  clusters: 5,
  servicesPerCluster: 40,
  identitiesPerCluster: 20,
  namespaces: 5,
  logicalServices: 80,
  accountsPerNamespace: 6,
  rules: 20,
  warmup: 5,
  changes: 20,
};

const REGIONS = ["eu", "us", "ap"];

interface Scene {
  clusters: ClusterFacts[];
  services: Map<string, Service[]>;
  identities: Map<string, WorkloadIdentity[]>;
  policies: ConnectionPolicy[];
}

const ns = (i: number) => `team-${String(i).padStart(2, "0")}`;
const svcName = (i: number) => `svc-${String(i).padStart(4, "0")}`;
const saName = (i: number) => `sa-${String(i).padStart(2, "0")}`;

function labelSets(r: Random, sa: string): { labels: Record<string, string>; podCount: number }[] {
  const sets = [{ labels: { app: sa, version: "v1" }, podCount: 1 + r.int(5) }];
  if (r.chance(0.3)) sets.push({ labels: { app: sa, version: "v2" }, podCount: 1 + r.int(3) });
  return sets;
}

function makeService(r: Random, namespace: string, name: string, accounts: string[]): Service {
  const ports = [{ name: "http", port: 8080, protocol: "TCP", targetPort: "8080" }];
  if (r.chance(0.3)) ports.push({ name: "grpc", port: 9090, protocol: "TCP", targetPort: "9090" });
  return create(ServiceSchema, {
    namespace,
    name,
    ports,
    selector: { app: name },
    inMesh: r.chance(0.97),
    readyEndpoints: 1 + r.int(6),
    serviceAccounts: accounts.length === 0 ? [] : [r.pick(accounts)],
    visibility: r.chance(0.1) ? Visibility.PUBLIC : Visibility.PRIVATE,
  });
}

function makeRule(
  r: Random,
  size: SceneSize,
  i: number,
  clusters: ClusterFacts[],
): ConnectionPolicy {
  const from: Record<string, unknown> = {};
  const to: Record<string, unknown> = {};
  const srcNs = ns(r.int(size.namespaces));
  const dstNs = r.int(size.namespaces);
  // Sources: one service account (by name or by pod labels) of a namespace, or a whole
  // namespace; on the clusters of one environment, on a few named clusters, or anywhere.
  from.namespaces = [srcNs];
  if (r.chance(0.85)) {
    if (r.chance(0.5)) from.serviceAccounts = [saName(r.int(size.accountsPerNamespace))];
    else from.workloadLabels = { app: saName(r.int(size.accountsPerNamespace)) };
  }
  const where = r.next();
  if (where < 0.5) from.clusterLabels = { env: r.pick(["prod", "dev"]) };
  else if (where < 0.8)
    from.clusters = [r.pick(clusters).id, r.pick(clusters).id, r.pick(clusters).id];
  // Destinations: one logical service (most), ten by a glob, or a namespace in one region.
  // Logical service s lives in namespace s % namespaces.
  const kind = r.next();
  const s =
    Math.floor(r.int(Math.floor(size.logicalServices / size.namespaces))) * size.namespaces + dstNs;
  to.namespaces = [ns(dstNs)];
  if (kind < 0.9) to.services = [svcName(s)];
  else if (kind < 0.98) to.services = [`${svcName(s).slice(0, -1)}*`];
  else to.clusterLabels = { region: r.pick(REGIONS) };
  if (r.chance(0.2)) to.ports = [8080];
  return create(ConnectionPolicySchema, {
    name: `rule-${String(i).padStart(4, "0")}`,
    priority: r.int(1000),
    action: r.chance(0.8) ? Action.ALLOW : Action.DENY,
    from: [from],
    to: [to],
  });
}

export function buildScene(size: SceneSize, seed: number): Scene {
  const r = createRandom(seed);
  const clusters: ClusterFacts[] = [];
  const services = new Map<string, Service[]>();
  const identities = new Map<string, WorkloadIdentity[]>();
  for (let c = 0; c < size.clusters; c++) {
    const id = `c${String(c).padStart(3, "0")}`;
    const region = r.pick(REGIONS);
    clusters.push({
      id,
      labels: { env: r.chance(0.7) ? "prod" : "dev", region },
      network: `net-${id}`,
      trustDomain: `${id}.mesh`,
      gateways: [{ address: `10.${c >> 8}.${c & 255}.1`, port: 15443 }],
      locality: `${region}/${region}-${1 + r.int(3)}`,
    });
    // Identities: distinct (namespace, service account) pairs.
    const ids = new Map<string, WorkloadIdentity>();
    while (ids.size < size.identitiesPerCluster) {
      const namespace = ns(r.int(size.namespaces));
      const sa = saName(r.int(size.accountsPerNamespace));
      const key = `${namespace}/${sa}`;
      if (ids.has(key)) continue;
      const sets = labelSets(r, sa);
      ids.set(
        key,
        create(WorkloadIdentitySchema, {
          namespace,
          serviceAccount: sa,
          labelSets: sets,
          podCount: sets.reduce((n, s) => n + s.podCount, 0),
        }),
      );
    }
    identities.set(id, [...ids.values()]);
    const accountsByNs = new Map<string, string[]>();
    for (const i of ids.values()) {
      const list = accountsByNs.get(i.namespace) ?? [];
      list.push(i.serviceAccount);
      accountsByNs.set(i.namespace, list);
    }
    // Services: distinct logical services, in the namespace their number gives them.
    const picked = new Set<number>();
    while (picked.size < size.servicesPerCluster) picked.add(r.int(size.logicalServices));
    services.set(
      id,
      [...picked].map((s) => {
        const namespace = ns(s % size.namespaces);
        return makeService(r, namespace, svcName(s), accountsByNs.get(namespace) ?? []);
      }),
    );
  }
  const policies = Array.from({ length: size.rules }, (_, i) => makeRule(r, size, i, clusters));
  return { clusters, services, identities, policies };
}

export function catalogChanges(scene: Scene): CatalogChange[] {
  const out: CatalogChange[] = scene.clusters.map((cluster) => ({ kind: "cluster", cluster }));
  for (const c of scene.clusters) {
    out.push({
      kind: "cluster-services-replaced",
      clusterId: c.id,
      services: scene.services.get(c.id)!,
      identities: scene.identities.get(c.id)!,
    });
  }
  return out;
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Incremental: one change at a time on the compiled engine, in steady state: the compiles'
 * garbage is collected and swept first (a hub has long since done so when a change comes).
 * Each change runs in an event-loop turn of its own, as the hub's do (an admin call, or the
 * agents' catalog updates of one turn in one batch), so V8 can run young-generation
 * collections between changes as it does in the hub; those that start during a timed change
 * are counted apart. The first `warmup` changes of each kind run on code the JIT has not
 * optimized yet (a hub's first changes after a start): they are a figure of their own.
 */
async function timeChanges(engine: PolicyEngine, scene: Scene, size: SceneSize, seed: number) {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const changeWindows: number[] = [];
  const gcs: { start: number; minor: boolean }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: NodeGCPerformanceDetail }).detail?.kind;
      gcs.push({ start: e.startTime, minor: kind === constants.NODE_PERFORMANCE_GC_MINOR });
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
  const r = createRandom(seed + 1);
  const warmup: number[] = [];
  const serviceAppears: number[] = [];
  const identityLabels: number[] = [];
  const ruleSelector: number[] = [];
  let timedFrom = Number.POSITIVE_INFINITY;
  const timed = (samples: number[], change: () => unknown) => {
    const from = performance.now();
    const start = process.hrtime.bigint();
    change();
    samples.push(ms(start));
    changeWindows.push(from, performance.now());
  };
  let policies = scene.policies;
  for (let i = 0; i < size.warmup + size.changes; i++) {
    if (i === size.warmup) timedFrom = performance.now();
    /** The warm-up's samples, then the figure's own. */
    const into = (samples: number[]) => (i < size.warmup ? warmup : samples);
    {
      const c = r.pick(scene.clusters);
      const s = r.int(size.logicalServices);
      const namespace = ns(s % size.namespaces);
      const accounts = [...engine.catalog.identitiesIn(c.id).values()]
        .filter((x) => x.identity.namespace === namespace)
        .map((x) => x.identity.serviceAccount);
      const service = makeService(r, namespace, `new-${i}-${svcName(s)}`, accounts);
      await nextTurn();
      timed(into(serviceAppears), () =>
        engine.applyCatalog([{ kind: "service", clusterId: c.id, service }]),
      );
    }
    {
      const c = r.pick(scene.clusters);
      const ids = [...engine.catalog.identitiesIn(c.id).values()];
      const rec = r.pick(ids);
      const app = r.chance(0.5)
        ? rec.identity.serviceAccount
        : saName(r.int(size.accountsPerNamespace));
      const identity = create(WorkloadIdentitySchema, {
        namespace: rec.identity.namespace,
        serviceAccount: rec.identity.serviceAccount,
        labelSets: [{ labels: { app, version: `v${3 + i}` }, podCount: 2 }],
        podCount: 2,
      });
      await nextTurn();
      timed(into(identityLabels), () =>
        engine.applyCatalog([{ kind: "identity", clusterId: c.id, identity }]),
      );
    }
    {
      const k = r.int(policies.length);
      const replacement = makeRule(r, size, 0, scene.clusters);
      const next = [...policies];
      next[k] = freezePolicy(
        create(ConnectionPolicySchema, { ...replacement, name: policies[k]!.name }),
      );
      await nextTurn();
      timed(into(ruleSelector), () => engine.setPolicies(next));
      policies = next;
    }
  }
  await nextTurn(); // the observer's last entries
  observer.disconnect();
  // Young-generation collections from the first timed change on, and those that started
  // during a change.
  let during = 0;
  let minor = 0;
  let w = 0;
  for (const gc of gcs.sort((a, b) => a.start - b.start)) {
    if (!gc.minor || gc.start < timedFrom) continue;
    minor++;
    while (w < changeWindows.length && changeWindows[w + 1]! < gc.start) w += 2;
    if (w < changeWindows.length && changeWindows[w]! <= gc.start) during++;
  }
  return { warmup, serviceAppears, identityLabels, ruleSelector, minor, during };
}

export default async function run({ smoke }: { smoke: boolean }): Promise<Figure[]> {
  const size = smoke ? SMOKE : FULL;
  const seed = benchSeed();
  const scene = buildScene(size, seed);
  const changes = catalogChanges(scene);
  // Frozen, as the hub's registry stores them: the engine knows unchanged ones by reference.
  for (const p of scene.policies) freezePolicy(p);

  // Full compile: every rule, then the whole catalog in one batch.
  const fullSamples: number[] = [];
  const cpuSamples: number[] = [];
  const rssSamples: number[] = [];
  const intentCounts: number[] = [];
  let engine = createPolicyEngine();
  for (let round = 0; round < (smoke ? 2 : 3); round++) {
    engine = createPolicyEngine();
    (globalThis as { gc?: () => void }).gc?.();
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    engine.setPolicies(scene.policies);
    engine.applyCatalog(changes);
    fullSamples.push(ms(start));
    const used = process.cpuUsage(cpu);
    cpuSamples.push((used.user + used.system) / 1000);
    rssSamples.push(process.memoryUsage().rss / 2 ** 20);
    let n = 0;
    for (const c of engine.clustersWithIntents()) n += engine.intents(c).size;
    intentCounts.push(n);
  }

  const { warmup, serviceAppears, identityLabels, ruleSelector, minor, during } = await timeChanges(
    engine,
    scene,
    size,
    seed,
  );
  const all = [...serviceAppears, ...identityLabels, ...ruleSelector];
  return [
    { name: "full compile", unit: "ms", samples: fullSamples, reference: "one change (any kind)" },
    { name: "full compile, cpu time", unit: "ms", samples: cpuSamples },
    { name: "rss after full compile", unit: "MiB", samples: rssSamples },
    { name: "intents after full compile", unit: "count", samples: intentCounts },
    { name: "one change (any kind)", unit: "ms", samples: all },
    { name: "service appears", unit: "ms", samples: serviceAppears },
    { name: "identity labels change", unit: "ms", samples: identityLabels },
    { name: "rule selector changes", unit: "ms", samples: ruleSelector },
    { name: "one change (any kind), the first ones (warm-up)", unit: "ms", samples: warmup },
    { name: "young-generation GCs over the changes", unit: "count", samples: [minor] },
    { name: "young-generation GCs during a change", unit: "count", samples: [during] },
  ];
}

function quantile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

if (process.argv[1]?.endsWith("bench/policy.ts")) {
  const smoke = process.argv.includes("--smoke");
  const figures = await run({ smoke });
  const med = new Map(figures.map((f) => [f.name, quantile(f.samples, 50)]));
  for (const f of figures) {
    const ratio =
      f.reference === undefined
        ? ""
        : `  ratio ${(med.get(f.name)! / med.get(f.reference)!).toFixed(0)}x`;
    console.log(
      `${f.name.padEnd(28)} median ${quantile(f.samples, 50).toFixed(3)} ${f.unit}  p99 ${quantile(f.samples, 99).toFixed(3)} ${f.unit}  n=${f.samples.length}${ratio}`,
    );
  }
}
