// Comparing the policy engine's decisions with the mesh model's verdicts: shared by the
// differential property test and the end-to-end comparison.
import type { KubeObject } from "@isthmus/kubesim";
import {
  attack,
  buildMesh,
  type Caller,
  type ConnectResult,
  connect,
  type Mesh,
  type ServiceTarget,
} from "@isthmus/mesh-model";
import { createRandom } from "@isthmus/model";
import { type CatalogChange, createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import { Decision, type ExplainResponse } from "@isthmus/proto";
import { randomPolicies } from "../policy/random-scene.js";
import { discover, randomKubeScene, renderCluster } from "./kube-scene.js";

export interface Mismatch {
  /** The random scene's seed; undefined for live objects (the e2e comparison). */
  seed: number | undefined;
  pair: string;
  sameCluster: boolean;
  engine: string;
  model: ConnectResult;
}

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

/** The engine's decision for one backend as explain reports it; undefined: not enforced (skip). */
export function decisionOf(ex: ExplainResponse): { allow: boolean; label: string } | undefined {
  if (ex.warnings.some((w) => w.code === "not-enforced")) return undefined;
  const b = ex.backends[0]!;
  const allow = b.decision === Decision.ALLOW;
  const shared = ex.warnings.some((w) => w.code === "shared-principal");
  const by =
    b.rule !== ""
      ? `rule ${b.rule}`
      : shared
        ? "a shared principal (DENY wins)"
        : `default (${ex.defaultReason || "shared principal"})`;
  return { allow, label: `${allow ? "ALLOW" : "DENY"} by ${by}` };
}

/**
 * The model's verdict against a decision: a DENY must hold at the destination by itself
 * (`attack`), an ALLOW must go through from the caller on its host (`connect`).
 */
export function judge(
  mesh: Mesh,
  seed: number | undefined,
  caller: Caller,
  target: ServiceTarget,
  decided: { allow: boolean; label: string },
): Mismatch | undefined {
  const model = decided.allow ? connect(mesh, caller, target) : attack(mesh, caller, target);
  const agrees = decided.allow
    ? model.outcome === "ALLOW"
    : model.outcome !== "ALLOW" && model.outcome !== "UNKNOWN";
  if (agrees) return undefined;
  return {
    seed,
    pair: `${caller.cluster}/${caller.namespace}/${caller.serviceAccount} -> ${target.cluster}/${target.namespace}/${target.service}:${target.port}`,
    sameCluster: caller.cluster === target.cluster,
    engine: decided.label,
    model,
  };
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
    objects: [...c.objects, ...renderCluster(engine, c.id, discovered[i]!.local)] as KubeObject[],
  }));
  return compareEngine(seed, engine, buildMesh(inputs));
}

/** One mismatch on one line: seed, pair, both verdicts, the objects. */
export function describeMismatch(m: Mismatch): string {
  return `${m.seed === undefined ? "live" : `seed ${m.seed}`}: ${m.pair}: engine ${m.engine}; model ${m.model.outcome} (${m.model.stage}) ${m.model.reason}; objects: ${m.model.objects.join("; ") || "-"}`;
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
