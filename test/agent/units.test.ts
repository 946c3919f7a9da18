import assert from "node:assert/strict";
import {
  backoffDelay,
  type Clock,
  canonicalJson,
  createDebouncer,
  createWorkQueue,
  maskPodAddresses,
  renewalDue,
  runAgent,
} from "@isthmus/agent";
import { silentLogger } from "@isthmus/logging";
import { manualClock } from "../helpers/manual-clock.js";

describe("agent building blocks", () => {
  it("writes canonical JSON: keys sorted by UTF-16 code units at every level, undefined left out", () => {
    // Sorted as JSON.stringify of a copy built in Array.prototype.sort's order would be.
    const sortedCopy = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sortedCopy)
        : typeof v === "object" && v !== null
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, sortedCopy((v as Record<string, unknown>)[k])]),
            )
          : v;
    const few = { b: 1, a: [1, { d: 2, c: undefined, é: 3, Z: 4 }], "a-b": null, "": "x" };
    // More keys than sorted by insertion, in a shuffled order.
    const many = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`k${(i * 17) % 40}`, { y: i, x: [i] }]),
    );
    for (const v of [few, many, [few, many], "s", 1, null]) {
      assert.equal(canonicalJson(v), JSON.stringify(sortedCopy(v)));
    }
    assert.equal(canonicalJson({ b: 1, a: 2 }), '{"a":2,"b":1}');
  });

  it("backs off exponentially with full jitter, bounded", () => {
    const at = (attempt: number, r: number) => backoffDelay(attempt, 500, 30_000, () => r);
    assert.equal(at(0, 0.999), 499);
    assert.equal(at(3, 0.999), 3996);
    assert.equal(at(20, 0.999), 29_970, "capped at the maximum");
    assert.equal(at(5, 0), 250, "never below half the initial delay");
  });

  it("renews after two thirds of the certificate lifetime", () => {
    const issuedAt = new Date("2026-01-01T00:00:00Z");
    const notAfter = new Date("2026-01-02T00:00:00Z");
    assert.equal(
      renewalDue({ issuedAt, notAfter, keyPem: "", certChainPem: "", caPem: "" }).toISOString(),
      "2026-01-01T16:00:00.000Z",
    );
  });

  it("processes a key once at a time and again when it is added while running", async () => {
    const runs: string[] = [];
    let release: (() => void) | undefined;
    const q = createWorkQueue<number>(async (key) => {
      runs.push(key);
      if (runs.length === 1) await new Promise<void>((r) => (release = r));
      return runs.length;
    });
    const first = q.enqueue("a");
    await new Promise((r) => setImmediate(r));
    const second = q.enqueue("a"); // while "a" runs: one more run afterwards
    const third = q.enqueue("a"); // coalesced with the second
    release!();
    assert.equal(await first, 1);
    assert.equal(await second, 2);
    assert.equal(await third, 2);
    await q.idle();
    assert.deepEqual(runs, ["a", "a"]);
  });

  /** The shared manual clock, as the agent's `Clock`. */
  function manualAgentClock() {
    const c = manualClock();
    const clock: Clock = { now: c.now, setTimeout: c.setTimer, clearTimeout: c.clearTimer };
    return { ...c, clock };
  }

  it("debounces catalog changes: a lone change goes out on the next tick, bursts wait for quiet", () => {
    const { clock, advance, state } = manualAgentClock();
    const fired: number[] = [];
    const d = createDebouncer(() => fired.push(state.t), { windowMs: 100, maxMs: 250, clock });
    // Idle: the first change runs on the next tick, with the changes of the same tick.
    d.trigger();
    d.trigger();
    assert.deepEqual(fired, [], "not synchronously");
    advance(0);
    assert.deepEqual(fired, [0]);
    // Within windowMs of that run: a burst, so wait for windowMs of quiet.
    advance(50);
    d.trigger();
    advance(50);
    d.trigger(); // the quiet window restarts
    advance(99);
    assert.deepEqual(fired, [0]);
    advance(1);
    assert.deepEqual(fired, [0, 200]);
    // A steady stream of changes still goes out at most maxMs after the first of a burst.
    for (let i = 0; i < 10; i++) {
      d.trigger(); // at 200, 260, ..., 740
      advance(60);
    }
    assert.deepEqual(fired, [0, 200, 450, 750]);
    // Quiet for windowMs since the last run: idle again.
    advance(200);
    d.trigger();
    advance(0);
    assert.deepEqual(fired, [0, 200, 450, 750, 1000]);
    d.trigger();
    d.cancel();
    advance(1000);
    assert.deepEqual(fired, [0, 200, 450, 750, 1000], "cancelled");
  });

  it("debounces with the real clock: an idle change runs on the next turn of the event loop", async () => {
    let runs = 0;
    const d = createDebouncer(() => runs++, { windowMs: 60_000, maxMs: 60_000 });
    d.trigger();
    d.trigger();
    assert.equal(runs, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, 1, "one run for both changes, without waiting for the window");
    d.trigger(); // within the window: waits for quiet
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, 1);
    d.cancel();
  });

  it("runAgent refuses a bad configuration with exit code 2", async () => {
    assert.equal(await runAgent(["--cluster-id", "x"], { env: {}, logger: silentLogger }), 2);
  });

  it("replaces every local pod IP by one stand-in in every object, keeps gateway addresses and drops managedFields", () => {
    const objects = [
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "a", namespace: "n", managedFields: [{ manager: "x" }] },
        status: { podIP: "10.0.0.7", podIPs: [{ ip: "10.0.0.7" }] },
      },
      {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: { name: "s", namespace: "n" },
        endpoints: [{ addresses: ["10.0.0.7"] }],
      },
      {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: "e", namespace: "n" },
        spec: { endpoints: [{ address: "10.0.0.7" }, { address: "192.0.2.9", network: "west" }] },
      },
    ];
    const masked = maskPodAddresses(objects) as unknown as Record<string, never>[];
    const text = JSON.stringify(masked);
    assert.ok(!text.includes("10.0.0.7"), text);
    assert.ok(!text.includes("managedFields"), text);
    assert.deepEqual(JSON.parse(JSON.stringify(masked[0])).status, {
      podIP: "240.0.0.1",
      podIPs: [{ ip: "240.0.0.1" }],
    });
    assert.deepEqual(JSON.parse(JSON.stringify(masked[1])).endpoints, [
      { addresses: ["240.0.0.1"] },
    ]);
    assert.deepEqual(JSON.parse(JSON.stringify(masked[2])).spec.endpoints, [
      { address: "240.0.0.1" },
      { address: "192.0.2.9", network: "west" },
    ]);
    // The input is left as it was.
    assert.equal(objects[0]!.status!.podIP, "10.0.0.7");
  });
});
