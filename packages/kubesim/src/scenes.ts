import { stringify } from "yaml";
import type { KubeObject } from "./object.js";

export interface IstioSceneOptions {
  clusterId: string;
  network: string;
  trustDomain: string;
  /** IP address of the east-west gateway's load balancer. */
  eastWestAddress: string;
  /** Mesh ID written to the mesh config. Default `mesh1`. */
  meshId?: string;
  /**
   * Trust domains whose peers this mesh accepts besides its own: written as
   * `caCertificates: [{ pem: rootCertPem, trustDomains }]` into the mesh config, so that Istio
   * validates peers of the other clusters without aliasing their principals. Default none.
   */
  trustDomains?: string[];
  /** PEM of the shared root certificate for that `caCertificates` entry, if known. */
  rootCertPem?: string;
  /** Environment of the istiod container (e.g. PILOT_SKIP_VALIDATE_TRUST_DOMAIN). Default none. */
  istiodEnv?: { name: string; value: string }[];
}

/**
 * What a cluster with Istio installed for multi-network looks like to a client:
 * `istio-system` labelled with its network, the `istio` mesh ConfigMap, the istiod
 * Deployment, the east-west gateway Service with its load balancer address, and the
 * `cross-network-gateway` Gateway.
 */
export function istioScene(o: IstioSceneOptions): KubeObject[] {
  const mesh = {
    trustDomain: o.trustDomain,
    defaultConfig: {
      meshId: o.meshId ?? "mesh1",
      proxyMetadata: { ISTIO_META_CLUSTER_ID: o.clusterId, ISTIO_META_NETWORK: o.network },
    },
    rootNamespace: "istio-system",
    ...(o.trustDomains === undefined || o.trustDomains.length === 0
      ? {}
      : {
          caCertificates: [
            {
              ...(o.rootCertPem === undefined ? {} : { pem: o.rootCertPem }),
              trustDomains: [...o.trustDomains],
            },
          ],
        }),
  };
  const networkLabel = { "topology.istio.io/network": o.network };
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "istio-system", labels: { ...networkLabel } },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "istio",
        namespace: "istio-system",
        labels: {
          "istio.io/rev": "default",
          "install.operator.istio.io/owning-resource": "unknown",
        },
      },
      data: { mesh: stringify(mesh), meshNetworks: "networks: {}\n" },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "istiod", namespace: "istio-system", labels: { app: "istiod" } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "istiod" } },
        template: {
          metadata: { labels: { app: "istiod" } },
          spec: {
            serviceAccountName: "istiod",
            containers: [
              {
                name: "discovery",
                image: "docker.io/istio/pilot:1.29.2",
                env: (o.istiodEnv ?? []).map((e) => ({ ...e })),
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: "istio-eastwestgateway",
        namespace: "istio-system",
        labels: { app: "istio-eastwestgateway", istio: "eastwestgateway", ...networkLabel },
      },
      spec: {
        type: "LoadBalancer",
        selector: { app: "istio-eastwestgateway", istio: "eastwestgateway", ...networkLabel },
        ports: [
          { name: "status-port", port: 15021, targetPort: 15021, protocol: "TCP" },
          { name: "tls", port: 15443, targetPort: 15443, protocol: "TCP" },
          { name: "tls-istiod", port: 15012, targetPort: 15012, protocol: "TCP" },
          { name: "tls-webhook", port: 15017, targetPort: 15017, protocol: "TCP" },
        ],
      },
      status: { loadBalancer: { ingress: [{ ip: o.eastWestAddress }] } },
    },
    {
      apiVersion: "networking.istio.io/v1",
      kind: "Gateway",
      metadata: { name: "cross-network-gateway", namespace: "istio-system" },
      spec: {
        selector: { istio: "eastwestgateway" },
        servers: [
          {
            port: { number: 15443, name: "tls", protocol: "TLS" },
            tls: { mode: "AUTO_PASSTHROUGH" },
            hosts: ["*.local"],
          },
        ],
      },
    },
  ];
}

export interface SampleAppOptions {
  name: string;
  namespace: string;
  /** Number of ready pods. Default 2. */
  replicas?: number;
  /** Service and container port. Default 8080. */
  port?: number;
  /** Port name (protocol prefix matters to Istio). Default `http`. */
  portName?: string;
  /** Service account name. Default the app name. */
  serviceAccount?: string;
  /** First three octets of the pod IPs; pod i gets `<prefix>.<10+i>`. Default `10.244.0`. */
  podIpPrefix?: string;
  /** Extra labels on the pods (and the service selector stays `app`). */
  labels?: Record<string, string>;
  image?: string;
  /** The node the pods run on, also returned as a Ready Node object. Default `node-1`. */
  nodeName?: string;
  /** Locality of that node (`topology.kubernetes.io/region` and `zone` labels). */
  region?: string;
  zone?: string;
}

/** The Ready Node sample pods run on, with its locality labels when given. */
function sampleNode(
  nodeName: string,
  region: string | undefined,
  zone: string | undefined,
  started: string,
): KubeObject {
  const nodeLabels: Record<string, string> = { "kubernetes.io/hostname": nodeName };
  if (region !== undefined) nodeLabels["topology.kubernetes.io/region"] = region;
  if (zone !== undefined) nodeLabels["topology.kubernetes.io/zone"] = zone;
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: nodeName, labels: nodeLabels },
    spec: {},
    status: {
      addresses: [
        { type: "InternalIP", address: "192.168.0.10" },
        { type: "Hostname", address: nodeName },
      ],
      conditions: [{ type: "Ready", status: "True", lastTransitionTime: started }],
    },
  };
}

