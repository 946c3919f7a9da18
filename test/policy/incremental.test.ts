import assert from "node:assert/strict";
import type { CatalogChange, Deltas, PolicyEngine } from "@isthmus/policy";
import { createPolicyEngine, freezePolicy } from "@isthmus/policy";
import { cluster, identity, policy, service } from "./fixtures.js";
import { createRandom, emptyTruth, engineFromTruth, randomStep } from "./random-scene.js";

type Mirror = Map<string, Map<string, string>>;

function applyDeltas(mirror: Mirror, deltas: Deltas, where: string): void {
  for (const [clusterId, delta] of deltas) {
    assert.ok(
      delta.upserted.length + delta.removed.length > 0,
      `${where}: empty delta for ${clusterId}`,
    );
    let m = mirror.get(clusterId);
    if (m === undefined) {
      m = new Map();
      mirror.set(clusterId, m);
    }
    for (const i of delta.upserted) {
      assert.notEqual(
        m.get(i.name),
        i.version,
        `${where}: ${clusterId} ${i.name} upserted without a version change`,
      );
      m.set(i.name, i.version);
    }
    for (const name of delta.removed) {
      assert.ok(m.has(name), `${where}: ${clusterId} removes unknown intent ${name}`);
      m.delete(name);
    }
    if (m.size === 0) mirror.delete(clusterId);
  }
}

function snapshot(e: PolicyEngine): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const c of e.clustersWithIntents()) {
    const m: Record<string, string> = {};
    for (const [name, i] of [...e.intents(c)].sort()) m[name] = i.version;
    out[c] = m;
  }
  return out;
}

function warningsOf(e: PolicyEngine): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of e.catalog.clusterIds())
    out[c] = e.warnings(c).map((w) => `${w.code}: ${w.message}`);
  return out;
}

function mirrorSnapshot(m: Mirror): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const c of [...m.keys()].sort()) out[c] = Object.fromEntries([...m.get(c)!].sort());
  return out;
}

describe("policy engine: incremental compilation equals a full recompute", () => {
  it("over 2000 seeded random change sequences", function () {
    this.timeout(120_000);
    let steps = 0;
    for (let seed = 1; seed <= 2000; seed++) {
      const r = createRandom(seed);
      const truth = emptyTruth();
      const engine = createPolicyEngine();
      const mirror: Mirror = new Map();
      for (let n = 0; n < 6; n++) {
        const step = randomStep(r, truth);
        const where = `seed ${seed} step ${n} (${step.kind})`;
        const deltas =
          step.kind === "catalog"
            ? engine.applyCatalog(step.changes)
            : step.kind === "policies"
              ? // Every other seed gives frozen policies (known by reference when given again).
                engine.setPolicies(seed % 2 === 0 ? step.policies.map(freezePolicy) : step.policies)
              : engine.setDefaults(step.defaults);
        applyDeltas(mirror, deltas, where);
        const full = engineFromTruth(truth);
        const expected = snapshot(full);
        assert.deepEqual(
          snapshot(engine),
          expected,
          `${where}: intents differ from a full recompute`,
        );
        assert.deepEqual(
          mirrorSnapshot(mirror),
          expected,
          `${where}: deltas do not add up to the intents`,
        );
        assert.deepEqual(warningsOf(engine), warningsOf(full), `${where}: warnings differ`);
        steps++;
      }
    }
    assert.equal(steps, 12000);
  });

  it("rule changes that take backing clusters from an importer, one at a time", () => {
    // shop/cart is backed by a, b and c; web/frontend in d imports it from the clusters the
    // rule names. Each step is compared with an engine compiled from scratch.
    const catalog = [
      ...["a", "b", "c", "d"].map((id) => ({ kind: "cluster" as const, cluster: cluster(id) })),
      ...["a", "b", "c"].map((clusterId) => ({
        kind: "service" as const,
        clusterId,
        service: service("shop", "cart"),
      })),
      { kind: "service" as const, clusterId: "d", service: service("shop", "cart") },
      { kind: "identity" as const, clusterId: "d", identity: identity("web", "frontend") },
    ];
    const rule = (clusters: string[]) => [
      policy(
        "web-to-cart",
        10,
        "ALLOW",
        [{ namespaces: ["web"] }],
        [{ clusters, services: ["cart"] }],
      ),
    ];
    const engine = createPolicyEngine();
    const mirror: Mirror = new Map();
    applyDeltas(mirror, engine.applyCatalog(catalog), "catalog");
    applyDeltas(mirror, engine.setPolicies(rule(["a", "b", "c"])), "first");
    for (const clusters of [["a", "b"], ["a"], ["b", "c"], ["none"], ["c"], ["a", "b", "c"]]) {
      const where = `clusters [${clusters.join(", ")}]`;
      applyDeltas(mirror, engine.setPolicies(rule(clusters)), where);
      const full = createPolicyEngine();
      full.setPolicies(rule(clusters));
      full.applyCatalog(catalog);
      assert.deepEqual(snapshot(engine), snapshot(full), `${where}: differs from a full compile`);
      assert.deepEqual(mirrorSnapshot(mirror), snapshot(full), `${where}: deltas do not add up`);
      const held = [...engine.intents("d").keys()].filter((n) => n.startsWith("import/shop/cart/"));
      assert.deepEqual(
        held.sort(),
        clusters.filter((c) => c !== "none").map((c) => `import/shop/cart/${c}`),
        where,
      );
    }
  });

  it("an importer's own copy without rules, removed and added back, changes its header", () => {
    // x imports shop/cart from y only; x's own cart (no rule names it) is its local backend.
    const catalog: CatalogChange[] = [
      { kind: "cluster", cluster: cluster("x") },
      { kind: "cluster", cluster: cluster("y") },
      { kind: "service", clusterId: "y", service: service("shop", "cart") },
      { kind: "service", clusterId: "x", service: service("shop", "cart") },
      { kind: "identity", clusterId: "x", identity: identity("web", "frontend") },
    ];
    const rules = [
      policy("web-to-cart", 1, "ALLOW", [{ namespaces: ["web"] }], [{ clusters: ["y"] }]),
    ];
    const engine = createPolicyEngine();
    engine.setPolicies(rules);
    engine.applyCatalog(catalog);
    const withoutCopy = catalog.filter((_, i) => i !== 3);
    const steps: [string, CatalogChange[], CatalogChange[]][] = [
      [
        "removed",
        [{ kind: "service-removed", clusterId: "x", namespace: "shop", name: "cart" }],
        withoutCopy,
      ],
      ["added back", [catalog[3]!], catalog],
    ];
    for (const [where, changes, expected] of steps) {
      engine.applyCatalog(changes);
      const full = createPolicyEngine();
      full.setPolicies(rules);
      full.applyCatalog(expected);
      assert.deepEqual(snapshot(engine), snapshot(full), `${where}: differs from a full compile`);
    }
  });
});
