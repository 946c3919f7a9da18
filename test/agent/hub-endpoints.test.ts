import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { createHubEndpoints, REDIRECT_WINDOW_MS } from "@isthmus/agent";
import { Code, GrpcError, LEADER_HINT } from "@isthmus/proto";

/** A follower's refusal naming `leader` ("" for none). */
function refusal(leader: string): GrpcError {
  const metadata = new Metadata();
  metadata.set(LEADER_HINT, leader);
  return new GrpcError(Code.UNAVAILABLE, "this hub replica does not lead", { metadata });
}

const dropped = new GrpcError(Code.UNAVAILABLE, "Connection dropped");
const refused = new GrpcError(Code.UNAVAILABLE, "No connection established");

function endpoints(addresses: string) {
  let t = 0;
  const e = createHubEndpoints({ addresses, random: () => 0.5, nowMs: () => t });
  return { e, advance: (ms: number) => (t += ms) };
}

describe("agent: hub endpoints (reconnection rules)", () => {
  it("redials a lone address with backoff that grows, and resets after a welcome", () => {
    const { e } = endpoints("hub:443");
    assert.equal(e.target(), "hub:443");
    const first = e.ended(true, dropped);
    assert.deepEqual([first.redirect, first.attempt], [false, 0]);
    assert.equal(e.target(), "hub:443");
    const waits = [1, 2, 3].map(() => {
      e.target();
      return e.ended(false, refused);
    });
    assert.deepEqual(
      waits.map((w) => [w.redirect, w.attempt]),
      [
        [false, 1],
        [false, 2],
        [false, 3],
      ],
    );
    assert.ok(waits[2]!.waitMs > waits[0]!.waitMs);
    e.target();
    assert.equal(e.ended(true, dropped).attempt, 0);
  });

  it("moves to the next replica at once when the leader's stream drops", () => {
    const { e } = endpoints("a:1,b:1,c:1");
    assert.equal(e.target(), "a:1");
    const next = e.ended(true, dropped);
    assert.equal(next.redirect, true);
    assert.ok(next.waitMs < 100);
    assert.equal(e.target(), "b:1");
  });

  it("follows a follower's hint, and not again once the hinted leader did not answer", () => {
    const { e, advance } = endpoints("a:1,b:1,c:1");
    e.target();
    e.ended(true, dropped);
    assert.equal(e.target(), "b:1");
    const hinted = e.ended(false, refusal("a:1"));
    assert.deepEqual([hinted.redirect, hinted.hint], [true, "a:1"]);
    assert.equal(e.target(), "a:1");
    // The hinted leader is dead: back to the configured list, where b:1 was.
    assert.equal(e.ended(false, refused).redirect, true);
    assert.equal(e.target(), "b:1");
    advance(300);
    // b:1 names the dead leader again: skipped, on to c:1.
    assert.equal(e.ended(false, refusal("a:1")).redirect, true);
    assert.equal(e.target(), "c:1");
    // c:1 names the new leader: followed.
    e.ended(false, refusal("b:1"));
    assert.equal(e.target(), "b:1");
  });

  it("keeps short waits through a redirect run, then backs off after the window", () => {
    const { e, advance } = endpoints("a:1,b:1,c:1");
    e.target();
    e.ended(true, dropped);
    for (let i = 0; i < 10; i++) {
      e.target();
      const next = e.ended(false, i % 2 === 0 ? refused : refusal(""));
      assert.equal(next.redirect, true, `failure ${i}`);
      assert.equal(next.attempt, 0);
      assert.ok(next.waitMs <= 400);
      advance(300);
    }
    advance(REDIRECT_WINDOW_MS);
    e.target();
    const later = e.ended(false, refused);
    assert.deepEqual([later.redirect, later.attempt], [false, 1]);
  });

  it("refuses an empty address list", () => {
    assert.throws(
      () => createHubEndpoints({ addresses: " , ", random: Math.random, nowMs: Date.now }),
      /no address given/,
    );
  });
});
