// 4. The east-west gateway: an Istio Gateway that passes mTLS through on 15443 for every
// `*.local` name (AUTO_PASSTHROUGH), and a LoadBalancer Service with an address in front of
// the pods that Gateway configures, labelled with the cluster's network so that istiod
// announces it as that network's gateway.
import type { KubeObject } from "@isthmus/agent";
import {
  type CheckContext,
  type CheckResult,
  EAST_WEST_PORT,
  fail,
  NETWORK_LABEL,
  ok,
  valueOr,
} from "./checks.js";
import { meshSettingsOf } from "./mesh-config.js";
import type { ClusterSnapshot } from "./snapshot.js";

const NAME = "east-west-gateway";
const SAMPLES = "samples/multicluster of the Istio release";

interface GatewayServer {
  port?: { number?: unknown };
  tls?: { mode?: unknown };
  hosts?: unknown;
}

const ref = (o: KubeObject) => `${o.metadata.namespace ?? "default"}/${o.metadata.name}`;

/** Why the Gateway's server on 15443 does not pass `*.local` through; undefined: it does.
 * No server on 15443 at all gives "none". */
function serverProblem(gateway: KubeObject): string | undefined {
  const servers = (gateway.spec?.servers ?? []) as GatewayServer[];
  const on = Array.isArray(servers)
    ? servers.filter((s) => s?.port?.number === EAST_WEST_PORT)
    : [];
  if (on.length === 0) return "none";
  const problems = on.map((s) => {
    const mode = s.tls?.mode;
    const hosts = Array.isArray(s.hosts) ? (s.hosts as unknown[]) : [];
    if (mode !== "AUTO_PASSTHROUGH")
      return `its server on port ${EAST_WEST_PORT} has tls.mode ${typeof mode === "string" ? mode : "unset"}, not AUTO_PASSTHROUGH`;
    if (!hosts.includes("*.local") && !hosts.includes("*"))
      return `its server on port ${EAST_WEST_PORT} has hosts [${hosts.join(", ")}], not *.local`;
    return undefined;
  });
  return problems.includes(undefined) ? undefined : problems[0];
}

/** Services whose selector holds every label of the Gateway's: every pod they send traffic
 * to runs the Gateway's configuration (a Gateway selects pods in any namespace). */
function servicesBehind(gateway: KubeObject, services: readonly KubeObject[]): KubeObject[] {
  const selector = (gateway.spec?.selector ?? {}) as Record<string, unknown>;
  const pairs = Object.entries(selector);
  if (pairs.length === 0) return [];
  return services.filter((svc) => {
    const own = (svc.spec?.selector ?? {}) as Record<string, unknown>;
    return pairs.every(([k, v]) => own[k] === v);
  });
}

/** Why a Service in front of the gateway does not serve other clusters, with the fix. */
function serviceProblem(
  svc: KubeObject,
  network: string | undefined,
  gatewayServiceNames: readonly string[],
  c: CheckContext,
): { message: string; fix: string } | undefined {
  const spec = (svc.spec ?? {}) as { type?: unknown; ports?: { port?: unknown }[] };
  const kubectl = `${c.kubectl} -n ${svc.metadata.namespace ?? "default"}`;
  if (spec.type !== "LoadBalancer")
    return {
      message: `Service ${ref(svc)} is of type ${String(spec.type ?? "ClusterIP")}, not LoadBalancer: other clusters cannot reach it`,
      fix: `${kubectl} patch service ${svc.metadata.name} -p '{"spec":{"type":"LoadBalancer"}}'`,
    };
  if (!(spec.ports ?? []).some((p) => p?.port === EAST_WEST_PORT))
    return {
      message: `Service ${ref(svc)} does not expose port ${EAST_WEST_PORT}`,
      fix: `add port ${EAST_WEST_PORT} (name tls) to Service ${ref(svc)}, as ${SAMPLES} does`,
    };
  const ingress = ((svc.status as { loadBalancer?: { ingress?: unknown } } | undefined)
    ?.loadBalancer?.ingress ?? []) as { ip?: unknown; hostname?: unknown }[];
  const addresses = Array.isArray(ingress)
    ? ingress.map((i) => i?.ip ?? i?.hostname).filter((a) => typeof a === "string" && a !== "")
    : [];
  if (addresses.length === 0)
    return {
      message: `Service ${ref(svc)} has no load balancer address (status.loadBalancer.ingress is empty)`,
      fix: `see why the cluster gives it none: ${kubectl} describe service ${svc.metadata.name}`,
    };
  const labelled = svc.metadata.labels?.[NETWORK_LABEL];
  const named = gatewayServiceNames.some((n) =>
    n.startsWith(`${svc.metadata.name}.${svc.metadata.namespace ?? "default"}.`),
  );
  if (network !== undefined && labelled !== network && !named)
    return {
      message: `Service ${ref(svc)} ${labelled === undefined ? `has no label ${NETWORK_LABEL}` : `is labelled ${NETWORK_LABEL}=${labelled}`}: istiod does not announce it as the gateway of network ${network}`,
      fix: `${kubectl} label --overwrite service ${svc.metadata.name} ${NETWORK_LABEL}=${network}`,
    };
  return undefined;
}

