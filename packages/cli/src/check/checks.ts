// The prerequisites of multi-network Istio that `isthmus check` verifies in one cluster, as
// pure functions of what was read (snapshot.ts). Each result says what is wrong and how to
// fix it, one line each. The east-west gateway's check is in gateway-check.ts; the
// trust-domain check, which needs every cluster, in trust-domain.ts.
import type { X509Certificate } from "node:crypto";
import type { KubeObject } from "@isthmus/agent";
import {
  holdsRoot,
  istiodFlag,
  meshSettingsOf,
  pemCertificates,
  shortFingerprint,
} from "./mesh-config.js";
import { CACERTS_SECRET, type ClusterSnapshot, type Read, ROOT_CONFIG_MAP } from "./snapshot.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  /** Stable name, as in `-o json`: cacerts, istiod-root, network, east-west-gateway,
   * trust-domain, strict-mtls (or api when the cluster cannot be read). */
  name: string;
  status: CheckStatus;
  message: string;
  /** How to fix it; set when the status is not ok. */
  fix?: string;
}

/** What the checks need besides the snapshot. */
export interface CheckContext {
  clusterId: string;
  /** The shared root, from `<certs>/root-cert.pem`. */
  root: X509Certificate;
  certsDir: string;
  /** `kubectl` with this cluster's --kubeconfig and --context. */
  kubectl: string;
  /** `isthmus install` with this cluster's flags and the certs folder. */
  install: string;
}

export const NETWORK_LABEL = "topology.istio.io/network";
export const EAST_WEST_PORT = 15443;
const RESTART_ISTIOD = (c: CheckContext, ns: string) =>
  `${c.kubectl} -n ${ns} rollout restart deploy/istiod`;

export const ok = (name: string, message: string): CheckResult => ({
  name,
  status: "ok",
  message,
});
export const fail = (name: string, message: string, fix: string): CheckResult => ({
  name,
  status: "fail",
  message,
  fix,
});

/** The value of a read, or the failed check that says it could not be read. */
export function valueOr<T>(
  r: Read<T>,
  name: string,
  what: string,
): { value: T } | { result: CheckResult } {
  if ("value" in r) return r;
  return {
    result: fail(
      name,
      `could not read ${what}: ${r.error}`,
      "run the check with credentials that may read it (it only reads)",
    ),
  };
}

/** Lists up to five names, then how many more. */
export function names(list: readonly string[]): string {
  const shown = list.slice(0, 5).join(", ");
  return list.length > 5 ? `${shown} and ${list.length - 5} more` : shown;
}

/** The root Istio's plug-in CA Secret holds: `root-cert.pem`, or `ca.crt` in the TLS form. */
function cacertsRoot(secret: KubeObject): { key: string; pem: string } | undefined {
  const data = (secret.data ?? {}) as Record<string, unknown>;
  for (const key of ["root-cert.pem", "ca.crt"]) {
    const value = data[key];
    if (typeof value === "string") return { key, pem: Buffer.from(value, "base64").toString() };
  }
  return undefined;
}

/** Whether cacerts holds the shared root (the cacerts check says why not). */
function cacertsHoldsRoot(s: ClusterSnapshot, c: CheckContext): boolean {
  const secret = "value" in s.cacerts ? s.cacerts.value : undefined;
  const root = secret === undefined ? undefined : cacertsRoot(secret);
  return root !== undefined && holdsRoot(root.pem, c.root) === "yes";
}

/** 1. `istio-system/cacerts` exists and holds the shared root. */
export function checkCacerts(s: ClusterSnapshot, c: CheckContext): CheckResult {
  const name = "cacerts";
  const what = `Secret ${s.istioNamespace}/${CACERTS_SECRET}`;
  const read = valueOr(s.cacerts, name, what);
  if ("result" in read) return read.result;
  const then = `, then ${RESTART_ISTIOD(c, s.istioNamespace)}`;
  if (read.value === undefined)
    return fail(
      name,
      `${what} not found: istiod signs with a self-signed root no other cluster trusts`,
      `${c.install}${then}`,
    );
  const root = cacertsRoot(read.value);
  if (root === undefined)
    return fail(name, `${what} has no root-cert.pem`, `${c.install} --force${then}`);
  const held = holdsRoot(root.pem, c.root);
  if (held.startsWith("invalid"))
    return fail(name, `${what}: ${root.key}: ${held}`, `${c.install} --force${then}`);
  if (held === "no") {
    const theirs = pemCertificates(root.pem)[0]!;
    return fail(
      name,
      `${what} holds another root (${shortFingerprint(theirs)}), not the shared root of ${c.certsDir} (${shortFingerprint(c.root)})`,
      `${c.install} --force${then} (workloads keep the old root until they restart)`,
    );
  }
  return ok(name, `${what} holds the shared root (${shortFingerprint(c.root)})`);
}

/** 2. istiod serves the shared root: `istio-ca-root-cert` in its namespace and every
 * namespace with sidecars holds it. */
