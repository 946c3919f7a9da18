import assert from "node:assert/strict";
import type { Harness } from "./helpers.js";
import { kubectl, startHarness, statusOf } from "./helpers.js";
import type { KubernetesObject } from "./k8s-client.js";
import { ADD, CoreV1Api, ERROR, makeInformer, Watch } from "./k8s-client.js";

async function failure(
  p: Promise<unknown>,
): Promise<{ code: number; body: ReturnType<typeof statusOf>; headers: Record<string, string> }> {
  try {
    await p;
  } catch (err: unknown) {
    const e = err as { code: number; headers: Record<string, string> };
    return { code: e.code, body: statusOf(err), headers: e.headers };
  }
  assert.fail("expected the request to fail");
}

async function admin(h: Harness, method: string, path: string, body?: unknown): Promise<unknown> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const res = await fetch(`${h.sim.url}/kubesim/faults${path}`, init);
  assert.equal(res.status, 200);
  return res.json();
}

/** Waits (on I/O turns, not on a clock) until `n` requests are held by the server. */
async function heldRequests(h: Harness, n: number): Promise<void> {
  for (let i = 0; i < 10000 && h.sim.faults.state().waiting < n; i++) {
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(h.sim.faults.state().waiting, n);
}

const cm = (name: string) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: "default" },
});

