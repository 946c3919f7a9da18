// Random multi-cluster scenes as Kubernetes objects, and what the real agent code makes of
// them: the catalog the hub gets (discovery) and the Istio objects it renders from intents.
import {
  type KubeObject as AgentObject,
  accessSelectorOf,
  buildMesh as agentMeshFacts,
  buildIdentity,
  buildService,
  endpointsOf,
  expandDefaultAccess,
  importOf,
  type LocalFacts,
  namespaceInMesh,
  type PodView,
  renderIntent,
  slimPod,
} from "@isthmus/agent";
import { istioScene, type KubeObject } from "@isthmus/kubesim";
import type { Random } from "@isthmus/model";
import type { CatalogChange, ClusterFacts, PolicyEngine } from "@isthmus/policy";
import type { ImportBackend } from "@isthmus/proto";

export const CLUSTERS = ["c1", "c2", "c3", "c4"];
const NAMESPACES = ["a", "b", "c"];
const NAMES = ["s1", "s2", "s3", "s4"];
const ACCOUNTS = ["s1", "s2", "s3", "s4", "x"];
const PORTS = [80, 8080, 9090];

export interface KubeCluster {
  id: string;
  labels: Record<string, string>;
  /** Namespaces, Services, Pods, EndpointSlices and the Istio install. */
  objects: KubeObject[];
}

/** What a trust domain setup gives the scene: every cluster's own, or some shared. */
function trustDomains(r: Random, ids: string[]): Map<string, string> {
  const shared = r.chance(0.15);
  return new Map(ids.map((id) => [id, shared && r.chance(0.5) ? "shared.local" : `${id}.local`]));
}

function subset<T>(r: Random, items: readonly T[], p: number): T[] {
  const out = items.filter(() => r.chance(p));
  return out.length > 0 ? out : [r.pick(items)];
}

interface PortPlan {
  name: string;
  port: number;
  /** Number, or the container port's name. */
  targetPort: number | string;
  podPort: number;
}

function portPlan(r: Random, named: boolean): PortPlan[] {
  return subset(r, PORTS, 0.5).map((port) => {
    const roll = r.next();
    const podPort = roll < 0.3 ? port + 1 : port;
    const name = `http-${port}`;
    return { name, port, targetPort: named && roll > 0.8 ? `tcp-${podPort}` : podPort, podPort };
  });
}

