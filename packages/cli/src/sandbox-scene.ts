// The sandbox's scene: its clusters and their sample apps (the default scene, or one read
// from a YAML file), and the objects each simulated cluster starts with.
import { readFile } from "node:fs/promises";
import { istioScene, type KubeObject, type SampleAppOptions, sampleApp } from "@isthmus/kubesim";
import { parse } from "yaml";
import { defaultTrustDomain } from "./commands/istio-trust.js";

/** An app of a scene cluster: `sampleApp`'s options but the pod IPs, which the sandbox picks. */
export type SceneApp = Pick<
  SampleAppOptions,
  "name" | "namespace" | "replicas" | "port" | "portName" | "serviceAccount"
>;

export interface SceneCluster {
  id: string;
  labels?: Record<string, string>;
  apps?: SceneApp[];
}

export interface Scene {
  clusters: SceneCluster[];
}

/** The default scene: two prod clusters (frontend in prod-eu, payments-api in prod-us), a dev
 * cluster with its own frontend, then empty clusters up to `count`. */
export function defaultScene(count: number): Scene {
  const clusters: SceneCluster[] = [
    {
      id: "prod-eu",
      labels: { env: "prod", region: "eu" },
      apps: [{ name: "frontend", namespace: "web" }],
    },
    {
      id: "prod-us",
      labels: { env: "prod", region: "us" },
      apps: [
        {
          name: "payments-api",
          namespace: "payments",
          port: 8443,
          portName: "https",
          serviceAccount: "payments",
        },
      ],
    },
    {
      id: "dev",
      labels: { env: "dev", region: "eu" },
      apps: [{ name: "frontend", namespace: "web" }],
    },
  ];
  for (let i = clusters.length + 1; i <= count; i++)
    clusters.push({ id: `cluster-${i}`, labels: { env: "dev" }, apps: [] });
  return { clusters: clusters.slice(0, count) };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Reads a scene file: `clusters: [{id, labels, apps: [{name, namespace, replicas, port, portName, serviceAccount}]}]`. */
export async function loadScene(path: string): Promise<Scene> {
  let data: unknown;
  try {
    data = parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  const clusters = (data as { clusters?: unknown })?.clusters;
  if (!Array.isArray(clusters) || clusters.length === 0)
    throw new Error(`${path}: clusters: expected a non-empty list`);
  const ids = new Set<string>();
  clusters.forEach((c: SceneCluster, i) => {
    if (typeof c?.id !== "string" || !DNS_LABEL.test(c.id))
      throw new Error(`${path}: clusters[${i}].id: expected a DNS label`);
    if (ids.has(c.id)) throw new Error(`${path}: clusters[${i}].id: "${c.id}" appears twice`);
    ids.add(c.id);
    (c.apps ?? []).forEach((a, j) => {
      for (const key of ["name", "namespace"] as const) {
        if (typeof a?.[key] !== "string" || !DNS_LABEL.test(a[key])) {
          throw new Error(`${path}: clusters[${i}].apps[${j}].${key}: expected a DNS label`);
        }
      }
    });
  });
  return { clusters };
}

/** Namespaces every sandbox cluster starts with. */
export const SANDBOX_NAMESPACES = ["default", "kube-system", "istio-system", "isthmus-system"];

/** What the sandbox loads into the scene's cluster number `index` (besides
 * SANDBOX_NAMESPACES): the Istio installation, the cluster's apps, and every namespace of the
 * scene. Exported so that a cluster can be served by another process with the same content.
 * Each cluster keeps its own trust domain (`<cluster>.local`) and its mesh config accepts the
 * trust domains of every scene cluster under the shared root (`caCertificates[].trustDomains`),
 * so that cross-cluster mTLS passes Istio's trust domain validation while principals stay
 * exact (no `trustDomainAliases`). */
export function sceneObjects(
  scene: Scene,
  index: number,
  options: { rootCertPem?: string } = {},
): KubeObject[] {
  const sc = scene.clusters[index];
  if (sc === undefined) throw new Error(`sandbox: no cluster number ${index} in the scene`);
  const n = index + 1;
  const sceneNamespaces = [
    ...new Set(scene.clusters.flatMap((c) => (c.apps ?? []).map((a) => a.namespace))),
  ].sort();
  return [
    ...istioScene({
      clusterId: sc.id,
      network: `network-${sc.id}`,
      trustDomain: defaultTrustDomain(sc.id),
      eastWestAddress: `192.0.2.${n}`,
      trustDomains: scene.clusters.map((c) => defaultTrustDomain(c.id)),
      ...(options.rootCertPem === undefined ? {} : { rootCertPem: options.rootCertPem }),
    }),
    ...(sc.apps ?? []).flatMap((a, j) =>
      sampleApp({
        name: a.name,
        namespace: a.namespace,
        replicas: a.replicas ?? 2,
        port: a.port ?? 8080,
        portName: a.portName ?? "http",
        serviceAccount: a.serviceAccount ?? a.name,
        podIpPrefix: `10.${n}.${j}`,
      }),
    ),
    // Namespace sameness (as in the Multi-Cluster Services API): every namespace of the
    // scene exists in every cluster, so that imports have a namespace to live in.
    ...sceneNamespaces.map((name) => ({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name, labels: { "istio-injection": "enabled" } },
    })),
  ];
}
