// The registry follows its store: writes of another writer reach it through the watch, its
// own writes are applied once (when the txn resolves or when the watch brings them, whichever
// is first), and a watch that ends (compacted history) makes it read the store again.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toJson } from "@bufbuild/protobuf";
import {
  openFileStore,
  openRegistry,
  type RegistryChange,
  type Store,
  type StoreBatch,
  StoreError,
} from "@isthmus/hub";
import { Action, type ConnectionPolicy, ConnectionPolicySchema } from "@isthmus/proto";
import { eventually } from "../helpers/eventually.js";

const policy = (name: string, priority = 100): ConnectionPolicy =>
  create(ConnectionPolicySchema, {
    name,
    priority,
    action: Action.ALLOW,
    from: [{ namespaces: ["web"] }],
    to: [{ namespaces: ["payments"] }],
  });
const stored = (p: ConnectionPolicy) => toJson(ConnectionPolicySchema, p);

/** `inner` with every watch batch held back `delayMs`, and the first watch ended (as after a
 * compaction) when `endFirstWatch`. */
function slowWatch(inner: Store, delayMs: number, endFirstWatch = false): Store {
  let watches = 0;
  return {
    ...inner,
    location: inner.location,
    watch(prefix, from, onBatch, onError) {
      if (endFirstWatch && watches++ === 0) {
        setTimeout(() => onError(new StoreError("test: compacted", "compacted")), delayMs);
        return { cancel: async () => {} };
      }
      return inner.watch(
        prefix,
        from,
        (b: StoreBatch) => setTimeout(() => onBatch(b), delayMs),
        onError,
      );
    },
  };
}

describe("registry following its store", () => {
  let dir: string;
  let inner: Store;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "isthmus-registry-"));
    inner = await openFileStore(dir, { create: true });
  });
  afterEach(async () => {
    await inner.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("applies its own write once, before a slow watch brings it", async () => {
    const registry = await openRegistry(slowWatch(inner, 50));
    const changes: RegistryChange[] = [];
    registry.follow((c) => changes.push(c));
    await registry.writePolicies([policy("p1")], [], new Map());
    assert.equal(changes.length, 1, "applied when the txn resolved");
    assert.equal(registry.policies.get("p1")?.priority, 100);
    // Another writer's change to the same key, then the watch brings both writes.
    const theirs = await inner.txn([
      { op: "put", key: "policies/p1", value: stored(policy("p1", 7)) },
    ]);
    await eventually(() =>
      assert.equal(registry.policies.get("p1")?.resourceVersion, String(theirs)),
    );
    assert.equal(registry.policies.get("p1")?.priority, 7);
    assert.equal(changes.length, 2, "the own write was not applied a second time");
    await registry.close();
  });

  it("reads the store again when its watch ends, applying what changed meanwhile", async () => {
    await inner.txn([
      { op: "put", key: "policies/keep", value: stored(policy("keep")) },
      { op: "put", key: "policies/gone", value: stored(policy("gone")) },
    ]);
    const registry = await openRegistry(slowWatch(inner, 20, true));
    const changes: RegistryChange[] = [];
    registry.follow((c) => changes.push(c));
    await inner.txn([
      { op: "delete", key: "policies/gone" },
      { op: "put", key: "policies/new", value: stored(policy("new")) },
    ]);
    await eventually(
      () => assert.deepEqual([...registry.policies.keys()].sort(), ["keep", "new"]),
      5000,
    );
    assert.deepEqual(changes, [{ policies: true, clusters: [] }]);
    // Following again: a later write arrives through the new watch.
    await inner.txn([{ op: "put", key: "policies/later", value: stored(policy("later")) }]);
    await eventually(() => assert.ok(registry.policies.has("later")));
    await registry.close();
  });

  it("skips an entry another writer damaged, keeping the rest", async () => {
    const registry = await openRegistry(inner);
    registry.follow(() => {});
    await inner.txn([
      { op: "put", key: "policies/bad", value: { name: "other" } },
      { op: "put", key: "policies/ok", value: stored(policy("ok")) },
    ]);
    assert.deepEqual([...registry.policies.keys()], ["ok"]);
    await registry.close();
  });
});