describe("kubesim faults", () => {
  let h: Harness;
  let core: CoreV1Api;
  beforeEach(async () => {
    h = await startHarness();
    core = h.kc.makeApiClient(CoreV1Api);
  });
  afterEach(() => h.close());

  it("fails the next N requests with 500 InternalError, then serves again", async () => {
    h.sim.faults.failNext(2);
    for (let i = 0; i < 2; i++) {
      const f = await failure(core.listNamespace());
      assert.equal(f.code, 500);
      assert.equal(f.body.reason, "InternalError");
      assert.equal(f.body.message, "Internal error occurred: kubesim: injected fault");
    }
    const ok = await core.listNamespace();
    assert.ok(ok.items.length > 0);
  });

  it("throttles with 429 and Retry-After; kubectl waits and retries on its own", async () => {
    h.sim.faults.failNext(1, { code: 429, retryAfterSeconds: 7 });
    const f = await failure(core.listNamespace());
    assert.equal(f.code, 429);
    assert.equal(f.headers["retry-after"], "7");
    assert.equal(f.body.reason, "TooManyRequests");
    assert.equal(f.body.details?.retryAfterSeconds, 7);

    h.sim.faults.failNext(1, {
      code: 429,
      retryAfterSeconds: 1,
      method: "GET",
      pathPrefix: "/api/v1/namespaces/default/configmaps",
    });
    h.sim.create(cm("throttled"));
    const res = await kubectl(h, ["get", "configmap", "throttled", "-o", "name"]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), "configmap/throttled");
    assert.deepEqual(
      h.sim.faults.state().failures,
      [],
      "kubectl's first attempt consumed the fault",
    );
  });

  it("scopes failures to watches: an informer reports the error and stops (client-node ListWatch)", async () => {
    h.sim.faults.failNext(1, { watch: true, code: 500 });
    const informer = makeInformer(h.kc, "/api/v1/namespaces/default/configmaps", () =>
      core.listNamespacedConfigMap({ namespace: "default" }),
    );
    const errors: unknown[] = [];
    const gotError = new Promise<void>((resolve) =>
      informer.on(ERROR, (err) => {
        errors.push(err);
        resolve();
      }),
    );
    await informer.start();
    await gotError;
    await informer.stop();
    assert.equal((errors[0] as { statusCode?: number }).statusCode, 500);
  });

  it("closes all watches: streams end and informers resume from their resourceVersion", async () => {
    const informer = makeInformer(h.kc, "/api/v1/namespaces/default/configmaps", () =>
      core.listNamespacedConfigMap({ namespace: "default" }),
    );
    const added: string[] = [];
    let notify = () => {};
    informer.on(ADD, (o: KubernetesObject) => {
      added.push(o.metadata?.name ?? "");
      notify();
    });
    const waitFor = async (name: string) => {
      while (!added.includes(name)) await new Promise<void>((r) => (notify = r));
    };
    await informer.start();
    h.sim.create(cm("before"));
    await waitFor("before");

    let resolveEnded: (err: unknown) => void = () => {};
    const ended = new Promise<unknown>((resolve) => {
      resolveEnded = resolve;
    });
    await new Watch(h.kc).watch(
      "/api/v1/namespaces/default/configmaps",
      { resourceVersion: h.sim.resourceVersion() },
      () => {},
      (err) => resolveEnded(err),
    );
    assert.equal(h.sim.faults.closeWatches(), 2, "the informer's watch and the raw one");
    assert.equal(await ended, null, "a raw watch sees the stream end without error");
    h.sim.create(cm("after"));
    await waitFor("after");
    await informer.stop();
    assert.deepEqual(added, ["before", "after"]);
  });

  it("pauses requests until resumed", async () => {
    h.sim.faults.pause();
    const pending = core.listNamespacedConfigMap({ namespace: "default" });
    await heldRequests(h, 1);
    // Written in process while the HTTP request is held: the held list sees it once resumed.
    h.sim.create(cm("while-paused"));
    h.sim.faults.resume();
    const list = await pending;
    assert.deepEqual(
      list.items.map((i) => i.metadata?.name),
      ["while-paused"],
    );
  });

  it("adds latency: a request sent under latency is answered after a later one sent without", async () => {
    const order: string[] = [];
    h.sim.faults.setLatency(300);
    const slow = core.listNamespace().then(() => order.push("slow"));
    await heldRequests(h, 1);
    h.sim.faults.setLatency(0);
    await core.listNamespace().then(() => order.push("fast"));
    await slow;
    assert.deepEqual(order, ["fast", "slow"]);
  });

  it("compacts history: the next watch from an old resourceVersion gets 410 Expired", async () => {
    const old = h.sim.resourceVersion();
    h.sim.create(cm("x"));
    h.sim.faults.compact();
    const events: { type: string; object: { code?: number; reason?: string } }[] = [];
    const done = new Promise<unknown>((resolve) => {
      void new Watch(h.kc).watch(
        "/api/v1/namespaces/default/configmaps",
        { resourceVersion: old },
        (type, object) => events.push({ type, object }),
        resolve,
      );
    });
    assert.equal(await done, null);
    assert.deepEqual(
      events.map((e) => [e.type, e.object.code, e.object.reason]),
      [["ERROR", 410, "Expired"]],
    );
  });

  it("serves the same controls over HTTP under /kubesim/faults", async () => {
    assert.deepEqual(
      await admin(h, "POST", "/fail", { count: 1, code: 503, retryAfterSeconds: 2 }),
      { ok: true },
    );
    assert.deepEqual(await admin(h, "GET", ""), {
      failures: [{ remaining: 1, code: 503, retryAfterSeconds: 2, match: {} }],
      latencyMs: 0,
      paused: false,
      waiting: 0,
    });
    const f = await failure(core.listNamespace());
    assert.equal(f.code, 503);
    assert.equal(f.body.reason, "ServiceUnavailable");

    await admin(h, "POST", "/latency", { ms: 5 });
    assert.equal(h.sim.faults.state().latencyMs, 5);
    await admin(h, "DELETE", "");
    assert.equal(h.sim.faults.state().latencyMs, 0);

    const rv = h.sim.resourceVersion();
    h.sim.create(cm("y"));
    assert.deepEqual(await admin(h, "POST", "/compact"), {
      ok: true,
      resourceVersion: h.sim.resourceVersion(),
    });
    const expired = await fetch(
      `${h.sim.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}`,
    );
    const line = JSON.parse((await expired.text()).trim()) as {
      type: string;
      object: { code: number };
    };
    assert.deepEqual([line.type, line.object.code], ["ERROR", 410]);

    await admin(h, "POST", "/pause");
    const held = core.listNamespacedConfigMap({ namespace: "default" });
    await heldRequests(h, 1);
    assert.equal(h.sim.faults.state().paused, true);
    await admin(h, "POST", "/resume");
    assert.deepEqual(
      (await held).items.map((i) => i.metadata?.name),
      ["y"],
    );
    assert.deepEqual(await admin(h, "POST", "/close-watches"), { ok: true, closed: 0 });
  });
});