function pod(
  cluster: number,
  ns: string,
  name: string,
  ip: string,
  sa: string,
  labels: Record<string, string>,
  ports: PortPlan[],
  injected: boolean,
): KubeObject {
  // What the injector does to a pod created in an injected namespace: an istio-proxy sidecar.
  const sidecar = injected
    ? [{ name: "istio-proxy", image: "docker.io/istio/proxyv2:1.29.2" }]
    : [];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, labels: { ...labels, "security.istio.io/tlsMode": "istio" } },
    spec: {
      serviceAccountName: sa,
      containers: [
        {
          name: "app",
          image: `registry.example/c${cluster}:1`,
          ports: ports.map((p) => ({ name: `tcp-${p.podPort}`, containerPort: p.podPort })),
        },
        ...sidecar,
      ],
    },
    status: {
      phase: "Running",
      podIP: ip,
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

/** Services (a selector on `app`, ports with numeric or named targets), their pods and
 * EndpointSlices, and client pods whose labels may also match a Service's selector. */
function workloads(
  r: Random,
  ci: number,
  homes: Map<string, string>,
  injected: ReadonlySet<string>,
): KubeObject[] {
  const out: KubeObject[] = [];
  let ipCount = 0;
  const nextIp = () => `10.${ci + 1}.${Math.floor(ipCount / 200)}.${10 + (ipCount++ % 200)}`;
  const allPods: { ns: string; obj: KubeObject; ports: PortPlan[] }[] = [];
  const services: ServicePlan[] = [];
  for (const name of NAMES) {
    if (!r.chance(0.45)) continue;
    const ns = r.chance(0.85) ? homes.get(name)! : r.pick(NAMESPACES);
    // A few Services select by tier: they share pods with other Services of the namespace
    // (with numeric target ports: a named one would not exist on the other Services' pods).
    const roll = r.next();
    const selector =
      roll < 0.07 ? undefined : roll < 0.15 ? { tier: r.pick(["front", "back"]) } : { app: name };
    const ports = portPlan(r, selector?.tier === undefined);
    services.push({ ns, name, selector, ports });
    for (let i = 0, n = 1 + r.int(2); i < n; i++) {
      const labels = { app: name, tier: r.pick(["front", "back"]) };
      const sa = r.chance(0.7) ? name : r.pick(ACCOUNTS);
      const obj = pod(ci, ns, `${name}-${i}`, nextIp(), sa, labels, ports, injected.has(ns));
      allPods.push({ ns, ports, obj });
    }
  }
  for (let i = 0, n = r.int(3); i < n; i++) {
    const ns = r.pick(NAMESPACES);
    const sa = r.pick(ACCOUNTS);
    const labels = { app: r.pick(ACCOUNTS), tier: r.pick(["front", "back"]) };
    const ports = services.find((s) => s.ns === ns && s.selector?.app === labels.app)?.ports ?? [];
    const obj = pod(ci, ns, `client-${i}`, nextIp(), sa, labels, ports, injected.has(ns));
    allPods.push({ ns, ports, obj });
  }
  const selects = (sel: Record<string, string>, p: { ns: string; obj: KubeObject }, ns: string) =>
    p.ns === ns &&
    Object.entries(sel).every(
      ([k, v]) => (p.obj.metadata.labels as Record<string, string>)[k] === v,
    );
  for (const s of services) {
    // Every Service selects some pod: a decision about a Service without endpoints is vacuous.
    if (s.selector !== undefined && !allPods.some((p) => selects(s.selector!, p, s.ns)))
      s.selector = { app: s.name };
  }
  for (const s of services) {
    const selected =
      s.selector === undefined ? [] : allPods.filter((p) => selects(s.selector!, p, s.ns));
    out.push(...serviceObjects(s, selected));
  }
  return [...out, ...allPods.map((p) => p.obj)];
}

interface ServicePlan {
  ns: string;
  name: string;
  selector: Record<string, string> | undefined;
  ports: PortPlan[];
}

/** A Service and, when it has a selector, the EndpointSlice of the pods it selects. */
function serviceObjects(s: ServicePlan, selected: { obj: KubeObject }[]): KubeObject[] {
  const service: KubeObject = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: s.name, namespace: s.ns, labels: { app: s.name } },
    spec: {
      ...(s.selector === undefined ? {} : { selector: s.selector }),
      ports: s.ports.map((p) => ({
        name: p.name,
        port: p.port,
        targetPort: p.targetPort,
        protocol: "TCP",
      })),
    },
  };
  if (s.selector === undefined) return [service];
  return [
    service,
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: `${s.name}-x1`,
        namespace: s.ns,
        labels: { "kubernetes.io/service-name": s.name },
      },
      addressType: "IPv4",
      endpoints: selected.map((p) => ({
        addresses: [(p.obj.status as { podIP: string }).podIP],
        conditions: { ready: true },
        targetRef: { kind: "Pod", name: p.obj.metadata.name, namespace: s.ns },
      })),
      ports: s.ports.map((p) => ({ name: p.name, port: p.podPort, protocol: "TCP" })),
    },
  ];
}

const foreign = (
  kind: string,
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
): KubeObject => ({
  apiVersion: ["AuthorizationPolicy", "PeerAuthentication"].includes(kind)
    ? "security.istio.io/v1"
    : "networking.istio.io/v1",
  kind,
  metadata: { name, namespace: ns, ...(annotations === undefined ? {} : { annotations }) },
  spec,
});

