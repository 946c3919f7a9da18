// A highly available hub, for real: three `isthmus hub` processes on a real etcd, three kubesim
// clusters with real agents given every replica's address. The leader is killed (-9) while
// policy batches are applied, again and again; it is paused past its lease; etcd goes away.
// Throughout, every owned Istio object in every cluster is watched: none may disappear.
// ISTHMUS_HA_KILLS sets the number of kills (default 20: about 3 s each on a quiet 2-core
// machine, since a follower revokes a crashed leader's lease at once).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Agent, createAgent } from "@isthmus/agent";
import { SANDBOX_NAMESPACES, type Scene, sceneObjects } from "@isthmus/cli/sandbox";
import { type KubeSim, startKubeSim } from "@isthmus/kubesim";
import type { Logger } from "@isthmus/logging";
import { Action } from "@isthmus/proto";
import { Etcd3 } from "etcd3";
import { runIsthmus } from "../helpers/cli.js";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";
import { ADMIN_TOKEN } from "../helpers/hub-fixture.js";
import { type HubReplicas, startHubReplicas } from "../helpers/hub-replicas.js";

const KILLS = Number(process.env.ISTHMUS_HA_KILLS ?? 20);
const SERVICES = 40;
const OWNED = "app.kubernetes.io/managed-by=isthmus";
const KINDS = [
  "apis/networking.istio.io/v1/serviceentries",
  "apis/networking.istio.io/v1/destinationrules",
  "apis/security.istio.io/v1/authorizationpolicies",
];

/** prod-us backs payments-api and svc-0..; prod-eu and dev run a frontend each. */
const scene: Scene = {
  clusters: [
    { id: "prod-eu", labels: { env: "prod" }, apps: [{ name: "frontend", namespace: "web" }] },
    {
      id: "prod-us",
      labels: { env: "prod" },
      apps: [
        { name: "payments-api", namespace: "payments", replicas: 1 },
        ...Array.from({ length: SERVICES }, (_, i) => ({
          name: `svc-${i}`,
          namespace: "payments",
          replicas: 1,
        })),
      ],
    },
    { id: "dev", labels: { env: "dev" }, apps: [{ name: "frontend", namespace: "web" }] },
  ],
};

/** A batch of two policies that only adds connections from dev to services prod-eu may call
 * already (so it only adds or updates objects: imports in dev, principals in prod-us). */
const batch = (i: number) => [
  {
    name: `b${i}-this`,
    priority: 100 + i,
    action: Action.ALLOW,
    from: [{ clusters: ["dev"], namespaces: ["web"] }],
    to: [{ namespaces: ["payments"], services: [`svc-${i % SERVICES}`] }],
  },
  {
    name: `b${i}-next`,
    priority: 100 + i,
    action: Action.ALLOW,
    from: [{ clusters: ["dev"], namespaces: ["web"] }],
    to: [{ namespaces: ["payments"], services: [`svc-${(i + 1) % SERVICES}`] }],
  },
];

interface Applied {
  cluster: string;
  term: bigint;
  systemVersion: string;
}

/** A logger that keeps what the agents' sessions say about applied deltas. */
function recordingLogger(cluster: string, applied: Applied[]): Logger {
  const logger: Logger = {
    debug: () => {},
    warn: () => {},
    error: () => {},
    info(message, fields) {
      if (message === "config applied")
        applied.push({
          cluster,
          term: BigInt(String(fields?.leader_term ?? "0")),
          systemVersion: String(fields?.system_version),
        });
    },
    child: () => logger,
  };
  return logger;
}

/** Watches every owned object of a cluster over the API server's watch; records deletions. */
function watchOwned(sim: KubeSim, deleted: string[]): AbortController {
  const abort = new AbortController();
  for (const path of KINDS) {
    const url = `${sim.url}/${path}?watch=true&labelSelector=${encodeURIComponent(OWNED)}`;
    void (async () => {
      const res = await fetch(url, { signal: abort.signal });
      let buffer = "";
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString();
        let nl = buffer.indexOf("\n");
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf("\n");
          if (line.trim() === "") continue;
          const event = JSON.parse(line) as {
            type: string;
            object: { kind: string; metadata: { namespace: string; name: string } };
          };
          if (event.type === "DELETED") {
            const o = event.object;
            deleted.push(`${sim.name}: ${o.kind} ${o.metadata.namespace}/${o.metadata.name}`);
          }
        }
      }
    })().catch(() => {});
  }
  return abort;
}

