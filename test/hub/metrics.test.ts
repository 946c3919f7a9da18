// The hub's histograms tested by their values: a convergence of known length, measured on a
// manual clock, lands in the buckets, sum and count the exposition format shows.
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createDistributor, createHubMetrics } from "@isthmus/hub";
import { silentLogger } from "@isthmus/logging";
import { type Intent, IntentSchema } from "@isthmus/proto";
import { manualClock } from "../helpers/manual-clock.js";

/** The sample lines of one metric family in the text format: `name{labels}` -> value. */
async function samples(
  metrics: ReturnType<typeof createHubMetrics>,
  family: string,
): Promise<Map<string, number>> {
  const text = await metrics.registry.getSingleMetricAsString(family);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m !== null && !line.startsWith("#")) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe("hub metrics by value", () => {
  it("observes each convergence, from the change's origin to the last ACK, in its bucket", async () => {
    const metrics = createHubMetrics({ defaultMetrics: false });
    const { state, now, setTimer, clearTimer, advance } = manualClock(10_000);
    const desired = new Map<string, Intent>();
    const d = createDistributor({
      debounce: { windowMs: 100, maxMs: 250 },
      desired: () => desired,
      systemVersion: () => "1",
      removalsAllowed: () => true,
      logger: silentLogger,
      metrics: {
        deltaSent: () => {},
        debounced: () => {},
        pushed: () => {},
        nack: () => {},
        converged: (s) => metrics.convergence.observe(s),
      },
      now,
      setTimer,
      clearTimer,
    });
    const nonces: string[] = [];
    d.open("c1", { send: async (delta) => void nonces.push(delta.nonce ?? "") }, new Map());
    const ack = () => assert.ok(d.ack("c1", nonces.at(-1)!));
    ack();

    // A change that happened in its cluster 1.6 s before the hub delivered it and the ACK came.
    advance(1_000);
    desired.set("a", create(IntentSchema, { name: "a", version: "1" }));
    d.changed(["c1"], [state.t - 600], () => ["a"]);
    advance(1_000); // sent on the next tick, ACKed 1 s later
    ack();
    // And one of 40 ms: origin 30 ms ago, ACK 10 ms after it was sent.
    advance(5_000);
    desired.set("a", create(IntentSchema, { name: "a", version: "2" }));
    d.changed(["c1"], [state.t - 30], () => ["a"]);
    advance(10);
    ack();

    const family = "isthmus_hub_convergence_seconds";
    const s = await samples(metrics, family);
    const bucket = (le: string) => s.get(`${family}_bucket{le="${le}"}`);
    assert.equal(bucket("0.025"), 0);
    assert.equal(bucket("0.05"), 1, "40 ms");
    assert.equal(bucket("1"), 1);
    assert.equal(bucket("2.5"), 2, "1.6 s");
    assert.equal(bucket("+Inf"), 2);
    assert.equal(s.get(`${family}_count`), 2);
    assert.ok(Math.abs(s.get(`${family}_sum`)! - 1.64) < 1e-9, `sum ${s.get(`${family}_sum`)}`);
  });
});
