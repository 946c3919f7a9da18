// PeerAuthentication after istio.io's PeerAuthentication reference: mesh (root namespace, no
// selector), namespace (no selector) and workload (selector) policies; `portLevelMtls` only on
// workload policies, keyed by the workload's port; UNSET inherits; default PERMISSIVE; among
// several policies of one level the oldest wins; checked against istiod's
// ComposePeerAuthentication (pilot/pkg/security/authn/policy_applier.go).
import { asRecord, matchesLabels, str } from "./fields.js";
import { type ClusterView, type PodView, refOf } from "./mesh.js";
import type { KubeObject, MtlsMode, PeerAuthnResult } from "./types.js";

const MODES = new Set(["STRICT", "PERMISSIVE", "DISABLE"]);

function oldestFirst(a: KubeObject, b: KubeObject): number {
  const ta = a.metadata?.creationTimestamp ?? "";
  const tb = b.metadata?.creationTimestamp ?? "";
  return ta < tb ? -1 : ta > tb ? 1 : refOf(a).localeCompare(refOf(b));
}

function modeOf(v: unknown): MtlsMode | undefined {
  const m = str(asRecord(v).mode);
  return MODES.has(m) ? (m as MtlsMode) : undefined;
}

/** A selector with labels makes a workload policy; none or empty `matchLabels` a namespace one. */
function hasSelector(p: KubeObject): boolean {
  return Object.keys(asRecord(asRecord(asRecord(p.spec).selector).matchLabels)).length > 0;
}

/** The effective mTLS mode of a pod's sidecar on one of its ports. */
export function peerAuthentication(
  cluster: ClusterView,
  pod: PodView,
  port: number,
): PeerAuthnResult {
  const all = [...cluster.peerAuthentications].sort(oldestFirst);
  const root = cluster.mesh.rootNamespace;
  const mesh = all.find((p) => p.metadata?.namespace === root && !hasSelector(p));
  const namespace = all.find((p) => p.metadata?.namespace === pod.namespace && !hasSelector(p));
  // Istio ignores selector policies of the root namespace (ComposePeerAuthentication).
  const workload = all.find((p) => {
    const ns = p.metadata?.namespace;
    if (ns !== pod.namespace || ns === root || !hasSelector(p)) return false;
    const labels = asRecord(asRecord(asRecord(p.spec).selector).matchLabels) as Record<
      string,
      string
    >;
    return matchesLabels(labels, pod.labels);
  });
  let mode: MtlsMode = "PERMISSIVE";
  let by = "default";
  for (const p of [mesh, namespace, workload]) {
    const m = p === undefined ? undefined : modeOf(asRecord(p.spec).mtls);
    if (m !== undefined) {
      mode = m;
      by = refOf(p!);
    }
  }
  if (workload !== undefined) {
    const portLevel = asRecord(asRecord(workload.spec).portLevelMtls)[String(port)];
    const m = modeOf(portLevel);
    if (m !== undefined) {
      mode = m;
      by = `${refOf(workload)} (portLevelMtls ${port})`;
    }
  }
  return {
    mode,
    by,
    plaintextAccepted: mode !== "STRICT",
    mtlsAccepted: mode !== "DISABLE",
  };
}