describe("highly available hub on etcd (processes)", function () {
  this.timeout(600_000);
  let dir: string;
  let etcd: EtcdCluster;
  let hubs: HubReplicas;
  let caPem: string;
  const sims: KubeSim[] = [];
  const agents: Agent[] = [];
  const applied: Applied[] = [];
  const deleted: string[] = [];
  const watches: AbortController[] = [];

  const status = () => hubs.atLeader(caPem, (c) => c.getStatus({}, hubs.call));
  /** Every cluster connected to the leader, its catalog in, holding the desired config. */
  const converged = () =>
    eventually(async () => {
      const s = await status();
      assert.equal(s.warmingUp, false, "warming up");
      for (const c of s.clusters)
        assert.ok(
          c.connected && c.inSync && c.catalogRevision > 0n,
          `${c.cluster?.id}: connected ${c.connected}, in sync ${c.inSync}`,
        );
    }, 30_000).catch((err: unknown) => {
      // What each replica said last: why no leader serves, when that is the failure.
      const tails = hubs.replicas.map(
        (r) => `replica ${r.index}:\n${r.logs().trim().split("\n").slice(-15).join("\n")}`,
      );
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${tails.join("\n")}`);
    });
  const ownedCount = () =>
    sims.reduce(
      (n, sim) =>
        n +
        [
          ["networking.istio.io/v1", "ServiceEntry"],
          ["networking.istio.io/v1", "DestinationRule"],
          ["security.istio.io/v1", "AuthorizationPolicy"],
        ].reduce(
          (m, [apiVersion, kind]) =>
            m + sim.list(apiVersion!, kind!, { labelSelector: OWNED }).length,
          0,
        ),
      0,
    );

  before(async function () {
    skipWithoutEtcd(this);
    dir = mkdtempSync(join(tmpdir(), "isthmus-ha-"));
    etcd = await startEtcd();
    hubs = await startHubReplicas({
      dir,
      count: 3,
      etcdEndpoints: etcd.endpoints,
      adminToken: ADMIN_TOKEN,
    });
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      const ca = await eventually(async () => {
        const v = await client.get("/isthmus/control-plane/ca").string();
        assert.ok(v, "hub CA in etcd");
        return JSON.parse(v) as { certPem: string };
      });
      caPem = ca.certPem;
    } finally {
      client.close();
    }
    for (const [i, sc] of scene.clusters.entries()) {
      const sim = await startKubeSim({ name: sc.id, namespaces: SANDBOX_NAMESPACES });
      sim.load(sceneObjects(scene, i));
      sims.push(sim);
      const created = await hubs.atLeader(caPem, (c) =>
        c.createCluster({ cluster: { id: sc.id, labels: sc.labels ?? {} } }, hubs.call),
      );
      const agent = createAgent({
        clusterId: sc.id,
        hubAddress: hubs.endpoints(),
        hubCaPem: caPem,
        bootstrapToken: created.bootstrapToken,
        kubeconfig: sim.kubeconfig(),
        logger: recordingLogger(sc.id, applied),
        debounceMs: 20,
      });
      agents.push(agent);
    }
    await Promise.all(agents.map((a) => a.start()));
    await hubs.atLeader(caPem, (c) =>
      c.applyPolicies(
        {
          policies: [
            {
              name: "eu-to-payments",
              priority: 10,
              action: Action.ALLOW,
              from: [{ clusters: ["prod-eu"], namespaces: ["web"] }],
              to: [{ namespaces: ["payments"] }],
            },
          ],
        },
        hubs.call,
      ),
    );
    await converged();
    for (const sim of sims) watches.push(watchOwned(sim, deleted));
  });

  after(async () => {
    for (const w of watches) w.abort();
    for (const a of agents) await a.stop();
    for (const s of sims) await s.close();
    await hubs?.close();
    await etcd?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The leader, once every cluster is in sync with it. */
  const leaderReplica = async () => {
    await converged();
    return hubs.leader();
  };

  it(`keeps every acknowledged batch and every owned object across ${KILLS} kills of the leader`, async () => {
    const acked = new Set<number>();
    const attempted = new Set<number>();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        attempted.add(i);
        try {
          await hubs.atLeader(caPem, (c) => c.applyPolicies({ policies: batch(i) }, hubs.call));
          acked.add(i);
        } catch {
          // Not acknowledged: the batch may or may not be stored, but never in part.
        }
      }
    })();
    let restarting: Promise<void> = Promise.resolve();
    try {
      for (let k = 0; k < KILLS; k++) {
        // The replica killed last time restarts meanwhile; two of three run at every kill.
        await restarting;
        const leader = await leaderReplica();
        const before = acked.size;
        await eventually(() => assert.ok(acked.size > before, "a batch acknowledged"));
        await leader.kill("SIGKILL");
        await converged();
        restarting = leader.start();
      }
    } finally {
      writing = false;
      await writer;
      await restarting;
    }
    await converged();
    const stored = new Set(
      (await hubs.atLeader(caPem, (c) => c.listPolicies({}, hubs.call))).policies.map(
        (p) => p.name,
      ),
    );
    for (const i of attempted) {
      const present = batch(i).filter((p) => stored.has(p.name)).length;
      if (acked.has(i)) assert.equal(present, 2, `acknowledged batch ${i} lost`);
      else assert.ok(present === 0 || present === 2, `batch ${i} stored in part`);
    }
    assert.ok(acked.size >= KILLS, `${acked.size} batches acknowledged`);
    assert.deepEqual(deleted, [], "owned objects removed during failovers");
    assert.ok(ownedCount() > 0);
    // Every term served by one replica, and the agents applied terms in order.
    const terms = hubs.replicas.flatMap((r) => r.terms());
    assert.equal(new Set(terms).size, terms.length, `a term served twice: ${terms.join(",")}`);
    assert.ok(terms.length >= KILLS + 1, `${terms.length} terms for ${KILLS} kills`);
    for (const id of scene.clusters.map((c) => c.id)) {
      const mine = applied.filter((a) => a.cluster === id);
      for (let j = 1; j < mine.length; j++)
        assert.ok(
          mine[j]!.term >= mine[j - 1]!.term,
          `${id} applied term ${mine[j]!.term} after ${mine[j - 1]!.term}`,
        );
    }
  });

  it("lets the CLI given a follower's address reach the leader", async () => {
    const leader = await leaderReplica();
    const follower = hubs.replicas.find((r) => r !== leader && r.running)!;
    const caFile = join(dir, "hub-ca.pem");
    writeFileSync(caFile, caPem);
    const run = await runIsthmus([
      "policy",
      "get",
      "eu-to-payments",
      "--hub",
      follower.address,
      "--token",
      ADMIN_TOKEN,
      "--ca",
      caFile,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /eu-to-payments/);
  });

  const newest = (terms: bigint[]) => [...terms].sort((a, b) => (a < b ? -1 : 1)).at(-1) ?? 0n;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("elects a leader of a new term when etcd is paused longer than the lease", async () => {
    const old = await leaderReplica();
    const oldTerm = newest(old.terms());
    etcd.members[0]!.pause();
    try {
      await sleep(4_000); // twice the lease
    } finally {
      etcd.members[0]!.resume();
    }
    await converged();
    const now = await leaderReplica();
    assert.ok(newest(now.terms()) > oldTerm, "a new term");
    // The old leader stepped down by its own clock: it served no term it could not renew.
    assert.match(old.logs(), /leadership lost/);
    assert.deepEqual(deleted, [], "owned objects removed");
  });

  it("refuses writes naming etcd while etcd is down, keeps every cluster's config, recovers", async () => {
    const owned = ownedCount();
    await etcd.members[0]!.stop();
    try {
      const refusal = await eventually(async () => {
        const err = await hubs
          .atLeader(caPem, (c) => c.applyPolicies({ policies: batch(10_000) }, hubs.call), 500)
          .then(
            () => undefined,
            (e: unknown) => e as Error,
          );
        assert.ok(err !== undefined, "write accepted without etcd");
        assert.match(err.message, /etcd http:\/\/127\.0\.0\.1:\d+/);
        return err;
      }, 20_000);
      assert.match(refusal.message, /UNAVAILABLE|not written|no leader/);
      await sleep(1_000);
      assert.equal(ownedCount(), owned, "agents keep what they applied");
    } finally {
      await etcd.members[0]!.start();
    }
    await converged();
    await hubs.atLeader(caPem, (c) => c.applyPolicies({ policies: batch(10_001) }, hubs.call));
    assert.deepEqual(deleted, [], "owned objects removed");
    // Over every test: each agent applied the deltas of ever newer terms, never an older one.
    for (const id of scene.clusters.map((c) => c.id)) {
      const mine = applied.filter((a) => a.cluster === id);
      for (let j = 1; j < mine.length; j++)
        assert.ok(
          mine[j]!.term >= mine[j - 1]!.term,
          `${id}: term ${mine[j]!.term} after ${mine[j - 1]!.term}`,
        );
    }
  });
});
