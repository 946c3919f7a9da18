// Istio AuthorizationPolicy at a workload's sidecar, after istio.io's AuthorizationPolicy
// reference and the "Authorization Policy" concept page, checked against istiod's
// pilot/pkg/security/authz (builder.go, model/model.go, model/generator.go, matcher/string.go).
import {
  asList,
  asRecord,
  globMatch,
  istioMatch,
  matchesLabels,
  str,
  stringList,
} from "./fields.js";
import { type ClusterView, type PodView, refOf } from "./mesh.js";
import { expandPrincipals, namespaceOfPrincipal } from "./trust-domain.js";
import type { AuthzResult, KubeObject } from "./types.js";

export const DRY_RUN_ANNOTATION = "istio.io/dry-run";

/** The peer as the destination sidecar knows it after the TLS handshake. */
export interface Peer {
  /** `td/ns/x/sa/y`; undefined for a plaintext connection. */
  principal: string | undefined;
}

/** A rule's value: true, false, or a reason it cannot be decided by this model. */
type Match = boolean | { unknown: string };

const and = (a: Match, b: () => Match): Match => {
  if (a === false) return false;
  const r = b();
  if (r === false) return false;
  if (a === true) return r;
  return a;
};

/** Any of the items matches (true wins over unknown, unknown over false). */
function any<T>(items: readonly T[], f: (item: T) => Match): Match {
  let unknown: Match = false;
  for (const i of items) {
    const m = f(i);
    if (m === true) return true;
    if (m !== false) unknown = m;
  }
  return unknown;
}

interface Context {
  peer: Peer;
  port: number;
  /** The local trust domain and its aliases (Istio's trust domain bundle). */
  bundle: readonly string[];
  policyNamespace: string;
}

/** values/notValues of one field: values must match, notValues must not. Absent = no condition. */
function field(
  values: string[] | undefined,
  notValues: string[] | undefined,
  actual: string | undefined,
  match: (pattern: string, value: string) => boolean,
): boolean {
  // Attributes of the peer's certificate do not exist for plaintext: a positive matcher fails,
  // a negated one holds (Envoy's `not_id` of an authenticated matcher).
  if (values !== undefined && (actual === undefined || !values.some((v) => match(v, actual))))
    return false;
  if (notValues !== undefined && actual !== undefined && notValues.some((v) => match(v, actual)))
    return false;
  return true;
}

const UNMODELLED_SOURCE = [
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "requestPrincipals",
  "notRequestPrincipals",
];
const UNMODELLED_OPERATION = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"];

function sourceMatches(source: Record<string, unknown>, ctx: Context): Match {
  for (const k of UNMODELLED_SOURCE)
    if (stringList(source[k]) !== undefined) return { unknown: `source.${k} is not modelled` };
  const principal = ctx.peer.principal;
  const td = principal?.split("/")[0];
  const ns = principal === undefined ? undefined : namespaceOfPrincipal(principal);
  const expand = (v: unknown) => {
    const list = stringList(v);
    return list === undefined ? undefined : expandPrincipals(list, ctx.bundle);
  };
  const sa = principal === undefined ? undefined : serviceAccountOf(principal);
  const qualify = (v: string) => (v.includes("/") ? v : `${ctx.policyNamespace}/${v}`);
  return (
    field(expand(source.principals), expand(source.notPrincipals), principal, istioMatch) &&
    field(stringList(source.namespaces), stringList(source.notNamespaces), ns, globMatch) &&
    field(
      stringList(source.serviceAccounts)?.map(qualify),
      stringList(source.notServiceAccounts)?.map(qualify),
      sa,
      (p, v) => p === v,
    ) &&
    field(
      stringList(source.trustDomains) &&
        expandTrustDomains(stringList(source.trustDomains)!, ctx.bundle),
      stringList(source.notTrustDomains) &&
        expandTrustDomains(stringList(source.notTrustDomains)!, ctx.bundle),
      td,
      istioMatch,
    )
  );
}

function expandTrustDomains(values: string[], bundle: readonly string[]): string[] {
  return [...new Set(values.flatMap((v) => (bundle.includes(v) ? [...bundle] : [v])))];
}

/** `ns/sa` of a principal `td/ns/<ns>/sa/<sa>`. */
function serviceAccountOf(principal: string): string | undefined {
  const p = principal.split("/");
  return p.length === 5 && p[1] === "ns" && p[3] === "sa" ? `${p[2]}/${p[4]}` : undefined;
}

function operationMatches(op: Record<string, unknown>, ctx: Context): Match {
  for (const k of UNMODELLED_OPERATION)
    if (stringList(op[k]) !== undefined)
      return { unknown: `operation.${k} is not modelled (HTTP only)` };
  const port = String(ctx.port);
  return field(stringList(op.ports), stringList(op.notPorts), port, (p, v) => p === v);
}

/** `when` keys this model evaluates; any other key makes the rule unknown. */
function conditionMatches(c: Record<string, unknown>, ctx: Context): Match {
  const key = str(c.key);
  const principal = ctx.peer.principal;
  const values = stringList(c.values);
  const notValues = stringList(c.notValues);
  switch (key) {
    case "source.principal":
      return field(
        values && expandPrincipals(values, ctx.bundle),
        notValues && expandPrincipals(notValues, ctx.bundle),
        principal,
        istioMatch,
      );
    case "source.namespace":
      return field(values, notValues, principal && namespaceOfPrincipal(principal), globMatch);
    case "destination.port":
      return field(values, notValues, String(ctx.port), (p, v) => p === v);
    default:
      return { unknown: `when key "${key}" is not modelled` };
  }
}

