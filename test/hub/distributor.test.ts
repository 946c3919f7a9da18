import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createDistributor } from "@isthmus/hub";
import { silentLogger } from "@isthmus/logging";
import { type Intent, IntentSchema } from "@isthmus/proto";
import { manualClock } from "../helpers/manual-clock.js";

/** A distributor on a manual clock with one cluster "c1" whose desired set the test edits. */
function setup(debounce = { windowMs: 100, maxMs: 250 }, maxIntentsPerDelta?: number) {
  const { state, now, setTimer, clearTimer, advance } = manualClock(1_000);
  const desired = new Map<string, Intent>();
  const sent: {
    at: number;
    nonce: string;
    upserted: string[];
    removed: string[];
    complete: boolean;
  }[] = [];
  const converged: number[] = [];
  const d = createDistributor({
    debounce,
    desired: () => desired,
    systemVersion: () => "1",
    removalsAllowed: () => true,
    logger: silentLogger,
    metrics: {
      deltaSent() {},
      debounced() {},
      pushed() {},
      nack() {},
      converged: (seconds) => void converged.push(seconds),
    },
    ...(maxIntentsPerDelta === undefined ? {} : { maxIntentsPerDelta }),
    now,
    setTimer,
    clearTimer,
  });
  const put = (name: string, version: string) =>
    desired.set(name, create(IntentSchema, { name, version }));
  const sender = {
    async send(delta: {
      nonce?: string;
      upserted?: { name?: string }[];
      removed?: string[];
      complete?: boolean;
    }) {
      sent.push({
        at: state.t,
        nonce: delta.nonce ?? "",
        upserted: (delta.upserted ?? []).map((i) => i.name ?? ""),
        removed: delta.removed ?? [],
        complete: delta.complete ?? false,
      });
    },
  };
  const ackLast = () => assert.ok(d.ack("c1", sent.at(-1)!.nonce));
  const times = () => sent.map((s) => s.at);
  return { d, state, advance, put, desired, sender, sent, ackLast, times, converged };
}

describe("hub distributor: debounce", () => {
  it("sends a change to an idle cluster on the next tick, with the changes of the same tick", () => {
    const { d, advance, put, sender, sent, ackLast, times } = setup();
    d.open("c1", sender, new Map());
    assert.equal(sent.length, 1, "the first complete delta goes out at once");
    ackLast();
    advance(500);
    put("a", "1");
    d.changed(["c1"]);
    put("b", "1");
    d.changed(["c1"]);
    assert.equal(sent.length, 1, "not synchronously");
    advance(0);
    assert.deepEqual(times(), [1000, 1500], "no window to wait for");
    assert.deepEqual(sent[1]!.upserted, ["a", "b"]);
    assert.equal(d.view("c1").inSync, false, "in flight");
    ackLast();
    assert.equal(d.view("c1").inSync, true);
  });

  it("gathers a burst: after a recent delta, waits windowMs of quiet, at most maxMs", () => {
    const { d, advance, put, sender, ackLast, times } = setup();
    d.open("c1", sender, new Map());
    ackLast(); // sent at 1000
    advance(50);
    put("a", "1");
    d.changed(["c1"]); // 50 ms after the last delta: a burst
    advance(0);
    assert.deepEqual(times(), [1000], "waits for the window");
    advance(60);
    put("b", "1");
    d.changed(["c1"]); // the quiet window restarts
    advance(99);
    assert.deepEqual(times(), [1000]);
    advance(1);
    assert.deepEqual(times(), [1000, 1210]);
    ackLast();
    // A steady stream within the window still goes out maxMs after its first change.
    for (let i = 0; i < 6; i++) {
      put("c", String(i));
      d.changed(["c1"]); // at 1210, 1270, ..., 1510
      advance(60);
    }
    assert.deepEqual(times(), [1000, 1210, 1460]);
  });

  it("sends changes made while a delta is in flight as soon as it is ACKed", () => {
    const { d, advance, put, sender, sent, ackLast, times } = setup();
    d.open("c1", sender, new Map());
    put("a", "1");
    d.changed(["c1"]);
    advance(30);
    put("b", "1");
    d.changed(["c1"]);
    assert.equal(sent.length, 1, "one delta in flight");
    ackLast();
    assert.deepEqual(times(), [1000, 1030], "on the ACK, no debounce");
    assert.deepEqual(sent[1]!.upserted, ["a", "b"]);
  });
});

