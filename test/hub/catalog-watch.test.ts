// Catalog watchers that stop reading (issue 17, finding 2): what they hold at the hub stays
// within the catalog's size, however many changes happen; one that falls too far behind or
// reads nothing for too long is ended with the reason; a watcher that reads gets the last
// state of every entry.
import assert from "node:assert/strict";
import { defaultHubConfig, type HubConfig } from "@isthmus/hub";
import {
  CatalogEventType,
  Code,
  GrpcError,
  Visibility,
  type WatchCatalogResponse,
} from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";
import {
  enrollAgent,
  type HubFixture,
  startHub,
  type TestAgent,
  viewer,
} from "../helpers/hub-fixture.js";

/** Waits for state, not for a time: 60 s lets a machine loaded by other runs catch up. */
const eventuallyLong = <T>(check: () => Promise<T> | T) => eventually(check, 60_000);

const service = (i: number, ready: number) => ({
  namespace: "shop",
  name: `svc-${i}`,
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  selector: { app: `svc-${i}` },
  visibility: Visibility.PRIVATE,
  readyEndpoints: ready,
  serviceAccounts: [`sa-${i}`],
  inMesh: true,
});
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

async function join(agent: TestAgent, services: object[]): Promise<void> {
  await agent.connect();
  assert.equal((await agent.next()).message.case, "welcome");
  await agent.ackDelta(await agent.nextDelta());
  await update(agent, 1n, services, true);
}

function update(agent: TestAgent, revision: bigint, services: object[], fullSnapshot = false) {
  return agent.send({
    message: {
      case: "catalogUpdate",
      value: { fullSnapshot, revision, upsertedServices: services, upsertedIdentities: [] },
    },
  });
}

async function gauge(f: HubFixture, name: "watchers" | "watchPending"): Promise<number> {
  return (await f.hub.context.metrics[name].get()).values[0]?.value ?? 0;
}

async function cutoffs(f: HubFixture, reason: string): Promise<number> {
  const metric = await f.hub.context.metrics.watchCutoffs.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

/** A watch that is started and never read (until the test reads it to its end). */
function slowWatcher(f: HubFixture) {
  return f.admin.watchCatalog({}, viewer)[Symbol.asyncIterator]();
}

/** Reads a watch to its end; resolves with the events' last ready counts and its error. */
async function drain(it: AsyncIterator<WatchCatalogResponse>) {
  const ready = new Map<string, number>();
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) return { ready, error: undefined };
      if (r.value.type === CatalogEventType.UPSERTED)
        ready.set(r.value.service!.service!.name, r.value.service!.service!.readyEndpoints);
    }
  } catch (err) {
    return { ready, error: GrpcError.from(err) };
  }
}

function watchConfig(watch: Partial<HubConfig["watch"]>): Partial<HubConfig> {
  return { watch: { ...defaultHubConfig.watch, ...watch } };
}