/** One rule: `from`, `to` and `when` ANDed; entries of each ORed; absent parts match all. */
export function ruleMatches(rule: unknown, ctx: Context): Match {
  const r = asRecord(rule);
  const from = asList(r.from);
  const to = asList(r.to);
  const when = asList(r.when);
  const fromMatch: Match =
    from.length === 0 ? true : any(from, (f) => sourceMatches(asRecord(asRecord(f).source), ctx));
  return and(
    and(fromMatch, () =>
      to.length === 0
        ? true
        : any(to, (t) => operationMatches(asRecord(asRecord(t).operation), ctx)),
    ),
    () => {
      let out: Match = true;
      for (const c of when) out = and(out, () => conditionMatches(asRecord(c), ctx));
      return out;
    },
  );
}

/** A policy matches when one of its rules does; no rules (absent or `[]`) never matches. */
export function policyMatches(policy: KubeObject, ctx: Context): Match {
  return any(asList(asRecord(policy.spec).rules), (r) => ruleMatches(r, ctx));
}

export function isDryRun(policy: KubeObject): boolean {
  return (policy.metadata?.annotations?.[DRY_RUN_ANNOTATION] ?? "").toLowerCase() === "true";
}

/** Whether the policy is for sidecars at all: `targetRef(s)` bind it to gateways and waypoints. */
export function hasTargetRef(policy: KubeObject): boolean {
  const spec = asRecord(policy.spec);
  return spec.targetRef !== undefined || asList(spec.targetRefs).length > 0;
}

/**
 * Policies that apply to a pod: root-namespace policies to every workload of the mesh
 * (all of them without selector, those whose selector matches otherwise), the pod's
 * namespace's policies without selector, and those whose `selector.matchLabels` it carries.
 * Dry-run policies and policies with targetRef(s) are not enforced on a sidecar.
 */
export function applicablePolicies(cluster: ClusterView, pod: PodView): KubeObject[] {
  const root = cluster.mesh.rootNamespace;
  return cluster.authorizationPolicies
    .filter((p) => {
      const ns = p.metadata?.namespace ?? "";
      if (ns !== root && ns !== pod.namespace) return false;
      if (isDryRun(p) || hasTargetRef(p)) return false;
      const selector = asRecord(asRecord(p.spec).selector);
      if (selector.matchLabels === undefined) return true;
      return matchesLabels(asRecord(selector.matchLabels) as Record<string, string>, pod.labels);
    })
    .sort((a, b) => refOf(a).localeCompare(refOf(b)));
}

function actionOf(p: KubeObject): string {
  return str(asRecord(p.spec).action) || "ALLOW";
}

/**
 * Istio's decision at a pod's sidecar for a peer on a port: CUSTOM (not modelled: UNKNOWN when
 * one applies), then DENY (any match denies), then ALLOW (when any ALLOW policy applies, one
 * must match), AUDIT has no effect on the verdict.
 */
export function authorizePod(
  cluster: ClusterView,
  pod: PodView,
  peer: Peer,
  port: number,
): AuthzResult {
  const policies = applicablePolicies(cluster, pod);
  const objects = policies.map(refOf);
  const bundle = [cluster.mesh.trustDomain, ...cluster.mesh.trustDomainAliases];
  const ctxOf = (p: KubeObject): Context => ({
    peer,
    port,
    bundle,
    policyNamespace: p.metadata?.namespace ?? "",
  });
  const who = peer.principal ?? "a plaintext peer (no principal)";
  const custom = policies.find((p) => actionOf(p) === "CUSTOM");
  if (custom !== undefined)
    return {
      verdict: "UNKNOWN",
      by: refOf(custom),
      reason: "CUSTOM authorization (external authorizer) is not modelled",
      objects,
    };
  let unknown: { by: string; why: string } | undefined;
  for (const p of policies.filter((q) => actionOf(q) === "DENY")) {
    const m = policyMatches(p, ctxOf(p));
    if (m === true)
      return {
        verdict: "DENY",
        by: refOf(p),
        reason: `DENY policy matches ${who} on port ${port}`,
        objects,
      };
    if (m !== false) unknown ??= { by: refOf(p), why: m.unknown };
  }
  const allows = policies.filter((q) => actionOf(q) === "ALLOW");
  if (unknown !== undefined)
    return { verdict: "UNKNOWN", by: unknown.by, reason: unknown.why, objects };
  if (allows.length === 0)
    return {
      verdict: "ALLOW",
      by: "default",
      reason: "no ALLOW policy applies to the workload",
      objects,
    };
  for (const p of allows) {
    const m = policyMatches(p, ctxOf(p));
    if (m === true)
      return {
        verdict: "ALLOW",
        by: refOf(p),
        reason: `ALLOW policy matches ${who} on port ${port}`,
        objects,
      };
    if (m !== false) unknown ??= { by: refOf(p), why: m.unknown };
  }
  if (unknown !== undefined)
    return { verdict: "UNKNOWN", by: unknown.by, reason: unknown.why, objects };
  return {
    verdict: "DENY",
    by: "default",
    reason: `ALLOW policies apply to the workload (${allows.map(refOf).join(", ")}) and none matches ${who} on port ${port}`,
    objects,
  };
}
