// Conflicts with foreign objects: AuthorizationPolicies and PeerAuthentications that Isthmus
// does not manage and that change what Istio enforces for an Isthmus decision. Pure: the
// cluster's live objects and the AccessIntents in, conflicts out. The judge is the mesh model
// (@isthmus/mesh-model), asked twice for each caller, port and pod of a guarded service: with
// every object, and with the foreign objects taken away (what Isthmus alone enforces). Where
// the verdicts differ, the foreign object that decided is named.
import {
  applicablePolicies,
  authorizePod,
  type ClusterView,
  clusterView,
  type KubeObject as ModelObject,
  type PodView,
  peerAuthentication,
  refOf,
} from "@isthmus/mesh-model";
import type { AccessIntent, Conflict } from "@isthmus/proto";
import type { KubeObject } from "../kube-object.js";
import { isOwned } from "../ownership.js";

export type ConflictKind = "widens-access" | "breaks-allow" | "permissive-mtls";

/** A conflict as the agent reports it (the fields of the `Conflict` message). */
export type ConflictRecord = Pick<
  Conflict,
  "kind" | "object" | "service" | "ports" | "principals" | "reason"
>;

export interface ConflictInput {
  clusterId: string;
  /** The cluster's trust domain. */
  trustDomain: string;
  /** Namespaces, Pods, the mesh ConfigMap, AuthorizationPolicies and PeerAuthentications. */
  objects: readonly KubeObject[];
  /** Isthmus's decisions at this cluster's services. */
  access: readonly AccessIntent[];
  /** Service port -> the pods' port, as the renderer maps them (undefined: unknown). */
  podPorts(namespace: string, service: string): Readonly<Record<number, number>> | undefined;
}

/** Most principals listed per conflict (the contract's limit). */
const MAX_PRINCIPALS = 16;
/** Most callers asked about per service: the intent's, the foreign rules', the probes. */
const MAX_CANDIDATES = 256;
/** A trust domain no cluster has: its identities stand for callers Isthmus names nowhere. */
const PROBE_TRUST_DOMAIN = "isthmus-probe.invalid";
const PROBE_ACCOUNT = "isthmus-probe";

const SECURITY_KINDS = new Set(["AuthorizationPolicy", "PeerAuthentication"]);
const isForeign = (o: ModelObject) => SECURITY_KINDS.has(o.kind) && !isOwned(o);

/** A caller to ask about, and how a conflict lists it. */
interface Candidate {
  principal: string;
  shown: string;
}

const EXACT_PRINCIPAL = /^[a-z0-9][-a-z0-9.]*\/ns\/[a-z0-9][-a-z0-9]*\/sa\/[a-z0-9][-a-z0-9.]*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TRUST_DOMAIN = /^[a-z0-9][-a-z0-9._]*$/;

