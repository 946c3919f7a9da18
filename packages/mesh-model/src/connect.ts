// A connection end to end: the caller's side (route.ts), then at every destination pod the
// trust domain check, PeerAuthentication and authorization.
import { authorizePod } from "./authorization.js";
import { type ClusterView, clusterOf, type Mesh, type PodView, podPort, podsOf } from "./mesh.js";
import { peerAuthentication } from "./peer-authentication.js";
import { type Arrival, q, result, route } from "./route.js";
import { principalOf, validateTrustDomain } from "./trust-domain.js";
import {
  type AuthzResult,
  type Caller,
  type ConnectResult,
  MeshModelError,
  type PodTarget,
  type ServiceTarget,
} from "./types.js";

/** What happens at one destination pod for a peer arriving with `tls`. */
export function admit(mesh: Mesh, caller: Caller, a: Arrival): ConnectResult {
  const objects = [...a.objects];
  if (!a.pod.inMesh) {
    if (a.tls === "ISTIO_MUTUAL")
      return result(
        "TLS_FAILED",
        "client-tls",
        `pod ${a.pod.namespace}/${a.pod.name} has no sidecar to terminate Istio mTLS`,
        objects,
      );
    return result(
      "ALLOW",
      "authorization",
      `pod ${a.pod.namespace}/${a.pod.name} has no sidecar: nothing is enforced`,
      objects,
    );
  }
  const pa = peerAuthentication(a.cluster, a.pod, a.port);
  if (pa.by !== "default") objects.push(q(a.cluster, pa.by));
  const plaintext = a.tls !== "ISTIO_MUTUAL";
  if (a.tls === "OTHER_TLS")
    return result(
      "TLS_FAILED",
      "client-tls",
      "the DestinationRule originates TLS that is not Istio mTLS (SIMPLE/MUTUAL): the sidecar does not see an Istio peer",
      objects,
    );
  if (plaintext && !pa.plaintextAccepted)
    return result(
      "TLS_FAILED",
      "peer-authentication",
      `plaintext refused: mTLS mode ${pa.mode} by ${pa.by}`,
      objects,
    );
  if (!plaintext && !pa.mtlsAccepted)
    return result(
      "TLS_FAILED",
      "peer-authentication",
      `mTLS not terminated: mode ${pa.mode} by ${pa.by}`,
      objects,
    );
  let principal: string | undefined;
  if (!plaintext) {
    const callerTd = clusterOf(mesh, caller.cluster).mesh.trustDomain;
    const td = validateTrustDomain(a.cluster, callerTd);
    objects.push(q(a.cluster, a.cluster.meshConfigRef));
    if (!td.accepted) return result("TLS_FAILED", "trust-domain", td.reason, objects);
    principal = principalOf(callerTd, caller.namespace, caller.serviceAccount);
  }
  const authz = authorizePod(a.cluster, a.pod, { principal }, a.port);
  objects.push(...authz.objects.map((o) => q(a.cluster, o)));
  const where = `${a.cluster.id}/${a.pod.namespace}/${a.pod.name}:${a.port}`;
  const by = authz.by === "default" ? "" : ` (${authz.by})`;
  return result(
    authz.verdict === "UNKNOWN" ? "UNKNOWN" : authz.verdict,
    "authorization",
    `${where}: ${authz.reason}${by}`,
    objects,
  );
}

/** The host a caller uses for a backend: its own Service, or the backend's clusterset host. */
export function hostFor(caller: Caller, target: ServiceTarget): string {
  return caller.cluster === target.cluster
    ? `${target.service}.${target.namespace}.svc.cluster.local`
    : `${target.cluster}.${target.service}.${target.namespace}.svc.clusterset.local`;
}

function targetPods(
  mesh: Mesh,
  target: ServiceTarget,
): { cluster: ClusterView; pods: { pod: PodView; port: number }[] } {
  const cluster = clusterOf(mesh, target.cluster);
  const svc = cluster.services.find(
    (s) => s.namespace === target.namespace && s.name === target.service,
  );
  if (svc === undefined)
    throw new MeshModelError(
      `cluster "${target.cluster}": no Service ${target.namespace}/${target.service}`,
    );
  const sp = svc.ports.find((p) => p.port === target.port);
  if (sp === undefined)
    throw new MeshModelError(
      `cluster "${target.cluster}": Service ${target.namespace}/${target.service} has no port ${target.port}`,
    );
  const pods = podsOf(cluster, svc).flatMap((pod) => {
    const port = podPort(pod, sp);
    return port === undefined ? [] : [{ pod, port }];
  });
  return { cluster, pods };
}