describe("hub distributor: what is compared", () => {
  it("compares only the intents a change names, and everything when none are named", () => {
    const { d, advance, put, sender, sent, ackLast } = setup();
    put("a", "1");
    put("b", "1");
    d.open("c1", sender, new Map([["gone", "1"]]));
    assert.deepEqual(sent[0]!.upserted, ["a", "b"], "a new session compares the whole set");
    ackLast();
    advance(500);
    put("a", "2");
    put("c", "1");
    d.changed(["c1"], [], () => ["a"]);
    advance(0);
    assert.deepEqual(sent[1]!.upserted, ["a"], "only the named intent");
    ackLast();
    advance(500);
    d.changed(["c1"]);
    advance(0);
    assert.deepEqual(sent[2]!.upserted, ["c"], "unnamed: the whole set again");
  });
});

describe("hub distributor: large changes", () => {
  it("sends a change larger than a delta in chunks, the next on each ACK, complete only at the end", () => {
    const { d, advance, put, sender, sent, ackLast, converged } = setup(undefined, 2);
    for (const n of ["a", "b", "c", "d", "e"]) put(n, "1");
    d.open("c1", sender, new Map());
    assert.deepEqual(
      sent.map((x) => [x.upserted, x.complete]),
      [[["a", "b"], false]],
    );
    ackLast();
    ackLast();
    assert.deepEqual(
      sent.map((x) => [x.upserted, x.complete]),
      [
        [["a", "b"], false],
        [["c", "d"], false],
        [["e"], true],
      ],
    );
    ackLast();
    assert.equal(d.view("c1").inSync, true);

    // A change that reaches the cluster in two deltas converges at the second ACK.
    advance(500);
    for (const n of ["a", "b", "c"]) put(n, "2");
    d.changed(["c1"], [1_000], () => ["a", "b", "c"]);
    advance(0);
    ackLast();
    assert.deepEqual(converged, [], "not at the first chunk");
    ackLast();
    assert.equal(converged.length, 1);
    assert.deepEqual(
      sent.slice(3).map((x) => x.upserted),
      [["a", "b"], ["c"]],
    );
  });
});