export function checkIstiodRoot(s: ClusterSnapshot, c: CheckContext): CheckResult {
  const name = "istiod-root";
  const maps = valueOr(s.rootConfigMaps, name, `ConfigMaps ${ROOT_CONFIG_MAP}`);
  if ("result" in maps) return maps.result;
  const workloads = valueOr(s.workloadNamespaces, name, "the namespaces with sidecars");
  if ("result" in workloads) return workloads.result;
  const byNamespace = new Map(maps.value.map((m) => [m.metadata.namespace ?? "", m]));
  const namespaces = [s.istioNamespace, ...workloads.value];
  const missing: string[] = [];
  const other: string[] = [];
  for (const ns of namespaces) {
    const map = byNamespace.get(ns);
    const pem = (map?.data as Record<string, unknown> | undefined)?.["root-cert.pem"];
    if (map === undefined) missing.push(ns);
    else if (typeof pem !== "string" || holdsRoot(pem, c.root) !== "yes") other.push(ns);
  }
  if (other.length > 0) {
    const fixed = cacertsHoldsRoot(s, c);
    const reload =
      "value" in s.istiodPods
        ? istiodFlag(s.istiodPods.value, "AUTO_RELOAD_PLUGIN_CERTS")
        : undefined;
    const why = !fixed
      ? "cacerts does not hold it either (see the cacerts check)"
      : reload === "all"
        ? "istiod runs with AUTO_RELOAD_PLUGIN_CERTS=true yet has not reloaded cacerts"
        : "istiod was not restarted after cacerts changed and runs without AUTO_RELOAD_PLUGIN_CERTS";
    return fail(
      name,
      `ConfigMap ${ROOT_CONFIG_MAP} does not hold the shared root in ${names(other)}: ${why}`,
      `${fixed ? "" : "fix cacerts, then "}${RESTART_ISTIOD(c, s.istioNamespace)}`,
    );
  }
  if (missing.length > 0)
    return fail(
      name,
      `ConfigMap ${ROOT_CONFIG_MAP} is missing in ${names(missing)}: istiod has not published its root there`,
      `check that istiod runs: ${c.kubectl} -n ${s.istioNamespace} get pods -l app=istiod (and that its discoverySelectors include those namespaces)`,
    );
  return ok(
    name,
    `istiod serves the shared root in ${namespaces.length} namespace${namespaces.length === 1 ? "" : "s"} (${names(namespaces)})`,
  );
}

/** 3. The Istio namespace names the cluster's network. */
export function checkNetwork(s: ClusterSnapshot, c: CheckContext): CheckResult {
  const name = "network";
  const ns = s.istioNamespace;
  if (s.namespace === undefined)
    return fail(
      name,
      `namespace ${ns} not found: is Istio installed?`,
      `install Istio for multi-network (values.global.network set), then ${c.kubectl} label namespace ${ns} ${NETWORK_LABEL}=<network>`,
    );
  const network = s.namespace.metadata.labels?.[NETWORK_LABEL];
  if (network === undefined || network === "")
    return fail(
      name,
      `namespace ${ns} has no label ${NETWORK_LABEL}: istiod cannot tell which network this cluster's workloads are on`,
      `${c.kubectl} label namespace ${ns} ${NETWORK_LABEL}=<network of ${c.clusterId}>`,
    );
  return ok(name, `namespace ${ns} is on network ${network}`);
}

/** The mesh-wide PeerAuthentication Istio applies: no selector, in the root namespace, the
 * oldest when there are several. */
function meshWidePeerAuthentication(all: readonly KubeObject[], root: string) {
  return all
    .filter((pa) => pa.metadata.namespace === root)
    .filter((pa) => {
      const labels = (pa.spec?.selector as { matchLabels?: object } | undefined)?.matchLabels;
      return labels === undefined || labels === null || Object.keys(labels).length === 0;
    })
    .sort(
      (a, b) =>
        String(a.metadata.creationTimestamp ?? "").localeCompare(
          String(b.metadata.creationTimestamp ?? ""),
        ) || a.metadata.name.localeCompare(b.metadata.name),
    )[0];
}

/** 6. Mesh-wide STRICT mTLS (a warning: Isthmus works without it, but its default DENY is a
 * rule on mTLS peers, which a caller without Istio's mTLS does not match; see
 * docs/enforcement.md, "What is not covered"). */
export function checkStrictMtls(s: ClusterSnapshot, c: CheckContext): CheckResult {
  const name = "strict-mtls";
  const read = valueOr(s.peerAuthentications, name, "PeerAuthentications");
  if ("result" in read) return read.result;
  let root = s.istioNamespace;
  if ("value" in s.meshConfig) {
    try {
      root = meshSettingsOf(s.meshConfig.value).rootNamespace ?? root;
    } catch {
      // reported by the trust-domain check
    }
  }
  const pa = meshWidePeerAuthentication(read.value, root);
  const mode = (pa?.spec?.mtls as { mode?: unknown } | undefined)?.mode;
  if (pa !== undefined && mode === "STRICT")
    return ok(name, `PeerAuthentication ${root}/${pa.metadata.name} makes mTLS STRICT mesh-wide`);
  const why =
    "callers without Istio mTLS count as plaintext, and Isthmus's default DENY (a rule on mTLS peers) does not stop them";
  return pa === undefined
    ? {
        name,
        status: "warn",
        message: `no mesh-wide PeerAuthentication in ${root}: mTLS is PERMISSIVE, ${why}`,
        fix: `echo '{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"name":"default"},"spec":{"mtls":{"mode":"STRICT"}}}' | ${c.kubectl} -n ${root} apply -f -`,
      }
    : {
        name,
        status: "warn",
        message: `PeerAuthentication ${root}/${pa.metadata.name} sets mTLS ${typeof mode === "string" ? mode : "UNSET"} mesh-wide, not STRICT: ${why}`,
        fix: `${c.kubectl} -n ${root} patch peerauthentication ${pa.metadata.name} --type merge -p '{"spec":{"mtls":{"mode":"STRICT"}}}'`,
      };
}
