// The admin API's policy batch: no-op writes skipped, prune by label selector in the same
// transaction as the writes (all or nothing), and ExplainBatch's argument checks.
import assert from "node:assert/strict";
import { Action, Code, GrpcError } from "@isthmus/proto";
import { admin, type HubFixture, startHub } from "../helpers/hub-fixture.js";

const policy = (name: string, labels: Record<string, string>, resourceVersion = "") => ({
  name,
  priority: 10,
  action: Action.DENY,
  labels,
  resourceVersion,
  from: [{ namespaces: ["web"] }],
  to: [{ namespaces: [name] }],
});

function rejectsWith(code: Code, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GrpcError, `expected GrpcError, got ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe("hub policy batches", function () {
  this.timeout(60_000);
  let f: HubFixture;
  before(async () => {
    f = await startHub();
  });
  after(async () => {
    await f.close();
  });

  it("prunes what the selector matches and the batch lacks, atomically with the writes", async () => {
    const team = { team: "x" };
    await f.admin.applyPolicies(
      { policies: [policy("a", team), policy("b", team), policy("c", {})] },
      admin,
    );
    const versions = async () =>
      Object.fromEntries(
        (await f.admin.listPolicies({}, admin)).policies.map((p) => [p.name, p.resourceVersion]),
      );
    const before = await versions();

    // A stale version in the batch: nothing is written, nothing pruned.
    await assert.rejects(
      f.admin.applyPolicies(
        { policies: [policy("a", team, "999"), policy("d", team)], pruneSelector: "team=x" },
        admin,
      ),
      rejectsWith(Code.ABORTED, /policy "a": resource_version 999 is stale/),
    );
    assert.deepEqual(await versions(), before);

    const dry = await f.admin.applyPolicies(
      { policies: [policy("a", team)], pruneSelector: "team=x", dryRun: true },
      admin,
    );
    assert.deepEqual(dry.pruned, ["b"]);
    assert.deepEqual(dry.unchanged, ["a"]);
    assert.deepEqual(await versions(), before);

    const res = await f.admin.applyPolicies(
      { policies: [policy("a", team)], pruneSelector: "team in (x)" },
      admin,
    );
    assert.deepEqual(res.pruned, ["b"]);
    assert.deepEqual(res.unchanged, ["a"]);
    assert.deepEqual(await versions(), { a: before.a, c: before.c });

    // Only a prune: every stored policy the selector matches goes.
    const all = await f.admin.applyPolicies({ policies: [], pruneSelector: "team" }, admin);
    assert.deepEqual(all.pruned, ["a"]);
    assert.deepEqual(Object.keys(await versions()), ["c"]);
  });

  it("names every problem of every policy of a batch, one line each", async () => {
    // Problems protovalidate leaves to the policy checks (names, globs, selectors).
    const bad = { ...policy("bad", {}), from: [{ namespaces: ["Web"] }, {}] };
    const worse = { ...policy("worse", {}), to: [{ clusters: ["a{b"] }] };
    await assert.rejects(
      f.admin.applyPolicies({ policies: [bad, worse] }, admin),
      (err: unknown) => {
        assert.ok(err instanceof GrpcError);
        assert.equal(err.code, Code.INVALID_ARGUMENT);
        assert.deepEqual(err.message.split("\n"), [
          'invalid policy "bad": from[0].namespaces[0]: "Web" is neither a DNS-1123 label nor a glob',
          'invalid policy "bad": from[1]: empty selector; to select every source write clusters: ["*"]',
          'invalid policy "worse": to[0].clusters[0]: invalid glob "a{b": unclosed "{"',
        ]);
        return true;
      },
    );
  });

  it("refuses an empty batch, a bad selector and half a matrix", async () => {
    await assert.rejects(
      f.admin.applyPolicies({ policies: [] }, admin),
      rejectsWith(Code.INVALID_ARGUMENT, /at least one policy is required/),
    );
    await assert.rejects(
      f.admin.applyPolicies({ policies: [policy("z", {})], pruneSelector: "a in b" }, admin),
      rejectsWith(Code.INVALID_ARGUMENT, /invalid label selector "a in b"/),
    );
    await assert.rejects(
      f.admin.explainBatch(
        { fromSelector: { clusterId: "*", namespace: "*", serviceAccount: "*" } },
        admin,
      ),
      rejectsWith(Code.INVALID_ARGUMENT, /from_selector and to_selector go together/),
    );
    const empty = await f.admin.explainBatch(
      {
        fromSelector: { clusterId: "*", namespace: "*", serviceAccount: "*" },
        toSelector: { namespace: "*", service: "*" },
      },
      admin,
    );
    assert.deepEqual(empty.results, []);
  });
});