describe("hub distributor: the record of what an agent holds", () => {
  const error = (intentName: string, message: string) => ({
    intentName,
    object: `ServiceEntry payments/${intentName.replaceAll("/", "-")}`,
    message,
  });

  it("keeps a NACKed intent refused, with its reason, until the agent reports it applied", () => {
    const { d, advance, put, desired, sender, sent, ackLast } = setup();
    put("import/a", "1");
    put("access/b", "1");
    d.open("c1", sender, new Map());
    assert.ok(d.nack("c1", sent[0]!.nonce, [error("import/a", 'namespaces "payments" not found')]));
    let view = d.view("c1");
    assert.equal(view.inSync, false, "a refused intent is not in sync");
    assert.deepEqual(
      view.refused.map((e) => [e.intentName, e.message]),
      [["import/a", 'namespaces "payments" not found']],
    );
    advance(500);
    d.changed(["c1"]);
    advance(0);
    assert.equal(sent.length, 1, "not resent at the same version");

    d.report("c1", { "import/a": "1" }, []);
    advance(0);
    view = d.view("c1");
    assert.deepEqual(view.refused, []);
    assert.equal(view.inSync, true);
    assert.equal(sent.length, 1, "nothing to send: the agent holds the desired version");

    // Held now: when it leaves the desired set (a DENY), it is removed.
    advance(500);
    desired.delete("import/a");
    d.changed(["c1"]);
    advance(0);
    assert.deepEqual(sent[1]!.removed, ["import/a"]);
    ackLast();
    assert.equal(d.view("c1").inSync, true);
  });

  it("removes a refused intent that leaves the desired set, reported or not", () => {
    const { d, advance, put, desired, sender, sent, ackLast } = setup();
    put("import/a", "1");
    d.open("c1", sender, new Map());
    d.nack("c1", sent[0]!.nonce, [error("import/a", "conflict")]);
    advance(500);
    desired.delete("import/a");
    d.changed(["c1"], [], () => ["import/a"]);
    advance(0);
    assert.deepEqual(sent[1]!.removed, ["import/a"], "the agent may hold a part of it");
    assert.equal(d.view("c1").inSync, false, "in flight");
    ackLast();
    assert.deepEqual(d.view("c1").refused, []);
    assert.equal(d.view("c1").inSync, true);

    // Reported applied at version 2 after a NACK of version 2, then dropped by a full compare.
    put("import/a", "2");
    advance(500);
    d.changed(["c1"]);
    advance(0);
    d.nack("c1", sent[2]!.nonce, [error("import/a", "conflict")]);
    d.report("c1", { "import/a": "2" }, []);
    desired.delete("import/a");
    advance(500);
    d.changed(["c1"]);
    advance(0);
    assert.deepEqual(sent.at(-1)!.removed, ["import/a"]);
  });

  it("takes Hello's failed intents as refused: not resent, not in sync, removed when they go", () => {
    const { d, advance, put, desired, sender, sent, ackLast } = setup();
    put("import/a", "3");
    d.open("c1", sender, new Map(), new Map([["import/a", "3"]]));
    assert.deepEqual(sent[0]!.upserted, [], "the agent retries it itself");
    ackLast();
    assert.equal(d.view("c1").inSync, false);
    assert.match(d.view("c1").refused[0]!.message, /retrying/);
    desired.delete("import/a");
    advance(500);
    d.changed(["c1"]);
    advance(0);
    assert.deepEqual(sent[1]!.removed, ["import/a"]);
    ackLast();
    assert.equal(d.view("c1").inSync, true);
  });

  it("resends a removal the agent refused, and clears it when the agent reports it done", () => {
    const { d, advance, put, desired, sender, sent, ackLast } = setup();
    put("export/a", "1");
    d.open("c1", sender, new Map());
    ackLast();
    desired.delete("export/a");
    advance(500);
    d.changed(["c1"]);
    advance(0);
    d.nack("c1", sent[1]!.nonce, [error("export/a", "503 service unavailable")]);
    assert.equal(d.view("c1").inSync, false, "a refused removal is not in sync");
    d.report("c1", {}, ["export/a"]);
    advance(200);
    assert.deepEqual(d.view("c1").refused, []);
    assert.equal(d.view("c1").inSync, true);
    assert.equal(sent.length, 2, "nothing left to send");
  });

  it("keeps the last drift repairs an agent reported, newest first, and their count", () => {
    const { d, sender } = setup();
    d.open("c1", sender, new Map());
    const repair = (n: number) =>
      ({
        intentName: "access/x",
        object: `AuthorizationPolicy web/p${n}`,
        change: "changed",
      }) as Parameters<typeof d.driftRepaired>[1][number];
    d.driftRepaired("c1", [repair(1), repair(2)]);
    d.driftRepaired(
      "c1",
      Array.from({ length: 12 }, (_, i) => repair(i + 3)),
    );
    const view = d.view("c1");
    assert.equal(view.driftRepairCount, 14);
    assert.equal(view.driftRepairs.length, 10);
    assert.equal(view.driftRepairs[0]!.object, "AuthorizationPolicy web/p14");
  });
});
