// Explain: why a source identity may or may not reach a destination service, per backing
// cluster, from the compiled state (a destination without state is compiled on the side,
// unregistered). Decides as the access intents do: per port, DENY wins over ports and over
// the holders of a shared principal.
import { create } from "@bufbuild/protobuf";
import { type ClusterFacts, principalOf, type ServiceRecord } from "@isthmus/model";
import {
  Decision,
  type ExplainResponse,
  ExplainResponseSchema,
  type Warning,
  WorkloadIdentitySchema,
} from "@isthmus/proto";
import { PolicyError } from "../errors.js";
import { importBackendName } from "../intent-builder.js";
import { ruleMatchesSource, type SourceSubject, sourceCoverage } from "../rule-matcher.js";
import type { DestinationRefLike, SourceRefLike } from "./api.js";
import { colocatedConflict, ruleOnPort } from "./colocated.js";
import {
  createDestination,
  type Destination,
  decisionName,
  type EngineState,
  type Rule,
  slotDecision,
  warning,
} from "./engine-state.js";

/** One source explained: who it is and what explain found so far. */
interface ExplainContext {
  source: SourceRefLike;
  facts: ClusterFacts;
  subject: SourceSubject;
  sourceName: string;
  principal: string;
  /** The asked port (0: every port). */
  port: number;
  warnings: Warning[];
  /** Whether a rule's sources select the subject, once per rule. */
  matches: (r: Rule) => boolean;
  /** Rules already warned about for selecting part of the source's pods. */
  splitWarned: Set<Rule>;
}

/** The decision for one backing cluster. */
interface BackendOutcome {
  clusterId: string;
  decision: Decision;
  rule: string;
  defaultReason: string;
}

export function explain(
  state: EngineState,
  source: SourceRefLike,
  destination: DestinationRefLike,
): ExplainResponse {
  const ctx = explainContext(state, source, destination);
  const dstName = `${destination.namespace}/${destination.service}`;
  const backing = [
    ...state.catalog.logicalService(destination.namespace, destination.service).values(),
  ]
    .filter((r) => !destination.clusterId || r.clusterId === destination.clusterId)
    .sort((a, b) => (a.clusterId < b.clusterId ? -1 : 1));
  if (backing.length === 0) {
    const where = destination.clusterId ? ` in cluster "${destination.clusterId}"` : "";
    throw new PolicyError(`explain: unknown destination service ${dstName}${where}`, "not-found");
  }
  const outcomes = backing.map((b) => explainBackend(state, ctx, b, dstName));
  warnTrustDomainAndImports(state, ctx, destination, outcomes);
  const local = outcomes.find((o) => o.clusterId === source.clusterId);
  const preferred = [
    ...(local === undefined ? [] : [local]),
    ...outcomes.filter((o) => o !== local),
  ];
  const summary = preferred.find((o) => o.decision === Decision.ALLOW) ?? preferred[0]!;
  return create(ExplainResponseSchema, {
    decision: summary.decision,
    rule: summary.rule,
    defaultReason: summary.defaultReason,
    principal: ctx.principal,
    warnings: ctx.warnings,
    backends: outcomes.map((o) => ({
      clusterId: o.clusterId,
      decision: o.decision,
      rule: o.rule,
    })),
  });
}

/** The source, checked, with the warnings about it. */
function explainContext(
  state: EngineState,
  source: SourceRefLike,
  destination: DestinationRefLike,
): ExplainContext {
  const { catalog } = state;
  const facts = catalog.cluster(source.clusterId);
  if (facts === undefined) {
    throw new PolicyError(`explain: unknown source cluster "${source.clusterId}"`, "not-found");
  }
  const warnings: Warning[] = [];
  const record = catalog.identity(source.clusterId, source.namespace, source.serviceAccount);
  const identity =
    record?.identity ??
    create(WorkloadIdentitySchema, {
      namespace: source.namespace,
      serviceAccount: source.serviceAccount,
    });
  const sourceName = `${source.clusterId}/${source.namespace}/${source.serviceAccount}`;
  if (record === undefined) {
    warnings.push(
      warning(
        "unknown-source",
        `workload identity ${sourceName} is not in the catalog: explained as one without pods, so selectors with workloadLabels do not match it`,
      ),
    );
  }
  if (record?.identity.outsideMesh === true) {
    warnings.push(
      warning(
        "not-enforced",
        `workload identity ${sourceName} has pods without Istio (no sidecar): their calls carry no identity, so no decision about it is enforced for them (inject the sidecar and restart the pods)`,
      ),
    );
  }
  const subject: SourceSubject = { clusterId: source.clusterId, facts, identity };
  const matchCache = new Map<Rule, boolean>();
  const matches = (r: Rule) => {
    let m = matchCache.get(r);
    if (m === undefined) {
      m = ruleMatchesSource(r, subject, catalog);
      matchCache.set(r, m);
    }
    return m;
  };
  return {
    source,
    facts,
    subject,
    sourceName,
    principal: principalOf(facts.trustDomain, source.namespace, source.serviceAccount),
    port: destination.port ?? 0,
    warnings,
    matches,
    splitWarned: new Set(),
  };
}