/**
 * Objects an operator wrote beside Isthmus's that change nobody's verdict: a mesh-wide
 * PERMISSIVE PeerAuthentication, a mesh-wide ISTIO_MUTUAL DestinationRule for `*.local`, a
 * ServiceEntry for an external host, an AUDIT policy, a dry-run deny-all, a Sidecar that
 * lets every host in. The model must see through them as Istio does.
 */
function foreignObjects(r: Random): KubeObject[] {
  const out: KubeObject[] = [];
  if (r.chance(0.3))
    out.push(
      foreign("PeerAuthentication", "istio-system", "default", { mtls: { mode: "PERMISSIVE" } }),
    );
  if (r.chance(0.3))
    out.push(
      foreign("DestinationRule", "istio-system", "mesh-mtls", {
        host: "*.local",
        trafficPolicy: { tls: { mode: "ISTIO_MUTUAL" } },
      }),
    );
  if (r.chance(0.3))
    out.push(
      foreign("ServiceEntry", r.pick(NAMESPACES), "external-api", {
        hosts: ["api.example.com"],
        location: "MESH_EXTERNAL",
        resolution: "DNS",
        ports: [{ number: 443, name: "tls", protocol: "TLS" }],
      }),
    );
  if (r.chance(0.3))
    out.push(
      foreign("AuthorizationPolicy", r.pick(NAMESPACES), "audit-all", {
        action: "AUDIT",
        rules: [{}],
      }),
    );
  if (r.chance(0.3))
    out.push(
      foreign(
        "AuthorizationPolicy",
        "istio-system",
        "trial-lockdown",
        { action: "DENY", rules: [{}] },
        { "istio.io/dry-run": "true" },
      ),
    );
  if (r.chance(0.3))
    out.push(foreign("Sidecar", r.pick(NAMESPACES), "default", { egress: [{ hosts: ["*/*"] }] }));
  return out;
}

/** A random scene of 2 to 4 clusters; every mesh accepts every cluster's trust domain. */
export function randomKubeScene(r: Random): KubeCluster[] {
  const ids = CLUSTERS.slice(0, 2 + r.int(3));
  const tds = trustDomains(r, ids);
  const homes = new Map(NAMES.map((n) => [n, r.pick(NAMESPACES)]));
  return ids.map((id, ci) => {
    const network = r.chance(0.25) ? "shared-net" : `net-${id}`;
    const injected = new Set(NAMESPACES.filter(() => r.chance(0.92)));
    // Some clusters have no east-west gateway yet: the agent reports it, nothing routes in.
    const noGateway = r.chance(0.08);
    const objects: KubeObject[] = [
      ...istioScene({
        clusterId: id,
        network,
        trustDomain: tds.get(id)!,
        eastWestAddress: `192.0.2.${ci + 1}`,
        trustDomains: [...new Set(tds.values())],
      }).filter((o) => !(noGateway && o.metadata.name === "istio-eastwestgateway")),
      ...NAMESPACES.map((name) => ({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name, labels: injected.has(name) ? { "istio-injection": "enabled" } : {} },
      })),
      ...workloads(r, ci, homes, injected),
      ...foreignObjects(r),
    ];
    const labels = r.chance(0.8)
      ? { env: r.pick(["prod", "dev"]), region: r.pick(["eu", "us"]) }
      : {};
    return { id, labels, objects };
  });
}

const find = (objects: KubeObject[], kind: string, ns?: string, name?: string) =>
  objects.filter(
    (o) =>
      o.kind === kind &&
      (ns === undefined || o.metadata.namespace === ns) &&
      (name === undefined || o.metadata.name === name),
  ) as unknown as AgentObject[];

