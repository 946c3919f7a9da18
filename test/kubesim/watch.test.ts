import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { get } from "node:http";
import { connect } from "node:net";
import type { Harness } from "./helpers.js";
import { startHarness, until } from "./helpers.js";
import type { KubernetesObject, V1ConfigMap } from "./k8s-client.js";
import { ADD, CoreV1Api, DELETE, ERROR, makeInformer, UPDATE, Watch } from "./k8s-client.js";

interface Event {
  type: string;
  object: KubernetesObject & { code?: number; reason?: string; message?: string };
}

/** A watch opened with client-node's Watch; events are awaited one by one, in order. */
async function openWatch(
  h: Harness,
  path: string,
  query: Record<string, string | number | boolean>,
) {
  const events: Event[] = [];
  const waiting: (() => void)[] = [];
  let ended: unknown = false;
  const wake = () => {
    for (const w of waiting.splice(0)) w();
  };
  const controller = await new Watch(h.kc).watch(
    path,
    query,
    (type, object) => {
      events.push({ type, object: object as Event["object"] });
      wake();
    },
    (err) => {
      ended = err ?? null;
      wake();
    },
  );
  let read = 0;
  return {
    async next(): Promise<Event> {
      while (read >= events.length) {
        if (ended !== false) throw new Error(`watch ended: ${String(ended)}`);
        await new Promise<void>((r) => waiting.push(r));
      }
      return events[read++]!;
    },
    async end(): Promise<unknown> {
      while (ended === false) await new Promise<void>((r) => waiting.push(r));
      return ended;
    },
    rest: () => events.slice(read),
    stop: () => controller.abort(),
  };
}

const cm = (
  name: string,
  labels: Record<string, string> = {},
  data: Record<string, string> = {},
) => ({
  metadata: { name, labels },
  data,
});