/** The decision at one backing cluster's service, with its warnings. */
function explainBackend(
  state: EngineState,
  ctx: ExplainContext,
  b: ServiceRecord,
  dstName: string,
): BackendOutcome {
  const d = state.destinations.get(b.key) ?? createDestination(state, b, false);
  const same = b.clusterId === ctx.source.clusterId;
  const svcName = `${dstName} in cluster ${b.clusterId}`;
  warnSplitServiceAccounts(state, ctx, d);
  const perPort = decidePerPort(state, ctx, d, same);
  const colocated = colocatedConflict(state, d, perPort, ctx.matches, same);
  if (colocated !== undefined) ctx.warnings.push(colocated);
  const gateways = state.catalog.cluster(b.clusterId)!.gateways;
  if (!same && gateways.length === 0 && perPort.some((p) => p.decision === Decision.ALLOW)) {
    ctx.warnings.push(
      warning(
        "not-enforced",
        `${svcName}: cluster ${b.clusterId} has no east-west gateway address, so no other cluster reaches it; a decision to ALLOW cannot take effect`,
      ),
    );
  }
  const denied = perPort.find((p) => p.decision === Decision.DENY);
  const chosen = denied ?? perPort[0]!;
  if (perPort.some((p) => p.decision !== chosen.decision)) {
    ctx.warnings.push(
      warning(
        "port-dependent",
        `${svcName}: the decision depends on the port (${perPort.map((p) => `${p.port}: ${decisionName(p.decision)}`).join(", ")}); the summary is DENY`,
      ),
    );
  }
  let decision = chosen.decision;
  let ruleName = chosen.rule?.name ?? "";
  // A principal shared through a trust domain: DENY wins.
  if (decision === Decision.ALLOW) {
    const denial = sharedPrincipalDenial(state, ctx, d);
    if (denial !== null) {
      decision = Decision.DENY;
      ruleName = denial.rule?.name ?? "";
      ctx.warnings.push(
        warning(
          "shared-principal",
          `${svcName}: principal ${ctx.principal} is also held by workloads of cluster ${denial.clusterId}, which ${denial.rule === null ? "the default denies" : `rule "${denial.rule.name}" denies`}; DENY wins for a shared principal`,
        ),
      );
    }
  }
  if (!d.enforceable) {
    ctx.warnings.push(
      warning(
        "not-enforced",
        `${svcName} is not enforced: ${b.service.inMesh ? "it has no pod selector" : `namespace ${b.service.namespace} is not in the mesh`}`,
      ),
    );
  }
  return {
    clusterId: b.clusterId,
    decision,
    rule: ruleName,
    defaultReason: ruleName === "" ? (same ? "same-cluster" : "cross-cluster") : "",
  };
}

/** Rules that select some pods of the source's service account but not all: once each. */
function warnSplitServiceAccounts(state: EngineState, ctx: ExplainContext, d: Destination): void {
  for (const hit of d.rules) {
    if (
      ctx.splitWarned.has(hit.rule) ||
      sourceCoverage(hit.rule, ctx.subject, state.catalog) !== "some"
    ) {
      continue;
    }
    ctx.splitWarned.add(hit.rule);
    ctx.warnings.push(
      warning(
        "split-service-account",
        `rule "${hit.rule.name}" selects some pods of service account ${ctx.sourceName} but not all; policy is enforced per service account, so this ${hit.rule.deny ? "DENY rule applies to all of its pods" : "ALLOW rule does not apply to it"}`,
      ),
    );
  }
}

/** The decision per port: the asked port, or every port of the service. */
function decidePerPort(state: EngineState, ctx: ExplainContext, d: Destination, same: boolean) {
  const ports = ctx.port !== 0 ? [ctx.port] : d.ports.length > 0 ? d.ports : [0];
  return ports.map((q) => {
    const rule = ruleOnPort(state, d, q, ctx.matches);
    return { port: q, decision: slotDecision(state, rule, same), rule };
  });
}

/** Another cluster's holder of the source's principal that is denied here (null: none). */
function sharedPrincipalDenial(
  state: EngineState,
  ctx: ExplainContext,
  d: Destination,
): { clusterId: string; rule: Rule | null } | null {
  const { port } = ctx;
  for (const h of state.catalog.identitiesWithPrincipal(ctx.principal)) {
    if (h.clusterId === ctx.source.clusterId) continue;
    const identity = state.identities.get(h.key);
    const entry = identity === undefined ? undefined : d.decisions.get(identity);
    const slotsToCheck =
      port !== 0 && d.ports.includes(port)
        ? [d.ports.indexOf(port)]
        : [...Array(d.slotCount).keys()];
    for (const s of slotsToCheck) {
      const r = entry?.[s] ?? null;
      if (slotDecision(state, r, h.clusterId === d.record.clusterId) === Decision.DENY) {
        return { clusterId: h.clusterId, rule: r };
      }
    }
  }
  return null;
}

/** The source's cluster shares its trust domain; it imports from a backend that denies it. */
function warnTrustDomainAndImports(
  state: EngineState,
  ctx: ExplainContext,
  destination: DestinationRefLike,
  outcomes: BackendOutcome[],
): void {
  const { source, facts, principal } = ctx;
  const dstName = `${destination.namespace}/${destination.service}`;
  const sharing = [...state.catalog.clustersWithTrustDomain(facts.trustDomain)].filter(
    (c) => c !== source.clusterId,
  );
  if (sharing.length > 0) {
    ctx.warnings.push(
      warning(
        "shared-trust-domain",
        `cluster ${source.clusterId} shares trust domain ${facts.trustDomain} with ${sharing.sort().join(", ")}: principal ${principal} may name workloads of several clusters, and DENY wins for it`,
      ),
    );
  }
  const held = state.intentsByCluster.get(source.clusterId);
  for (const o of outcomes) {
    const name = importBackendName(destination.namespace, destination.service, o.clusterId);
    if (o.decision === Decision.DENY && held?.has(name) === true) {
      ctx.warnings.push(
        warning(
          "unreachable-backend",
          `cluster ${source.clusterId} imports ${dstName} from cluster ${o.clusterId}, where ${principal} is denied (${o.rule === "" ? "cross-cluster default" : `rule "${o.rule}"`}); its calls balanced to ${o.clusterId} fail`,
        ),
      );
    }
  }
}