function sources(policy: ModelObject): Record<string, unknown>[] {
  const spec = (policy.spec ?? {}) as { rules?: { from?: { source?: unknown }[] }[] };
  const out: Record<string, unknown>[] = [];
  for (const rule of Array.isArray(spec.rules) ? spec.rules : [])
    for (const from of Array.isArray(rule?.from) ? rule.from : [])
      if (from?.source !== null && typeof from?.source === "object")
        out.push(from.source as Record<string, unknown>);
  return out;
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

/**
 * The callers asked about at one service: every principal the intent names; a caller of the
 * local trust domain and one of a trust domain no cluster has, in the service's namespace, in
 * each namespace a foreign rule names and in one nobody names (shown `*`); every exact
 * principal a foreign rule names; and for a foreign `td/...` principal pattern, callers of
 * that trust domain.
 */
function candidatesOf(intent: AccessIntent, trustDomain: string, foreign: ModelObject[]) {
  const out = new Map<string, Candidate>();
  const add = (principal: string, shown = principal) => {
    if (out.size < MAX_CANDIDATES && !out.has(principal)) out.set(principal, { principal, shown });
  };
  for (const r of [...intent.allow, ...intent.deny]) for (const p of r.principals) add(p);
  const namespaces = new Set([intent.namespace]);
  const trustDomains = new Set([trustDomain]);
  for (const policy of foreign)
    for (const source of sources(policy)) {
      for (const ns of strings(source.namespaces)) if (NAMESPACE.test(ns)) namespaces.add(ns);
      for (const p of strings(source.principals)) {
        if (EXACT_PRINCIPAL.test(p)) add(p);
        const td = p.split("/")[0] ?? "";
        if (p.includes("/") && TRUST_DOMAIN.test(td)) trustDomains.add(td);
        const ns = p.split("/")[2] ?? "";
        if (p.split("/")[1] === "ns" && NAMESPACE.test(ns)) namespaces.add(ns);
      }
    }
  // Callers in a namespace nobody names stand for every caller no rule singles out.
  namespaces.add(PROBE_ACCOUNT);
  for (const ns of namespaces) {
    const shownNs = ns === PROBE_ACCOUNT ? "*" : ns;
    for (const td of trustDomains)
      add(`${td}/ns/${ns}/sa/${PROBE_ACCOUNT}`, `${td}/ns/${shownNs}/sa/*`);
    add(`${PROBE_TRUST_DOMAIN}/ns/${ns}/sa/${PROBE_ACCOUNT}`, `*/ns/${shownNs}/sa/*`);
  }
  return [...out.values()];
}

/** Pods of a service, one per distinct label set and service account (they decide alike). */
function podsOf(view: ClusterView, intent: AccessIntent): PodView[] {
  const selector = Object.entries(intent.selector);
  if (selector.length === 0) return [];
  const seen = new Map<string, PodView>();
  for (const p of view.pods) {
    if (!p.active || p.namespace !== intent.namespace) continue;
    if (!selector.every(([k, v]) => p.labels[k] === v)) continue;
    const key = JSON.stringify([p.serviceAccount, Object.entries(p.labels).sort()]);
    if (!seen.has(key)) seen.set(key, p);
  }
  return [...seen.values()];
}

/** Service port -> pod port of a guarded service: the renderer's mapping, else the rules' ports. */
function portsOf(intent: AccessIntent, input: ConflictInput): [number, number][] {
  const known = input.podPorts(intent.namespace, intent.service);
  if (known !== undefined && Object.keys(known).length > 0)
    return Object.entries(known).map(([s, p]) => [Number(s), p]);
  const ports = new Set([...intent.allow, ...intent.deny].flatMap((r) => r.ports));
  return [...ports].map((p) => [p, p]);
}

class Collector {
  private readonly byKey = new Map<string, ConflictRecord>();

  add(
    kind: ConflictKind,
    object: string,
    service: string,
    port: number,
    c?: Candidate,
    reason = "",
  ) {
    const key = `${kind}|${object}|${service}`;
    let rec = this.byKey.get(key);
    if (rec === undefined) {
      rec = { kind, object, service, ports: [], principals: [], reason: reason.slice(0, 1024) };
      this.byKey.set(key, rec);
    }
    if (!rec.ports.includes(port) && rec.ports.length < 64) rec.ports.push(port);
    if (
      c !== undefined &&
      !rec.principals.includes(c.shown) &&
      rec.principals.length < MAX_PRINCIPALS
    )
      rec.principals.push(c.shown);
  }

  records(): ConflictRecord[] {
    return [...this.byKey.values()]
      .map((r) => ({
        ...r,
        ports: [...r.ports].sort((a, b) => a - b),
        principals: [...r.principals].sort(),
      }))
      .sort((a, b) =>
        `${a.service}|${a.kind}|${a.object}`.localeCompare(`${b.service}|${b.kind}|${b.object}`),
      );
  }
}

/** `Kind ns/name` of the foreign object behind a changed verdict. */
function culprit(by: string, applied: readonly string[], foreignRefs: ReadonlySet<string>) {
  if (foreignRefs.has(by)) return by;
  // A default verdict that changed: a foreign ALLOW policy now applies and matches nobody.
  return applied.find((ref) => foreignRefs.has(ref));
}

/** Every conflict in the cluster, sorted by service, kind and object. */
export function detectConflicts(input: ConflictInput): ConflictRecord[] {
  const foreign = input.objects.filter(isForeign);
  if (foreign.length === 0 || input.access.length === 0) return [];
  const all = clusterView({ id: input.clusterId, objects: input.objects });
  const foreignRefs = new Set(foreign.map(refOf));
  // What Isthmus alone enforces: the same cluster without the foreign policies.
  const isthmusOnly: ClusterView = {
    ...all,
    authorizationPolicies: all.authorizationPolicies.filter((p) => !foreignRefs.has(refOf(p))),
  };
  const found = new Collector();
  for (const intent of input.access) {
    const service = `${intent.namespace}/${intent.service}`;
    const pods = podsOf(all, intent);
    if (pods.length === 0) continue;
    const ports = portsOf(intent, input);
    const foreignHere = pods.flatMap((p) => applicablePolicies(all, p)).filter(isForeign);
    const candidates = candidatesOf(intent, input.trustDomain, foreignHere);
    for (const pod of pods)
      for (const [servicePort, podPort] of ports) {
        if (foreignHere.length > 0)
          for (const c of candidates) {
            const peer = { principal: c.principal };
            const withAll = authorizePod(all, pod, peer, podPort);
            const alone = authorizePod(isthmusOnly, pod, peer, podPort);
            if (withAll.verdict === alone.verdict) continue;
            if (withAll.verdict === "UNKNOWN" || alone.verdict === "UNKNOWN") continue;
            const object = culprit(withAll.by, withAll.objects, foreignRefs);
            if (object === undefined) continue;
            const kind = withAll.verdict === "ALLOW" ? "widens-access" : "breaks-allow";
            found.add(
              kind,
              object,
              service,
              servicePort,
              c,
              withAll.reason.replace(c.principal, c.shown),
            );
          }
        permissive(all, pod, podPort, foreignRefs, (object, reason) =>
          found.add("permissive-mtls", object, service, servicePort, undefined, reason),
        );
      }
  }
  return found.records();
}

/**
 * A foreign PeerAuthentication that lets plaintext in where, without it, the sidecar would
 * refuse it, on a port whose authorization admits a plaintext caller (a DENY of principals
 * does not match a peer without one).
 */
function permissive(
  all: ClusterView,
  pod: PodView,
  port: number,
  foreignRefs: ReadonlySet<string>,
  report: (object: string, reason: string) => void,
): void {
  const mode = peerAuthentication(all, pod, port);
  if (!mode.plaintextAccepted || mode.by === "default") return;
  const object = [...foreignRefs].find((ref) => mode.by === ref || mode.by.startsWith(`${ref} `));
  if (object === undefined) return;
  const authz = authorizePod(all, pod, { principal: undefined }, port);
  if (authz.verdict !== "ALLOW") return;
  const without: ClusterView = {
    ...all,
    peerAuthentications: all.peerAuthentications.filter((p) => refOf(p) !== object),
  };
  if (peerAuthentication(without, pod, port).plaintextAccepted) return;
  report(
    object,
    `${mode.mode} mTLS on port ${port} (set by ${mode.by}) accepts plaintext callers, and ${authz.reason}`,
  );
}