describe("kubesim watch", () => {
  let h: Harness;
  let core: CoreV1Api;
  beforeEach(async () => {
    h = await startHarness({ historySize: 50 });
    core = h.kc.makeApiClient(CoreV1Api);
  });
  afterEach(() => h.close());

  it("streams ADDED, MODIFIED and DELETED after the list's resourceVersion", async () => {
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("before") });
    const list = await core.listNamespacedConfigMap({ namespace: "default" });
    const w = await openWatch(h, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: list.metadata?.resourceVersion ?? "",
    });
    const created = await core.createNamespacedConfigMap({ namespace: "default", body: cm("a") });
    await core.patchNamespacedConfigMap({
      name: "a",
      namespace: "default",
      body: [{ op: "add", path: "/data", value: { k: "v" } }],
    });
    await core.deleteNamespacedConfigMap({ name: "a", namespace: "default" });
    const e1 = await w.next();
    const e2 = await w.next();
    const e3 = await w.next();
    w.stop();
    assert.deepEqual(
      [e1, e2, e3].map((e) => `${e.type} ${e.object.metadata?.name}`),
      ["ADDED a", "MODIFIED a", "DELETED a"],
    );
    assert.equal(e1.object.metadata?.resourceVersion, created.metadata?.resourceVersion);
    const rvs = [e1, e2, e3].map((e) => Number(e.object.metadata?.resourceVersion));
    assert.ok(rvs[0]! < rvs[1]! && rvs[1]! < rvs[2]!, `increasing resourceVersions: ${rvs}`);
    assert.deepEqual((e2.object as V1ConfigMap).data, { k: "v" });
  });

  it("starts with the current state as ADDED events when resourceVersion is 0 or unset", async () => {
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("x") });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("y") });
    for (const resourceVersion of ["0", ""]) {
      const w = await openWatch(h, "/api/v1/namespaces/default/configmaps", { resourceVersion });
      const initial = [await w.next(), await w.next()];
      assert.deepEqual(
        initial.map((e) => `${e.type} ${e.object.metadata?.name}`),
        ["ADDED x", "ADDED y"],
      );
      await core.createNamespacedConfigMap({
        namespace: "default",
        body: cm(`z${resourceVersion}`),
      });
      const next = await w.next();
      assert.equal(`${next.type} ${next.object.metadata?.name}`, `ADDED z${resourceVersion}`);
      w.stop();
      h.sim.delete("v1", "ConfigMap", `z${resourceVersion}`, "default");
    }
  });

  it("applies label selectors: objects leaving the selection arrive as DELETED, entering as ADDED", async () => {
    const w = await openWatch(h, "/api/v1/configmaps", {
      labelSelector: "team=blue",
      resourceVersion: h.sim.resourceVersion(),
    });
    await core.createNamespacedConfigMap({
      namespace: "default",
      body: cm("red", { team: "red" }),
    });
    await core.createNamespacedConfigMap({
      namespace: "default",
      body: cm("one", { team: "blue" }),
    });
    const relabel = (team: string) =>
      core.patchNamespacedConfigMap({
        name: "one",
        namespace: "default",
        body: [{ op: "replace", path: "/metadata/labels/team", value: team }],
      });
    await relabel("green");
    await relabel("blue");
    await core.patchNamespacedConfigMap({
      name: "red",
      namespace: "default",
      body: [{ op: "add", path: "/data", value: { a: "b" } }],
    });
    await core.deleteNamespacedConfigMap({ name: "one", namespace: "default" });
    const seen = [await w.next(), await w.next(), await w.next(), await w.next()];
    w.stop();
    assert.deepEqual(
      seen.map((e) => `${e.type} ${e.object.metadata?.name} ${e.object.metadata?.labels?.team}`),
      ["ADDED one blue", "DELETED one green", "ADDED one blue", "DELETED one blue"],
    );
  });

  it("applies field selectors on metadata.name", async () => {
    const w = await openWatch(h, "/api/v1/namespaces/default/configmaps", {
      fieldSelector: "metadata.name=target",
      resourceVersion: h.sim.resourceVersion(),
    });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("other") });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("target") });
    const e = await w.next();
    w.stop();
    assert.equal(`${e.type} ${e.object.metadata?.name}`, "ADDED target");
  });

  it("sends BOOKMARK events only to watches that allow them", async () => {
    const rv = h.sim.resourceVersion();
    const withBookmarks = await openWatch(h, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: rv,
      allowWatchBookmarks: true,
    });
    const without = await openWatch(h, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: rv,
    });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("b") });
    h.sim.sendBookmarks();
    const added = await withBookmarks.next();
    const bookmark = await withBookmarks.next();
    assert.equal(added.type, "ADDED");
    assert.equal(bookmark.type, "BOOKMARK");
    assert.deepEqual(bookmark.object, {
      kind: "ConfigMap",
      apiVersion: "v1",
      metadata: { resourceVersion: h.sim.resourceVersion() },
    });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("c") });
    const first = await without.next();
    const second = await without.next();
    assert.deepEqual(
      [first.type, second.type, second.object.metadata?.name],
      ["ADDED", "ADDED", "c"],
    );
    withBookmarks.stop();
    without.stop();
  });

  it("answers a watch from a resourceVersion older than the history with ERROR 410 Expired", async () => {
    const old = h.sim.resourceVersion();
    for (let i = 0; i < 60; i++) {
      await core.createNamespacedConfigMap({ namespace: "default", body: cm(`n${i}`) });
    }
    const w = await openWatch(h, "/api/v1/namespaces/default/configmaps", { resourceVersion: old });
    const e = await w.next();
    assert.equal(e.type, "ERROR");
    assert.equal(e.object.kind, "Status");
    assert.equal(e.object.code, 410);
    assert.equal(e.object.reason, "Expired");
    assert.match(e.object.message ?? "", /^too old resource version: \d+ \(\d+\)$/);
    assert.equal(await w.end(), null, "the server ends the stream after the error");
  });

  it("ends the stream after timeoutSeconds", async () => {
    const w = await openWatch(h, "/api/v1/namespaces/default/configmaps", {
      resourceVersion: h.sim.resourceVersion(),
      timeoutSeconds: 1,
    });
    assert.equal(await w.end(), null);
  });

  it("ends watches on a custom resource when its CRD is deleted", async () => {
    h.sim.create({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "gadgets.example.com" },
      spec: {
        group: "example.com",
        scope: "Namespaced",
        names: { plural: "gadgets", kind: "Gadget" },
        versions: [{ name: "v1", served: true, storage: true }],
      },
    });
    h.sim.create({ apiVersion: "example.com/v1", kind: "Gadget", metadata: { name: "g1" } });
    const w = await openWatch(h, "/apis/example.com/v1/namespaces/default/gadgets", {
      resourceVersion: h.sim.resourceVersion(),
    });
    h.sim.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.example.com");
    const e = await w.next();
    assert.equal(`${e.type} ${e.object.metadata?.name}`, "DELETED g1");
    assert.equal(await w.end(), null);
  });

  it("writes a watcher's events of one event-loop turn as one chunk, in order, before a bookmark", async () => {
    const url = new URL(h.sim.url);
    const socket = connect(Number(url.port), url.hostname);
    let raw = "";
    socket.on("error", () => {});
    socket.setEncoding("latin1");
    socket.on("data", (c: string) => {
      raw += c;
    });
    socket.write(
      `GET /api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=${h.sim.resourceVersion()} HTTP/1.1\r\nHost: kubesim\r\n\r\n`,
    );
    await until(() => raw.includes("\r\n\r\n") && h.sim.openWatches() === 1, "watch open");
    const configMap = (name: string) => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace: "default" },
    });
    // Three writes in one turn, then a bookmark in the same turn: the events come first.
    for (const name of ["one", "two", "three"]) h.sim.create(configMap(name));
    h.sim.sendBookmarks();
    await until(() => raw.includes('"BOOKMARK"'), "events and bookmark");
    // Later writes, each in a turn of its own: one chunk each.
    h.sim.create(configMap("four"));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    h.sim.create(configMap("five"));
    await until(() => /"five"[^\r]*\r\n/.test(raw), "later events");
    socket.destroy();
    // Chunked encoding: size line, data, size line, data...
    const parts = raw.slice(raw.indexOf("\r\n\r\n") + 4).split("\r\n");
    const chunks: string[] = [];
    for (let i = 0; i + 1 < parts.length; i += 2) chunks.push(parts[i + 1]!);
    const names = (chunk: string) =>
      chunk
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => {
          const e = JSON.parse(l) as Event;
          return e.type === "BOOKMARK" ? "BOOKMARK" : e.object.metadata?.name;
        });
    // Node >= 22 sends the writes of one turn to a response as one chunk: the bookmark,
    // written in the turn that flushes the events, shares their chunk there (on Node 20 it
    // had a chunk of its own). Events and bookmark stay in order either way.
    assert.deepEqual(chunks.map(names), [["one", "two", "three", "BOOKMARK"], ["four"], ["five"]]);
  });

  it("ends the watch of a client that stops reading, instead of buffering without limit", async () => {
    await h.close();
    h = await startHarness({ watchBufferBytes: 256 * 1024 });
    const res = await new Promise<IncomingMessage>((resolve) =>
      get(
        `${h.sim.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${h.sim.resourceVersion()}`,
        resolve,
      ),
    );
    res.pause();
    assert.equal(h.sim.openWatches(), 1);
    const big = "x".repeat(64 * 1024);
    let writes = 0;
    for (; writes < 2000 && h.sim.openWatches() === 1; writes++) {
      h.sim.load([
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "big" },
          data: { v: `${writes}${big}` },
        },
      ]);
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(h.sim.openWatches(), 0, `dropped after ${writes} events`);
    for (let i = 0; i < 5; i++) {
      h.sim.load([
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "big" },
          data: { v: `late-${i}` },
        },
      ]);
    }
    let lines = 0;
    res.on("data", (c: Buffer) => {
      lines += c.toString().split("\n").length - 1;
    });
    res.resume();
    await new Promise((r) => res.on("end", r));
    assert.equal(
      lines,
      writes,
      "the events written before the drop arrive, then the end; none after",
    );
  });

  it("feeds client-node informers, which relist after 410 Gone", async () => {
    const informer = makeInformer(h.kc, "/api/v1/namespaces/default/configmaps", () =>
      core.listNamespacedConfigMap({ namespace: "default" }),
    );
    const log: string[] = [];
    const errors: unknown[] = [];
    let notify = () => {};
    const record = (verb: string) => (obj: KubernetesObject) => {
      log.push(`${verb} ${obj.metadata?.name}`);
      notify();
    };
    informer.on(ADD, record("add"));
    informer.on(UPDATE, record("update"));
    informer.on(DELETE, record("delete"));
    informer.on(ERROR, (err) => errors.push(err));
    const waitFor = async (entry: string) => {
      while (!log.includes(entry)) await new Promise<void>((r) => (notify = r));
    };
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("keep") });
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("drop") });
    await informer.start();
    await waitFor("add drop");
    await core.createNamespacedConfigMap({ namespace: "default", body: cm("live") });
    await waitFor("add live");
    await core.patchNamespacedConfigMap({
      name: "live",
      namespace: "default",
      body: [{ op: "add", path: "/data", value: { v: "1" } }],
    });
    await waitFor("update live");
    await core.deleteNamespacedConfigMap({ name: "live", namespace: "default" });
    await waitFor("delete live");

    // While the informer is cut off, the history is compacted: its resume gets 410 and it relists.
    h.sim.faults.pause();
    h.sim.faults.closeWatches();
    h.sim.delete("v1", "ConfigMap", "drop", "default");
    h.sim.delete("v1", "ConfigMap", "keep", "default");
    h.sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "late", namespace: "default" },
    });
    h.sim.faults.compact();
    h.sim.faults.resume();
    await waitFor("add late");
    await waitFor("delete keep");
    await waitFor("delete drop");
    await informer.stop();
    assert.deepEqual(errors, []);
    assert.deepEqual(
      informer
        .list("default")
        .map((o) => o.metadata?.name)
        .sort(),
      ["late"],
    );
  });
});