/** The first result that is not ALLOW (DENY and failures before UNKNOWN), else the first ALLOW. */
function combine(results: ConnectResult[]): ConnectResult {
  return (
    results.find((r) => r.outcome !== "ALLOW" && r.outcome !== "UNKNOWN") ??
    results.find((r) => r.outcome === "UNKNOWN") ??
    results[0]!
  );
}

/**
 * The connection a caller opens to a Service of a cluster at a Service port, through the
 * host it would use (`hostFor`): ALLOW only when every pod of the target it lands on admits it.
 */
export function connect(
  mesh: Mesh,
  caller: Caller,
  target: ServiceTarget,
  host = hostFor(caller, target),
): ConnectResult {
  const { cluster, pods } = targetPods(mesh, target);
  const wanted = new Set(pods.map((p) => p.pod));
  if (pods.length === 0)
    return result(
      "UNROUTABLE",
      "routing",
      `Service ${target.namespace}/${target.service} of ${target.cluster} has no pods`,
      [],
    );
  const r = route(mesh, caller, host, target.port);
  const landed = r.arrivals.filter((a) => a.cluster === cluster && wanted.has(a.pod));
  const results = [...r.failures, ...landed.map((a) => admit(mesh, caller, a))];
  if (landed.length === 0) {
    const why = r.failures[0];
    if (why !== undefined && why.outcome !== "UNROUTABLE") return why;
    return result(
      "UNROUTABLE",
      why?.stage ?? "routing",
      `${host}:${target.port} reaches no pod of ${target.cluster}/${target.namespace}/${target.service}${why === undefined ? "" : `: ${why.reason}`}`,
      why?.objects ?? [],
    );
  }
  return combine(results);
}

/**
 * What the destination enforces by itself, for DENY decisions: a caller holding a certificate
 * of the shared root reaches each pod of the target (through the east-west gateway with any
 * `*.local` SNI known there, or directly in its own network), so only the trust domain check,
 * PeerAuthentication and authorization at the pod count. ALLOW when some pod admits it.
 */
export function attack(mesh: Mesh, caller: Caller, target: ServiceTarget): ConnectResult {
  const { cluster, pods } = targetPods(mesh, target);
  if (pods.length === 0)
    return result(
      "UNROUTABLE",
      "routing",
      `Service ${target.namespace}/${target.service} of ${target.cluster} has no pods`,
      [],
    );
  const tls = caller.plaintext === true ? "PLAINTEXT" : "ISTIO_MUTUAL";
  const results = pods.map((p) =>
    admit(mesh, caller, { cluster, pod: p.pod, port: p.port, tls, objects: [] }),
  );
  return (
    results.find((r) => r.outcome === "ALLOW") ??
    results.find((r) => r.outcome === "UNKNOWN") ??
    results[0]!
  );
}

/**
 * Istio's authorization alone, at one pod or at every pod of a Service (the first DENY wins,
 * then UNKNOWN), for a caller with mTLS (its principal) or plaintext (none).
 */
export function authorize(
  mesh: Mesh,
  caller: Caller,
  target: PodTarget | ServiceTarget,
): AuthzResult {
  const td = clusterOf(mesh, caller.cluster).mesh.trustDomain;
  const principal =
    caller.plaintext === true
      ? undefined
      : principalOf(td, caller.namespace, caller.serviceAccount);
  let cluster: ClusterView;
  let pods: { pod: PodView; port: number }[];
  if ("pod" in target) {
    cluster = clusterOf(mesh, target.cluster);
    const pod = cluster.pods.find((p) => p.namespace === target.namespace && p.name === target.pod);
    if (pod === undefined)
      throw new MeshModelError(
        `cluster "${target.cluster}": no Pod ${target.namespace}/${target.pod}`,
      );
    pods = [{ pod, port: target.port }];
  } else ({ cluster, pods } = targetPods(mesh, target));
  if (pods.length === 0)
    throw new MeshModelError(
      `cluster "${target.cluster}": Service ${target.namespace}/${"service" in target ? target.service : ""} has no pods`,
    );
  const results = pods.map(({ pod, port }) => {
    const a = authorizePod(cluster, pod, { principal }, port);
    return { ...a, reason: `${cluster.id}/${pod.namespace}/${pod.name}:${port}: ${a.reason}` };
  });
  return (
    results.find((r) => r.verdict === "DENY") ??
    results.find((r) => r.verdict === "UNKNOWN") ??
    results[0]!
  );
}
