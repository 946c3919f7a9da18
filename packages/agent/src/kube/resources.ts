/** The REST collections the agent reads and writes. */
export interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

const r = (
  group: string,
  version: string,
  plural: string,
  kind: string,
  namespaced = true,
): Resource => ({
  group,
  version,
  plural,
  kind,
  namespaced,
});

export const SERVICES = r("", "v1", "services", "Service");
export const PODS = r("", "v1", "pods", "Pod");
export const NAMESPACES = r("", "v1", "namespaces", "Namespace", false);
export const NODES = r("", "v1", "nodes", "Node", false);
export const CONFIG_MAPS = r("", "v1", "configmaps", "ConfigMap");
export const SECRETS = r("", "v1", "secrets", "Secret");
export const ENDPOINT_SLICES = r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice");
export const GATEWAYS = r("networking.istio.io", "v1", "gateways", "Gateway");
export const SERVICE_ENTRIES = r("networking.istio.io", "v1", "serviceentries", "ServiceEntry");
export const DESTINATION_RULES = r(
  "networking.istio.io",
  "v1",
  "destinationrules",
  "DestinationRule",
);
export const AUTHORIZATION_POLICIES = r(
  "security.istio.io",
  "v1",
  "authorizationpolicies",
  "AuthorizationPolicy",
);
export const PEER_AUTHENTICATIONS = r(
  "security.istio.io",
  "v1",
  "peerauthentications",
  "PeerAuthentication",
);

/** The Istio kinds the agent renders, by kind. */
export const RENDERED_KINDS: Readonly<Record<string, Resource>> = {
  ServiceEntry: SERVICE_ENTRIES,
  DestinationRule: DESTINATION_RULES,
  AuthorizationPolicy: AUTHORIZATION_POLICIES,
};

export function apiVersionOf(res: Resource): string {
  return res.group === "" ? res.version : `${res.group}/${res.version}`;
}

/** The collection path, across namespaces when `namespace` is undefined. */
export function collectionPath(res: Resource, namespace?: string): string {
  const base = res.group === "" ? `/api/${res.version}` : `/apis/${res.group}/${res.version}`;
  if (!res.namespaced || namespace === undefined) return `${base}/${res.plural}`;
  return `${base}/namespaces/${encodeURIComponent(namespace)}/${res.plural}`;
}

export function objectPath(res: Resource, name: string, namespace?: string): string {
  return `${collectionPath(res, namespace)}/${encodeURIComponent(name)}`;
}
