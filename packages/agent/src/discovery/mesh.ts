import { create } from "@bufbuild/protobuf";
import { type MeshFacts, MeshFactsSchema, type Warning, WarningSchema } from "@isthmus/proto";
import { parse } from "yaml";
import type { KubeObject } from "../kube-object.js";
import type { ServiceView } from "./objects.js";

export const NETWORK_LABEL = "topology.istio.io/network";
export const DEFAULT_TRUST_DOMAIN = "cluster.local";
export const EAST_WEST_GATEWAY_LABEL = "istio";
export const EAST_WEST_GATEWAY_VALUE = "eastwestgateway";
export const CROSS_NETWORK_GATEWAY = "cross-network-gateway";
export const REGION_LABEL = "topology.kubernetes.io/region";
export const ZONE_LABEL = "topology.kubernetes.io/zone";

export interface MeshInputs {
  istioNamespace: string;
  /** The Istio system namespace object, if it exists. */
  istioSystem: KubeObject | undefined;
  /** The `istio` mesh ConfigMap, if it exists. */
  meshConfig: KubeObject | undefined;
  /** Services labelled istio=eastwestgateway. */
  eastWestServices: readonly ServiceView[];
  /** Istio Gateways (networking.istio.io). */
  gateways: readonly KubeObject[];
  nodes: readonly KubeObject[];
  /** Locality from configuration; overrides the nodes' topology labels. */
  locality?: string;
}

export interface MeshView {
  facts: MeshFacts;
  warnings: Warning[];
}

/** Trust domain from the `mesh` key of the istio ConfigMap (YAML), default cluster.local. */
export function trustDomainOf(meshConfig: KubeObject | undefined): {
  trustDomain: string;
  problem?: string;
} {
  const text = (meshConfig?.data as Record<string, string> | undefined)?.mesh;
  if (text === undefined) return { trustDomain: DEFAULT_TRUST_DOMAIN };
  try {
    const mesh = parse(text) as { trustDomain?: unknown } | null;
    const td = mesh?.trustDomain;
    return { trustDomain: typeof td === "string" && td !== "" ? td : DEFAULT_TRUST_DOMAIN };
  } catch (err) {
    return {
      trustDomain: DEFAULT_TRUST_DOMAIN,
      problem: `ConfigMap istio: key "mesh" is not valid YAML (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); assuming trust domain ${DEFAULT_TRUST_DOMAIN}`,
    };
  }
}

function localityOf(nodes: readonly KubeObject[]): string {
  const regions = new Set<string>();
  const zones = new Set<string>();
  for (const n of nodes) {
    const r = n.metadata.labels?.[REGION_LABEL];
    const z = n.metadata.labels?.[ZONE_LABEL];
    if (r !== undefined) regions.add(r);
    if (z !== undefined) zones.add(z);
  }
  if (regions.size !== 1) return "";
  const region = [...regions][0]!;
  return zones.size === 1 ? `${region}/${[...zones][0]!}` : region;
}

function gatewayPort(svc: ServiceView): number {
  const ports = svc.spec.ports ?? [];
  return (
    (ports.find((p) => p.port === 15443) ?? ports.find((p) => p.name === "tls"))?.port ?? 15443
  );
}

/** Mesh facts and setup warnings, from the cache: what is missing is reported, not guessed. */
export function buildMesh(input: MeshInputs): MeshView {
  const warnings: Warning[] = [];
  const warn = (code: string, message: string) =>
    warnings.push(create(WarningSchema, { code, message }));
  const ns = input.istioNamespace;

  const network = input.istioSystem?.metadata.labels?.[NETWORK_LABEL] ?? "";
  if (input.istioSystem === undefined) {
    warn("no-istio-namespace", `namespace ${ns} does not exist: is Istio installed?`);
  } else if (network === "") {
    warn(
      "missing-network-label",
      `namespace ${ns} has no ${NETWORK_LABEL} label: label it with this cluster's Istio network (kubectl label namespace ${ns} ${NETWORK_LABEL}=<network>)`,
    );
  }

  const td = trustDomainOf(input.meshConfig);
  if (td.problem !== undefined) warn("invalid-mesh-config", td.problem);

  const gateways: { address: string; port: number }[] = [];
  if (input.eastWestServices.length === 0) {
    warn(
      "no-east-west-gateway",
      `no Service labelled ${EAST_WEST_GATEWAY_LABEL}=${EAST_WEST_GATEWAY_VALUE}: install Istio's east-west gateway so that other clusters can reach this one`,
    );
  }
  for (const svc of [...input.eastWestServices].sort((a, b) =>
    a.metadata.name.localeCompare(b.metadata.name),
  )) {
    const port = gatewayPort(svc);
    const ingress = svc.status?.loadBalancer?.ingress ?? [];
    const addresses = ingress.map((i) => i.ip ?? i.hostname ?? "").filter((a) => a !== "");
    if (addresses.length === 0) {
      warn(
        "east-west-gateway-no-address",
        `east-west gateway Service ${svc.metadata.namespace}/${svc.metadata.name} has no load balancer address yet (status.loadBalancer.ingress is empty)`,
      );
    }
    for (const address of addresses) gateways.push({ address, port });
  }

  const passthrough = input.gateways.some((g) => {
    const servers =
      (g.spec as { servers?: { tls?: { mode?: string } }[] } | undefined)?.servers ?? [];
    return (
      g.metadata.name === CROSS_NETWORK_GATEWAY ||
      servers.some((s) => s.tls?.mode === "AUTO_PASSTHROUGH")
    );
  });
  if (!passthrough) {
    warn(
      "missing-cross-network-gateway",
      `no Istio Gateway "${CROSS_NETWORK_GATEWAY}" (TLS AUTO_PASSTHROUGH on port 15443) exposes the east-west gateway: remote clusters cannot reach services here`,
    );
  }

  const facts = create(MeshFactsSchema, {
    network,
    trustDomain: td.trustDomain,
    eastWestGateways: gateways.slice(0, 16),
    locality: input.locality ?? localityOf(input.nodes),
  });
  return { facts, warnings };
}