/** The Endpoints and EndpointSlice the controllers would write for `pods` behind a Service. */
function endpointsOf(
  name: string,
  namespace: string,
  pods: KubeObject[],
  portName: string,
  port: number,
  nodeName: string,
): KubeObject[] {
  const ips = pods.map((p) => (p.status as { podIP: string }).podIP);
  return [
    {
      apiVersion: "v1",
      kind: "Endpoints",
      metadata: { name, namespace, labels: { app: name } },
      subsets: [
        {
          addresses: pods.map((p, i) => ({
            ip: ips[i],
            nodeName,
            targetRef: { kind: "Pod", name: p.metadata.name, namespace },
          })),
          ports: [{ name: portName, port, protocol: "TCP" }],
        },
      ],
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: {
        name: `${name}-abc12`,
        namespace,
        labels: {
          "kubernetes.io/service-name": name,
          "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        },
      },
      addressType: "IPv4",
      endpoints: pods.map((p, i) => ({
        addresses: [ips[i]],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName,
        targetRef: { kind: "Pod", name: p.metadata.name, namespace },
      })),
      ports: [{ name: portName, port, protocol: "TCP" }],
    },
  ];
}

/**
 * A sample workload as the kubelet and controllers would leave it: an injection-enabled
 * namespace, the Node it runs on, a ServiceAccount, a Service, N running and Ready pods with
 * IPs, the Endpoints and the EndpointSlice for them.
 */
export function sampleApp(o: SampleAppOptions): KubeObject[] {
  const replicas = o.replicas ?? 2;
  const port = o.port ?? 8080;
  const portName = o.portName ?? "http";
  const sa = o.serviceAccount ?? o.name;
  const prefix = o.podIpPrefix ?? "10.244.0";
  const labels = { app: o.name, version: "v1", ...o.labels };
  const started = "2026-01-01T00:00:00Z";
  const nodeName = o.nodeName ?? "node-1";
  const node = sampleNode(nodeName, o.region, o.zone, started);
  const pods: KubeObject[] = Array.from({ length: replicas }, (_, i) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${o.name}-${i}`,
      namespace: o.namespace,
      labels: {
        ...labels,
        "security.istio.io/tlsMode": "istio",
        "service.istio.io/canonical-name": o.name,
      },
    },
    spec: {
      serviceAccountName: sa,
      nodeName,
      containers: [
        {
          name: o.name,
          image: o.image ?? "registry.example/sample:1",
          ports: [{ containerPort: port, name: portName, protocol: "TCP" }],
        },
        { name: "istio-proxy", image: "docker.io/istio/proxyv2:1.29.2" },
      ],
    },
    status: {
      phase: "Running",
      podIP: `${prefix}.${10 + i}`,
      podIPs: [{ ip: `${prefix}.${10 + i}` }],
      hostIP: "192.168.0.10",
      startTime: started,
      qosClass: "BestEffort",
      conditions: [
        { type: "Initialized", status: "True", lastTransitionTime: started },
        { type: "Ready", status: "True", lastTransitionTime: started },
        { type: "ContainersReady", status: "True", lastTransitionTime: started },
        { type: "PodScheduled", status: "True", lastTransitionTime: started },
      ],
    },
  }));
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: o.namespace, labels: { "istio-injection": "enabled" } },
    },
    node,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa, namespace: o.namespace } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: o.name, namespace: o.namespace, labels: { app: o.name } },
      spec: {
        selector: { app: o.name },
        ports: [{ name: portName, port, targetPort: port, protocol: "TCP" }],
      },
    },
    ...pods,
    ...endpointsOf(o.name, o.namespace, pods, portName, port, nodeName),
  ];
}

/**
 * Reads a workload spec, `<namespace>/<name>[,port=N][,replicas=N][,portName=S]`, as given to
 * `kubesim --workload`, into `sampleApp` options. The k-th workload of a cluster (`index`) gets
 * pod IPs `10.244.<k>.10` and up, so that several workloads in one cluster do not share IPs.
 */
export function parseWorkload(spec: string, index = 0): SampleAppOptions {
  const [target = "", ...settings] = spec.split(",");
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z]([-a-z0-9]*[a-z0-9])?)$/.exec(target);
  if (m === null) {
    throw new Error(
      `workload ${JSON.stringify(spec)}: expected <namespace>/<name>[,port=N][,replicas=N][,portName=S]`,
    );
  }
  const o: SampleAppOptions = { namespace: m[1]!, name: m[3]!, podIpPrefix: `10.244.${index}` };
  for (const setting of settings) {
    const [key, value = ""] = setting.split("=", 2);
    const n = Number(value);
    if ((key === "port" && n >= 1 && n <= 65535) || (key === "replicas" && n >= 0 && n <= 200)) {
      if (Number.isInteger(n)) {
        o[key] = n;
        continue;
      }
    } else if (key === "portName" && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(value)) {
      o.portName = value;
      continue;
    }
    throw new Error(
      `workload ${JSON.stringify(spec)}: ${JSON.stringify(setting)} is not port=1..65535, replicas=0..200 or portName=<DNS label>`,
    );
  }
  return o;
}