/** What the agent discovers in a cluster: the hub's cluster facts, catalog, and render facts. */
export function discover(c: KubeCluster): {
  facts: ClusterFacts;
  changes: CatalogChange[];
  local: LocalFacts;
  /** The Services a DefaultAccessIntent covers, as the agent's cache lists them. */
  accessTargets: Map<string, Readonly<Record<string, string>>>;
} {
  const o = c.objects;
  const nsLabels = (ns: string) => find(o, "Namespace", undefined, ns)[0]?.metadata.labels;
  const mesh = agentMeshFacts({
    istioNamespace: "istio-system",
    istioSystem: find(o, "Namespace", undefined, "istio-system")[0],
    meshConfig: find(o, "ConfigMap", "istio-system", "istio")[0],
    eastWestServices: find(o, "Service", "istio-system").filter(
      (s) => s.metadata.labels?.istio === "eastwestgateway",
    ) as never,
    gateways: find(o, "Gateway"),
    nodes: [],
  }).facts;
  const facts: ClusterFacts = {
    id: c.id,
    labels: c.labels,
    network: mesh.network,
    trustDomain: mesh.trustDomain,
    gateways: mesh.eastWestGateways.map((g) => ({ address: g.address, port: g.port })),
    locality: mesh.locality,
  };
  // The agent's informer keeps pods slimmed to what discovery reads.
  const pods = find(o, "Pod").map(slimPod);
  const slicesOf = (ns: string, name: string) =>
    find(o, "EndpointSlice", ns).filter(
      (s) => s.metadata.labels?.["kubernetes.io/service-name"] === name,
    ) as never[];
  const changes: CatalogChange[] = [{ kind: "cluster", cluster: facts }];
  const services = find(o, "Service").filter((s) => s.metadata.namespace !== "istio-system");
  for (const s of services) {
    const ns = s.metadata.namespace!;
    const podsInNs = pods.filter((p) => p.metadata.namespace === ns);
    changes.push({
      kind: "service",
      clusterId: c.id,
      service: buildService(s as never, slicesOf(ns, s.metadata.name), podsInNs, nsLabels(ns)),
    });
  }
  const byIdentity = new Map<string, PodView[]>();
  for (const p of pods) {
    const key = `${p.metadata.namespace}/${p.spec.serviceAccountName}`;
    byIdentity.set(key, [...(byIdentity.get(key) ?? []), p]);
  }
  for (const [key, list] of byIdentity) {
    const [ns, sa] = key.split("/") as [string, string];
    changes.push({
      kind: "identity",
      clusterId: c.id,
      identity: buildIdentity(ns, sa, list, nsLabels(ns)),
    });
  }
  const local: LocalFacts = {
    clusterId: c.id,
    trustDomain: mesh.trustDomain,
    network: mesh.network,
    locality: mesh.locality,
    endpoints(ns, name) {
      const svc = services.find((s) => s.metadata.namespace === ns && s.metadata.name === name);
      if (svc === undefined) return undefined;
      return endpointsOf(
        slicesOf(ns, name),
        namespaceInMesh(nsLabels(ns)),
        (svc.spec as never as { ports: [] }).ports,
      );
    },
  };
  const accessTargets = new Map<string, Readonly<Record<string, string>>>();
  for (const s of services) {
    const ns = s.metadata.namespace!;
    const selector = accessSelectorOf(s as never, nsLabels(ns));
    if (selector !== undefined) accessTargets.set(`${ns}/${s.metadata.name}`, selector);
  }
  return { facts, changes, local, accessTargets };
}

/** Every object the agent renders from a cluster's intents (import backends joined to their import). */
export function renderCluster(
  engine: PolicyEngine,
  clusterId: string,
  local: LocalFacts,
  accessTargets: ReadonlyMap<string, Readonly<Record<string, string>>>,
): KubeObject[] {
  const intents = expandDefaultAccess(engine.intents(clusterId).values(), accessTargets);
  const backends = new Map<string, ImportBackend[]>();
  for (const i of intents) {
    const imp = importOf(i);
    if (
      imp !== undefined &&
      i.kind.case === "importBackendIntent" &&
      i.kind.value.backend !== undefined
    )
      backends.set(imp, [...(backends.get(imp) ?? []), i.kind.value.backend]);
  }
  const out: KubeObject[] = [];
  for (const i of intents) {
    out.push(
      ...(renderIntent(i, local, backends.get(i.name) ?? []).objects as unknown as KubeObject[]),
    );
  }
  return out;
}
