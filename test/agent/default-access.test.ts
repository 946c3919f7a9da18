import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  type AccessTargets,
  type ApplyReport,
  type DeltaInput,
  expandDefaultAccess,
  type Reconciler,
  type ReconcilerEvent,
  withDefaultAccess,
} from "@isthmus/agent";
import { DEFAULT_ACCESS_INTENT_NAME, type Intent, IntentSchema } from "@isthmus/proto";

/** A reconciler that records the deltas it gets and holds their intents. */
function recordingReconciler() {
  const deltas: DeltaInput[] = [];
  const held = new Map<string, string>();
  const failed = new Map<string, string>();
  const listeners: ((e: ReconcilerEvent) => void)[] = [];
  let errors: ApplyReport["errors"] = [];
  const inner: Reconciler = {
    adopt() {},
    appliedVersions: () => Object.fromEntries(held),
    failedVersions: () => Object.fromEntries(failed),
    onEvent: (cb) => void listeners.push(cb),
    async applyDelta(delta) {
      deltas.push(delta);
      for (const name of delta.removed) held.delete(name);
      for (const i of delta.upserted) held.set(i.name, i.version);
      return { errors };
    },
    endpointsChanged() {},
    meshChanged() {},
    objectChanged() {},
    retryFailed: () => 0,
    pruning: () => true,
    idle: async () => {},
    stop() {},
  };
  return {
    inner,
    deltas,
    held,
    failed,
    emit: (e: ReconcilerEvent) => {
      for (const cb of listeners) cb(e);
    },
    failWith(next: ApplyReport["errors"]) {
      errors = next;
    },
  };
}

function targetsOf(map: Map<string, Record<string, string>>): AccessTargets {
  return {
    accessTarget: (ns, svc) => map.get(`${ns}/${svc}`),
    accessTargets: () => new Map(map),
  };
}

const defaultIntent = (allowLocalTrustDomain: boolean, version = "d1"): Intent =>
  create(IntentSchema, {
    name: DEFAULT_ACCESS_INTENT_NAME,
    version,
    kind: { case: "defaultAccessIntent", value: { allowLocalTrustDomain } },
  });

const namedAccess = (ns: string, svc: string): Intent =>
  create(IntentSchema, {
    name: `access/${ns}/${svc}`,
    version: `hub-${svc}`,
    kind: {
      case: "accessIntent",
      value: {
        namespace: ns,
        service: svc,
        selector: { app: svc },
        allow: [{ principals: ["other.local/ns/web/sa/frontend"], ports: [] }],
        allowLocalTrustDomain: true,
      },
    },
  });

const names = (intents: readonly Intent[]) => intents.map((i) => i.name).sort();