describe("hub catalog watch limits", function () {
  this.timeout(180_000);
  let f: HubFixture | undefined;
  const agents: TestAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) a.close();
    await f?.close();
    f = undefined;
  });

  it("keeps a slow watcher's backlog within the catalog while a fast one gets every last state", async () => {
    f = await startHub(watchConfig({ stallSeconds: 0 }));
    const fixture = f;
    const agent = await enrollAgent(f, "a");
    agents.push(agent);
    const size = 1000;
    await join(
      agent,
      range(0, size).map((i) => service(i, 1)),
    );
    await eventuallyLong(() =>
      assert.equal(fixture.hub.context.catalogs.get("a")?.services.size, size),
    );
    const slow = [slowWatcher(f), slowWatcher(f), slowWatcher(f)];
    const fast = new AbortController();
    const seen = new Map<string, number>();
    const reading = (async () => {
      for await (const ev of fixture.admin.watchCatalog({}, { ...viewer, signal: fast.signal }))
        if (ev.type === CatalogEventType.UPSERTED)
          seen.set(ev.service!.service!.name, ev.service!.service!.readyEndpoints);
    })().catch(() => {});
    await eventuallyLong(async () => assert.equal(await gauge(fixture, "watchers"), 4));
    // 10 rounds of a change to every service: 10,000 changes, which a queue of events
    // would hold three times over for the slow watchers.
    const rounds = 10;
    let peak = 0;
    for (let r = 0; r < rounds; r++) {
      await update(
        agent,
        BigInt(r + 2),
        range(0, size).map((i) => service(i, r + 2)),
      );
      peak = Math.max(peak, await gauge(fixture, "watchPending"));
    }
    await eventuallyLong(() => {
      assert.equal(seen.size, size);
      for (const [name, ready] of seen) assert.equal(ready, rounds + 1, name);
    });
    peak = Math.max(peak, await gauge(fixture, "watchPending"));
    // The fast watcher may still resend entries that changed during its snapshot.
    const behind = await eventuallyLong(async () => {
      const pending = await gauge(fixture, "watchPending");
      assert.ok(
        pending <= 3 * size,
        `backlog of the slow watchers ${pending}, at most ${3 * size}`,
      );
      return pending;
    });
    assert.ok(behind > 0, "the slow watchers are behind");
    assert.ok(peak <= 4 * size, `peak backlog ${peak} entries, at most ${4 * size}`);
    // A slow watcher that reads again gets every entry in its current state.
    fast.abort();
    await reading;
    const first = slow[0]!;
    const got = new Map<string, number>();
    while (got.size < size || [...got.values()].some((v) => v !== rounds + 1)) {
      const r = await first.next();
      assert.ok(!r.done, "the watch ended early");
      if (r.value.type === CatalogEventType.UPSERTED)
        got.set(r.value.service!.service!.name, r.value.service!.service!.readyEndpoints);
    }
    for (const it of slow) await it.return?.();
  });

  it("ends a watcher that falls too far behind, with the reason, and drops its backlog", async () => {
    f = await startHub(watchConfig({ maxPendingChanges: 200, stallSeconds: 0 }));
    const fixture = f;
    const agent = await enrollAgent(f, "a");
    agents.push(agent);
    await join(
      agent,
      range(0, 10).map((i) => service(i, 1)),
    );
    const slow = slowWatcher(f);
    await eventuallyLong(async () => assert.equal(await gauge(fixture, "watchers"), 1));
    // 300 new entries in one update: more than the 200 a watcher may have waiting.
    await update(
      agent,
      2n,
      range(10, 310).map((i) => service(i, 1)),
    );
    await eventuallyLong(async () => assert.equal(await cutoffs(fixture, "too-many-pending"), 1));
    assert.equal(await gauge(f, "watchPending"), 0);
    assert.equal(await gauge(f, "watchers"), 0);
    const { error } = await drain(slow);
    assert.equal(error?.codeName, "RESOURCE_EXHAUSTED", error?.message);
    assert.match(
      error!.message,
      /catalog watch ended: \d+ changed entries waited to be sent \(watch\.maxPendingChanges 200\): the watcher reads too slowly; watch again for a fresh snapshot/,
    );
    // A new watch starts from a fresh snapshot.
    const again = await drain(
      f.admin.watchCatalog({}, { ...viewer, timeoutMs: 2000 })[Symbol.asyncIterator](),
    );
    assert.equal(again.ready.size, 310);
    assert.equal(again.error?.code, Code.DEADLINE_EXCEEDED);
  });

  it("ends a watcher that reads nothing while changes wait; a reading one goes on", async () => {
    f = await startHub(watchConfig({ stallSeconds: 1 }));
    const fixture = f;
    const agent = await enrollAgent(f, "a");
    agents.push(agent);
    await join(agent, []);
    const slow = slowWatcher(f);
    const fast = new AbortController();
    let fastEvents = 0;
    const reading = (async () => {
      for await (const _ of fixture.admin.watchCatalog({}, { ...viewer, signal: fast.signal }))
        fastEvents += 1;
    })().catch(() => {});
    await eventuallyLong(async () => assert.equal(await gauge(fixture, "watchers"), 2));
    // More than the stream's windows and buffers hold: the slow watcher's sends block.
    await update(
      agent,
      2n,
      range(0, 3000).map((i) => service(i, 1)),
    );
    await eventuallyLong(async () => assert.equal(await cutoffs(fixture, "stalled"), 1));
    await eventuallyLong(() => assert.equal(fastEvents, 3000));
    assert.equal(await gauge(f, "watchers"), 1);
    const { error } = await drain(slow);
    assert.equal(error?.codeName, "RESOURCE_EXHAUSTED", error?.message);
    assert.match(
      error!.message,
      /the watcher read nothing for 1 s while changes waited \(watch\.stallSeconds\)/,
    );
    fast.abort();
    await reading;
  });
});