const addressOf = (svc: KubeObject) => {
  const first = (
    svc.status as { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } }
  ).loadBalancer?.ingress?.[0];
  return first?.ip ?? first?.hostname ?? "";
};

export function checkEastWestGateway(s: ClusterSnapshot, c: CheckContext): CheckResult {
  const gateways = valueOr(s.gateways, NAME, "Istio Gateways");
  if ("result" in gateways) return gateways.result;
  const services = valueOr(s.services, NAME, "Services");
  if ("result" in services) return services.result;
  const network = s.namespace?.metadata.labels?.[NETWORK_LABEL] || undefined;
  let gatewayServiceNames: readonly string[] = [];
  if ("value" in s.meshConfig) {
    try {
      gatewayServiceNames = meshSettingsOf(s.meshConfig.value).gatewayServiceNames;
    } catch {
      // reported by the trust-domain check, which cannot do without the mesh config
    }
  }

  const withPort = gateways.value
    .map((g) => ({ g, problem: serverProblem(g) }))
    .filter((x) => x.problem !== "none");
  const passing = withPort.filter((x) => x.problem === undefined).map((x) => x.g);
  if (passing.length === 0) {
    const expose = `apply the cross-network Gateway of ${SAMPLES} (expose-services.yaml: port ${EAST_WEST_PORT}, tls.mode AUTO_PASSTHROUGH, hosts *.local): ${c.kubectl} -n ${s.istioNamespace} apply -f expose-services.yaml`;
    const near = withPort[0];
    return near === undefined
      ? fail(NAME, `no Istio Gateway has a server on port ${EAST_WEST_PORT}`, expose)
      : fail(NAME, `Gateway ${ref(near.g)}: ${near.problem}`, expose);
  }

  let first: { message: string; fix: string } | undefined;
  for (const gateway of passing) {
    for (const svc of servicesBehind(gateway, services.value)) {
      const problem = serviceProblem(svc, network, gatewayServiceNames, c);
      if (problem === undefined)
        return ok(
          NAME,
          `Gateway ${ref(gateway)} (port ${EAST_WEST_PORT}, AUTO_PASSTHROUGH, *.local) behind LoadBalancer Service ${ref(svc)} at ${addressOf(svc)}`,
        );
      first ??= problem;
    }
  }
  if (first !== undefined) return fail(NAME, first.message, first.fix);
  const selector = Object.entries((passing[0]!.spec?.selector ?? {}) as Record<string, unknown>)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(",");
  return fail(
    NAME,
    `no Service sends traffic to the pods of Gateway ${ref(passing[0]!)} (no Service selector holds ${selector || "its empty selector"})`,
    `install Istio's east-west gateway: ${SAMPLES}, gen-eastwest-gateway.sh --network ${network ?? "<network>"} | istioctl install -y -f -`,
  );
}