describe("DefaultAccessIntent expansion", () => {
  it("gives every covered Service no intent names the default's AccessIntent", async () => {
    const r = recordingReconciler();
    const targets = new Map([
      ["shop/cart", { app: "cart" }],
      ["shop/api", { app: "api" }],
    ]);
    const d = withDefaultAccess(r.inner, targetsOf(targets));
    await d.applyDelta({
      upserted: [defaultIntent(true), namedAccess("shop", "api")],
      removed: [],
      complete: true,
    });
    const delta = r.deltas[0]!;
    assert.deepEqual(names(delta.upserted), ["access/shop/api", "access/shop/cart"]);
    const cart = delta.upserted.find((i) => i.name === "access/shop/cart")!;
    assert.equal(cart.kind.case, "accessIntent");
    assert.deepEqual(cart.kind.value, {
      $typeName: "isthmus.v1.AccessIntent",
      namespace: "shop",
      service: "cart",
      selector: { app: "cart" },
      allow: [],
      deny: [],
      allowLocalTrustDomain: true,
    });
    assert.equal(delta.complete, true);
    // What the hub hears: its own intents and the default, never the expanded names.
    assert.deepEqual(d.appliedVersions(), { "access/shop/api": "hub-api", "default-access": "d1" });
    // The pure expansion (tests and benchmarks) gives the same intents.
    assert.deepEqual(
      names(expandDefaultAccess([defaultIntent(true), namedAccess("shop", "api")], targets)),
      names(delta.upserted),
    );
  });

  it("turns the hub's removal of a named service into its default, never a deletion", async () => {
    const r = recordingReconciler();
    const d = withDefaultAccess(r.inner, targetsOf(new Map([["shop/api", { app: "api" }]])));
    await d.applyDelta({
      upserted: [defaultIntent(true), namedAccess("shop", "api")],
      removed: [],
      complete: true,
    });
    await d.applyDelta({ upserted: [], removed: ["access/shop/api"], complete: false });
    const second = r.deltas[1]!;
    assert.deepEqual(second.removed, []);
    assert.deepEqual(names(second.upserted), ["access/shop/api"]);
    assert.equal(second.upserted[0]!.kind.value?.$typeName, "isthmus.v1.AccessIntent");
    assert.notEqual(second.upserted[0]!.version, "hub-api");
    // Named again: the hub's intent replaces the expanded one under the same name.
    await d.applyDelta({ upserted: [namedAccess("shop", "api")], removed: [], complete: false });
    assert.deepEqual(r.deltas[2]!.removed, []);
    assert.equal(r.held.get("access/shop/api"), "hub-api");
  });

  it("after a restart keeps the hub's adopted AccessIntents and expands the others", async () => {
    const r = recordingReconciler();
    // Adopted from the cluster: the hub's intent of api, and cart as an earlier run expanded it.
    r.held.set("access/shop/api", "hub-api");
    r.held.set("access/shop/cart", "old-expanded");
    const targets = new Map([
      ["shop/cart", { app: "cart" }],
      ["shop/api", { app: "api" }],
    ]);
    const d = withDefaultAccess(r.inner, targetsOf(targets));
    // The hub keeps api (same version: not resent) and removes cart, which it never sent.
    await d.applyDelta({
      upserted: [defaultIntent(true)],
      removed: ["access/shop/cart"],
      complete: true,
    });
    const delta = r.deltas[0]!;
    assert.deepEqual(delta.removed, []);
    assert.deepEqual(names(delta.upserted), ["access/shop/cart"]);
    assert.equal(r.held.get("access/shop/api"), "hub-api");
  });

  it("follows local Services as they come and go, and the default as it goes", async () => {
    const r = recordingReconciler();
    const targets = new Map<string, Record<string, string>>();
    const d = withDefaultAccess(r.inner, targetsOf(targets));
    await d.applyDelta({ upserted: [defaultIntent(false)], removed: [], complete: true });
    assert.deepEqual(r.deltas[0]!.upserted, []);
    targets.set("shop/new", { app: "new" });
    await d.serviceChanged("shop", "new");
    assert.deepEqual(names(r.deltas[1]!.upserted), ["access/shop/new"]);
    const first = r.deltas[1]!.upserted[0]!;
    assert.equal(
      first.kind.case === "accessIntent" && first.kind.value.allowLocalTrustDomain,
      false,
    );
    // An unrelated event changes nothing; a new selector gives a new version.
    await d.serviceChanged("shop", "new");
    assert.equal(r.deltas.length, 2);
    targets.set("shop/new", { app: "new", tier: "web" });
    await d.serviceChanged("shop", "new");
    assert.notEqual(r.deltas[2]!.upserted[0]!.version, first.version);
    targets.delete("shop/new");
    await d.serviceChanged("shop", "new");
    assert.deepEqual(r.deltas[3]!.removed, ["access/shop/new"]);
    targets.set("shop/new", { app: "new" });
    await d.serviceChanged("shop", "new");
    await d.applyDelta({ upserted: [], removed: [DEFAULT_ACCESS_INTENT_NAME], complete: false });
    assert.deepEqual(r.deltas.at(-1)!.removed, ["access/shop/new"]);
    assert.deepEqual(d.appliedVersions(), {});
  });

  it("reports failures of expanded intents as failures of the default", async () => {
    const r = recordingReconciler();
    const d = withDefaultAccess(r.inner, targetsOf(new Map([["shop/cart", { app: "cart" }]])));
    r.failWith([
      { intentName: "access/shop/cart", object: "AuthorizationPolicy shop/x", message: "no" },
    ]);
    const report = await d.applyDelta({
      upserted: [defaultIntent(true)],
      removed: [],
      complete: true,
    });
    assert.equal(report.errors[0]!.intentName, DEFAULT_ACCESS_INTENT_NAME);
    const cartVersion = r.held.get("access/shop/cart")!;
    r.failed.set("access/shop/cart", cartVersion);
    assert.deepEqual(d.failedVersions(), { "default-access": "d1" });
    assert.deepEqual(d.appliedVersions(), {});
    const events: ReconcilerEvent[] = [];
    d.onEvent((e) => events.push(e));
    // Applied on a retry: the default is applied once no expanded intent still fails.
    r.emit({ type: "applied", intentName: "access/shop/cart", version: cartVersion });
    r.failed.clear();
    r.emit({ type: "applied", intentName: "access/shop/cart", version: cartVersion });
    r.emit({ type: "removed", intentName: "access/shop/cart" });
    assert.deepEqual(events, [{ type: "applied", intentName: "default-access", version: "d1" }]);
  });
});
