import assert from "node:assert/strict";
import { createInformer, type InformerStatus, PODS, SERVICES } from "@isthmus/agent";
import { sampleApp } from "@isthmus/kubesim";
import { eventually, loadApps, noDelay, startCluster, type TestCluster } from "./cluster.js";

const podNames = (inf: { list(): readonly { metadata: { name: string } }[] }) =>
  inf
    .list()
    .map((p) => p.metadata.name)
    .sort();

describe("agent informers under kubesim faults", () => {
  let c: TestCluster;
  beforeEach(async () => {
    c = await startCluster();
    loadApps(c.sim);
  });
  afterEach(async () => c.close());

  it("re-watches after the server drops every watch", async () => {
    const inf = createInformer({
      client: c.client,
      resource: PODS,
      namespace: "web",
      delay: noDelay,
    });
    await inf.start();
    try {
      assert.deepEqual(podNames(inf), ["frontend-0", "frontend-1", "frontend-2"]);
      await eventually(
        () => assert.ok(c.sim.faults.closeWatches() >= 1, "an open watch"),
        "an open watch to drop",
      );
      c.sim.delete("v1", "Pod", "frontend-0", "web");
      await eventually(() => assert.deepEqual(podNames(inf), ["frontend-1", "frontend-2"]));
      assert.equal(inf.status().healthy, true);
    } finally {
      await inf.stop();
    }
  });

  it("relists after 410 Gone when the watch history was compacted", async () => {
    const inf = createInformer({
      client: c.client,
      resource: PODS,
      namespace: "web",
      delay: noDelay,
    });
    await inf.start();
    try {
      // Changes while no watch is open, then a compacted history: the resume gets 410.
      c.sim.faults.pause();
      c.sim.faults.closeWatches();
      c.sim.delete("v1", "Pod", "frontend-1", "web");
      c.sim.load(
        sampleApp({
          name: "frontend",
          namespace: "web",
          replicas: 4,
          podIpPrefix: "10.244.2",
          portName: "http-web",
          port: 80,
        }),
      );
      c.sim.delete("v1", "Pod", "frontend-2", "web");
      c.sim.faults.compact();
      c.sim.faults.resume();
      await eventually(() =>
        assert.deepEqual(podNames(inf), ["frontend-0", "frontend-1", "frontend-3"]),
      );
      assert.equal(inf.status().healthy, true);
    } finally {
      await inf.stop();
    }
  });

  it("restarts a watch that fails with 500s, reporting it unhealthy meanwhile", async () => {
    const statuses: InformerStatus[] = [];
    const inf = createInformer({
      client: c.client,
      resource: SERVICES,
      delay: noDelay,
      onStatus: (s) => statuses.push(s),
    });
    await inf.start();
    try {
      c.sim.faults.failNext(3, { code: 500, watch: true, pathPrefix: "/api/v1/services" });
      c.sim.faults.closeWatches();
      await eventually(() => assert.ok(inf.status().restarts >= 3, "inf.status().restarts >= 3"));
      c.sim.delete("v1", "Service", "frontend", "web");
      await eventually(() => assert.equal(inf.get("frontend", "web"), undefined));
      assert.ok(
        statuses.some((s) => !s.healthy && /Internal Server Error|500/.test(s.lastError ?? "")),
        JSON.stringify(statuses),
      );
      await eventually(() => assert.equal(inf.status().healthy, true));
    } finally {
      await inf.stop();
    }
  });

  it("keeps retrying a failing initial list until it succeeds", async () => {
    c.sim.faults.failNext(2, {
      code: 503,
      watch: false,
      pathPrefix: "/api/v1/namespaces/web/pods",
    });
    const inf = createInformer({
      client: c.client,
      resource: PODS,
      namespace: "web",
      delay: noDelay,
    });
    await inf.start();
    try {
      assert.equal(inf.status().restarts, 2);
      assert.equal(inf.list().length, 3);
    } finally {
      await inf.stop();
    }
  });

  it("cuts and restarts a stalled watch", async () => {
    const inf = createInformer({
      client: c.client,
      resource: PODS,
      namespace: "web",
      delay: noDelay,
      stallMs: 50,
    });
    await inf.start();
    try {
      // No events, no bookmarks: the watch is declared stalled and restarted.
      await eventually(() => assert.ok(inf.status().restarts >= 1, "inf.status().restarts >= 1"));
      assert.match(inf.status().lastError ?? "", /watch stalled/);
      c.sim.delete("v1", "Pod", "frontend-0", "web");
      await eventually(() => assert.equal(inf.get("frontend-0", "web"), undefined));
    } finally {
      await inf.stop();
    }
  });
});
