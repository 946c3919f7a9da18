import {
  type ClusterCache,
  createClusterCache,
  createKubeClient,
  type KubeClient,
  kubeConfigFromString,
} from "@isthmus/agent";
import { istioScene, type KubeSim, sampleApp, startKubeSim } from "@isthmus/kubesim";

export interface TestCluster {
  sim: KubeSim;
  client: KubeClient;
  close(): Promise<void>;
}

export async function startCluster(options: { istio?: boolean } = {}): Promise<TestCluster> {
  const sim = await startKubeSim({ name: "prod-eu" });
  if (options.istio !== false) {
    sim.load(
      istioScene({
        clusterId: "prod-eu",
        network: "net-eu",
        trustDomain: "prod-eu.example",
        eastWestAddress: "198.51.100.10",
      }),
    );
  }
  const client = createKubeClient(kubeConfigFromString(sim.kubeconfig()));
  return {
    sim,
    client,
    close: async () => {
      client.close();
      await sim.close();
    },
  };
}

export function loadApps(sim: KubeSim): void {
  sim.load(
    sampleApp({
      name: "payments-api",
      namespace: "payments",
      replicas: 2,
      podIpPrefix: "10.244.1",
    }),
  );
  sim.load(
    sampleApp({
      name: "frontend",
      namespace: "web",
      replicas: 3,
      podIpPrefix: "10.244.2",
      portName: "http-web",
      port: 80,
    }),
  );
}

/** Immediate backoff for tests: no sleeping, restarts on the next tick. */
export const noDelay = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function cacheFor(
  c: TestCluster,
  extra: Partial<Parameters<typeof createClusterCache>[0]> = {},
): ClusterCache {
  return createClusterCache({ client: c.client, clusterId: "prod-eu", delay: noDelay, ...extra });
}

/** Polls `check` on every tick until it stops throwing (bounded by mocha's timeout). */
export async function eventually<T>(check: () => T | Promise<T>, what = "condition"): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 2000; i++) {
    try {
      return await check();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  throw new Error(`${what} never held: ${last instanceof Error ? last.message : String(last)}`);
}
