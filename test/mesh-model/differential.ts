// The differential property test's scenes and the grouping of mismatches by class; the
// comparison of a decision with the model is the CLI's (packages/cli/src/verify/compare.ts).

import { decisionOf, judge, type Mismatch } from "@isthmus/cli/verify";
import type { KubeObject } from "@isthmus/kubesim";
import { buildMesh, type Mesh } from "@isthmus/mesh-model";
import { createRandom } from "@isthmus/model";
import { type CatalogChange, createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import { Decision } from "@isthmus/proto";
import { randomPolicies } from "../policy/random-scene.js";
import { discover, randomKubeScene, renderCluster } from "./kube-scene.js";

// The comparison itself lives in the CLI (`isthmus verify`); re-exported for the tests.
export { decisionOf, describeMismatch, judge, type Mismatch } from "@isthmus/cli/verify";

/** What a mismatch is about, by the model's reason (names and numbers left out). */
const REASONS: [RegExp, string][] = [
  [/no ALLOW policy applies/, "no AuthorizationPolicy applies at the destination"],
  [/none matches a plaintext peer/, "the destination's ALLOW policy refuses a plaintext caller"],
  [/none matches/, "the destination's ALLOW policies do not name the caller"],
  [/DENY policy matches/, "a DENY policy at the destination matches the caller"],
  [/ALLOW policy matches/, "an ALLOW policy at the destination matches the caller"],
  [/has no pods/, "the target Service has no pods serving the port"],
  [/caller has no sidecar/, "the caller has no sidecar (namespace not injected)"],
  [/knows no host/, "the caller's sidecar does not know the host"],
  [/not known in cluster/, "the destination's east-west gateway does not know the SNI host"],
  [/trust domain validation failed/, "the destination refuses the caller's trust domain"],
  [
    /has no endpoints for/,
    "the caller's host has no endpoints (no east-west gateway address of the backend)",
  ],
  [/reaches no pod/, "the host routes to no pod of the target"],
];

export function classOf(m: Mismatch): string {
  let why = REASONS.find(([re]) => re.test(m.model.reason))?.[1] ?? m.model.reason.slice(0, 80);
  // Whose policy decided: the target Service's own, or one rendered for another Service
  // whose selector picks the same pods.
  const policy = /\(AuthorizationPolicy [^/]+\/isthmus-(?:allow|deny)-([^)\s]+)\)/.exec(
    m.model.reason,
  )?.[1];
  const service = m.pair.split(" -> ")[1]!.split("/")[2]!.split(":")[0]!;
  if (policy !== undefined)
    why +=
      policy === service
        ? " (the Service's own policy)"
        : " (another Service's policy on the same pods)";
  const decided = m.engine.split(" ")[0];
  return `decided ${decided}, model ${m.model.outcome} at ${m.model.stage}, ${m.sameCluster ? "same" : "cross"}-cluster: ${why}`;
}

/** Every identity x service x port the engine knows, compared. */
export function compareEngine(seed: number, engine: PolicyEngine, mesh: Mesh) {
  const mismatches: Mismatch[] = [];
  let skipped = 0;
  let compared = 0;
  const clusters = engine.catalog.clusterIds();
  for (const src of clusters) {
    for (const id of engine.catalog.identitiesIn(src).values()) {
      const { namespace, serviceAccount } = id.identity;
      const caller = { cluster: src, namespace, serviceAccount };
      for (const dst of clusters) {
        for (const svc of engine.catalog.servicesIn(dst).values()) {
          for (const p of svc.service.ports) {
            const target = {
              cluster: dst,
              namespace: svc.service.namespace,
              service: svc.service.name,
              port: p.port,
            };
            const decided = decisionOf(
              engine.explain(
                { clusterId: src, namespace, serviceAccount },
                {
                  clusterId: dst,
                  namespace: target.namespace,
                  service: target.service,
                  port: p.port,
                },
              ),
            );
            if (decided === undefined) {
              skipped++;
              continue;
            }
            compared++;
            const m = judge(mesh, seed, caller, target, decided);
            if (m !== undefined) mismatches.push(m);
          }
        }
      }
    }
  }
  return { mismatches, skipped, compared };
}

/** One seed: a random scene, random policies, the engine, the agents' rendering, the model. */
export function runSeed(seed: number) {
  const r = createRandom(seed);
  const scene = randomKubeScene(r);
  const engine = createPolicyEngine(
    r.chance(0.1)
      ? { defaults: { sameCluster: Decision.ALLOW, crossCluster: Decision.ALLOW } }
      : {},
  );
  engine.setPolicies(randomPolicies(r));
  const discovered = scene.map(discover);
  engine.applyCatalog(discovered.flatMap((d) => d.changes) as CatalogChange[]);
  const inputs = scene.map((c, i) => ({
    id: c.id,
    objects: [
      ...c.objects,
      ...renderCluster(engine, c.id, discovered[i]!.local, discovered[i]!.accessTargets),
    ] as KubeObject[],
  }));
  return compareEngine(seed, engine, buildMesh(inputs));
}

/** Mismatches grouped by class, with the first example of each. */
export class MismatchClasses {
  readonly byClass = new Map<string, { count: number; example: Mismatch }>();
  total = 0;
  add(ms: readonly Mismatch[]): void {
    for (const m of ms) {
      this.total++;
      const key = classOf(m);
      const c = this.byClass.get(key);
      if (c === undefined) this.byClass.set(key, { count: 1, example: m });
      else c.count++;
    }
  }
  report(): string {
    return [...this.byClass]
      .sort((a, b) => b[1].count - a[1].count)
      .map(
        ([key, { count, example: e }]) =>
          `  ${count} x ${key}\n    e.g. ${e.seed === undefined ? "live" : `seed ${e.seed}`}: ${e.pair}\n    engine: ${e.engine}\n    model:  ${e.model.outcome} (${e.model.stage}) ${e.model.reason}\n    objects: ${e.model.objects.join("; ") || "-"}`,
      )
      .join("\n");
  }
}
