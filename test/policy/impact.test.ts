import assert from "node:assert/strict";
import { type CatalogChange, createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import { type ConnectionPolicy, Decision, type DecisionChange } from "@isthmus/proto";
import { cluster, identity, policy, service } from "./fixtures.js";
import {
  createRandom,
  emptyTruth,
  engineFromTruth,
  randomPolicies,
  randomStep,
} from "./random-scene.js";

/** Every connection as `source -> destination:port` with explain's decision and rule. */
function explained(e: PolicyEngine): Map<string, string> {
  const out = new Map<string, string>();
  const { catalog } = e;
  for (const id of catalog.allIdentities()) {
    const source = {
      clusterId: id.clusterId,
      namespace: id.identity.namespace,
      serviceAccount: id.identity.serviceAccount,
    };
    for (const clusterId of catalog.clusterIds()) {
      for (const rec of catalog.servicesIn(clusterId).values()) {
        const ports = rec.service.ports.map((p) => p.port);
        for (const port of ports.length > 0 ? ports : [0]) {
          const r = e.explain(source, {
            clusterId,
            namespace: rec.service.namespace,
            service: rec.service.name,
            port,
          });
          const b = r.backends[0]!;
          out.set(
            `${id.key} -> ${rec.key}:${port}`,
            `${Decision[b.decision]} ${b.rule || "default"}`,
          );
        }
      }
    }
  }
  return out;
}

/** Impact as the same lines, a change of every port (port 0) spelled out per port. */
function impactLines(e: PolicyEngine, changes: DecisionChange[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    const s = c.source!;
    const d = c.destination!;
    const rec = e.catalog.service(d.clusterId, d.namespace, d.service)!;
    const all = rec.service.ports.map((p) => p.port);
    for (const port of d.port === 0 && all.length > 0 ? all : [d.port]) {
      out.push(
        `${s.clusterId}/${s.namespace}/${s.serviceAccount} -> ${rec.key}:${port}: ${Decision[c.before]} ${c.ruleBefore || "default"} => ${Decision[c.after]} ${c.ruleAfter || "default"}`,
      );
    }
  }
  return out.sort();
}

/** What explain says changes between two engines, as the same lines. */
function explainDiff(before: PolicyEngine, after: PolicyEngine): string[] {
  const a = explained(before);
  const b = explained(after);
  const out: string[] = [];
  for (const [pair, was] of a) {
    const now = b.get(pair)!;
    if (was.split(" ")[0] !== now.split(" ")[0]) out.push(`${pair}: ${was} => ${now}`);
  }
  return out.sort();
}

describe("policy engine: dry-run impact is what explain says before and after", () => {
  it("an earlier DENY keeps winning over a later ALLOW applied with it", () => {
    // The case: DENY dev -> prod at priority 10, ALLOW shop -> shop at 100, applied
    // together. dev/shop/catalog -> prod-eu/shop/cart stays DENY by the DENY.
    const catalog: CatalogChange[] = [
      { kind: "cluster", cluster: cluster("dev", { labels: { env: "dev" } }) },
      { kind: "cluster", cluster: cluster("prod-eu", { labels: { env: "prod" } }) },
      { kind: "service", clusterId: "prod-eu", service: service("shop", "cart") },
      { kind: "identity", clusterId: "dev", identity: identity("shop", "catalog") },
      { kind: "identity", clusterId: "prod-eu", identity: identity("shop", "catalog") },
    ];
    const next = [
      policy(
        "no-dev-to-prod",
        10,
        "DENY",
        [{ clusterLabels: { env: "dev" } }],
        [{ clusterLabels: { env: "prod" } }],
      ),
      policy("shop-to-shop", 100, "ALLOW", [{ namespaces: ["shop"] }], [{ namespaces: ["shop"] }]),
    ];
    const e = createPolicyEngine();
    e.applyCatalog(catalog);
    const after = createPolicyEngine();
    after.applyCatalog(catalog);
    after.setPolicies(next);
    // Nothing changes: cross-cluster stays DENY (now by the DENY), local stays ALLOW.
    assert.deepEqual(impactLines(e, e.impact(next)), []);
    assert.deepEqual(explainDiff(e, after), []);
  });

  it("equals the difference of explain before and after on random scenes", () => {
    const seeds = Number(process.env.ISTHMUS_IMPACT_SEEDS ?? 300);
    let compared = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const r = createRandom(seed * 7919);
      const truth = emptyTruth();
      for (let i = 0; i < 12; i++) {
        const step = randomStep(r, truth);
        if (step.kind === "policies") truth.policies = step.policies;
      }
      const before = engineFromTruth(truth);
      const next: ConnectionPolicy[] = randomPolicies(r);
      const after = engineFromTruth({ ...truth, policies: next });
      const expected = explainDiff(before, after).map((l) => l.split(": ")[0]);
      const got = impactLines(before, before.impact(next));
      // The decisions must agree exactly; impact's lines carry the rules of both sides.
      assert.deepEqual(
        got.map((l) => l.split(": ")[0]),
        expected,
        `seed ${seed}: impact differs from explain\nimpact:\n${got.join("\n")}\nexplain:\n${explainDiff(before, after).join("\n")}`,
      );
      const explainedAfter = explained(after);
      for (const line of got) {
        const [pair, change] = line.split(": ") as [string, string];
        const [, now] = change.split(" => ");
        assert.equal(explainedAfter.get(pair), now, `seed ${seed}: ${pair}`);
      }
      compared += expected.length;
    }
    assert.ok(compared > 0, "the scenes changed some decisions");
  });
});
