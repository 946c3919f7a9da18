// Comparing the policy engine's decisions (as the hub's explain reports them) with the mesh
// model's verdicts: used by `isthmus verify` and by the differential tests.
import {
  attack,
  type Caller,
  type ConnectResult,
  connect,
  type Mesh,
  type ServiceTarget,
} from "@isthmus/mesh-model";
import { Decision, type ExplainResponse } from "@isthmus/proto";

export interface Mismatch {
  /** A random scene's seed (differential tests); undefined for live objects. */
  seed: number | undefined;
  pair: string;
  sameCluster: boolean;
  engine: string;
  model: ConnectResult;
}

/** A decision for one pair: whether it allows, and what decided it. */
export interface Decided {
  allow: boolean;
  label: string;
}

/** The engine's decision for one backend as explain reports it; undefined: not enforced (skip). */
export function decisionOf(ex: ExplainResponse): Decided | undefined {
  if (ex.warnings.some((w) => w.code === "not-enforced")) return undefined;
  const b = ex.backends[0];
  // No backend: nothing to enforce at a destination (explain warns why).
  if (b === undefined) return undefined;
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

/** `cluster/namespace/serviceAccount -> cluster/namespace/service:port`. */
export function pairName(caller: Caller, target: ServiceTarget): string {
  return `${caller.cluster}/${caller.namespace}/${caller.serviceAccount} -> ${target.cluster}/${target.namespace}/${target.service}:${target.port}`;
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
  decided: Decided,
): Mismatch | undefined {
  const model = decided.allow ? connect(mesh, caller, target) : attack(mesh, caller, target);
  const agrees = decided.allow
    ? model.outcome === "ALLOW"
    : model.outcome !== "ALLOW" && model.outcome !== "UNKNOWN";
  if (agrees) return undefined;
  return {
    seed,
    pair: pairName(caller, target),
    sameCluster: caller.cluster === target.cluster,
    engine: decided.label,
    model,
  };
}

/** One mismatch on one line: seed (or live), pair, both verdicts, the objects. */
export function describeMismatch(m: Mismatch): string {
  return `${m.seed === undefined ? "live" : `seed ${m.seed}`}: ${m.pair}: engine ${m.engine}; model ${m.model.outcome} (${m.model.stage}) ${m.model.reason}; objects: ${m.model.objects.join("; ") || "-"}`;
}
