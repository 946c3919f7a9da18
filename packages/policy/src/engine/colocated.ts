// Services that share pods and ports. Istio authorizes per workload and port, not per
// Service: two Services of one namespace that select the same pods and reach the same target
// port share every AuthorizationPolicy there (DENY policies of either apply, ALLOW policies
// add up). Explain says when the other Service decides differently for a source on such a
// port: then neither decision holds by itself.
import type { ServiceRecord } from "@isthmus/model";
import type { Decision, Service, Warning } from "@isthmus/proto";
import { ruleMatchesDestinationPort } from "../rule-matcher.js";
import {
  type Destination,
  decisionName,
  type EngineState,
  type Rule,
  slotDecision,
  warning,
} from "./engine-state.js";

/** The first rule of a destination that decides a port for a source (null: the default). */
export function ruleOnPort(
  state: EngineState,
  d: Destination,
  port: number,
  matches: (r: Rule) => boolean,
): Rule | null {
  const facts = state.catalog.cluster(d.record.clusterId)!;
  for (const hit of d.rules) {
    const covers =
      port === 0
        ? true
        : d.ports.includes(port)
          ? hit.slots.includes(d.ports.indexOf(port))
          : ruleMatchesDestinationPort(hit.rule, d.record, facts, port);
    if (covers && matches(hit.rule)) return hit.rule;
  }
  return null;
}

const numeric = (port: string) => /^[0-9]+$/.test(port);
const targetOf = (s: Service, port: number) =>
  s.ports.find((p) => p.port === port)?.targetPort || String(port);

/** A warning when a Service on the same pods and port decides otherwise for the source. */
export function colocatedConflict(
  state: EngineState,
  d: Destination,
  perPort: readonly { port: number; decision: Decision }[],
  matches: (r: Rule) => boolean,
  same: boolean,
): Warning | undefined {
  const svc = d.record.service;
  if (Object.keys(svc.selector).length === 0) return undefined;
  const accounts = new Set(svc.serviceAccounts);
  for (const other of state.catalog.servicesInNamespace(svc.namespace)) {
    if (other.clusterId !== d.record.clusterId || other.key === d.record.key) continue;
    if (Object.keys(other.service.selector).length === 0) continue;
    if (!other.service.serviceAccounts.some((sa) => accounts.has(sa))) continue;
    const o = state.destinations.get(other.key);
    if (o === undefined || !sharePods(state, d.record, other)) continue;
    for (const { port, decision } of perPort) {
      const target = targetOf(svc, port);
      for (const op of other.service.ports) {
        // A named target port is resolved per pod, which the hub does not see: it may be
        // the same port.
        const theirs = op.targetPort || String(op.port);
        if (numeric(target) && numeric(theirs) && theirs !== target) continue;
        const their = slotDecision(state, ruleOnPort(state, o, op.port, matches), same);
        if (their === decision) continue;
        return warning(
          "not-enforced",
          `service ${svc.namespace}/${svc.name} in cluster ${d.record.clusterId} shares its pods and target port ${target} with service ${other.service.name}, which ${decisionName(their)}s this source there: Istio authorizes per pod and port, so this ${decisionName(decision)} does not hold by itself (name both services in the same rules)`,
        );
      }
    }
  }
  return undefined;
}

/** Whether some pod (a label set of an identity of the namespace) is selected by both. */
function sharePods(state: EngineState, a: ServiceRecord, b: ServiceRecord): boolean {
  const selects = (sel: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(sel).every(([k, v]) => labels[k] === v);
  for (const id of state.catalog.identitiesIn(a.clusterId).values()) {
    if (id.identity.namespace !== a.service.namespace) continue;
    for (const set of id.identity.labelSets) {
      if (selects(a.service.selector, set.labels) && selects(b.service.selector, set.labels))
        return true;
    }
  }
  return false;
}
