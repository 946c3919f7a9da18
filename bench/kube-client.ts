// The agent's own REST path (node:http, plain JSON: packages/agent/src/kube/client.ts) against
// @kubernetes/client-node 2.x (fetch/undici, model classes) for the three calls the agent
// makes in bulk: paged lists at start, server-side apply of rendered objects, and watch
// events. Same kubesim, same objects, the two clients interleaved round by round so that
// both see the same machine load. kubesim runs in this process: its cost is in every
// figure alike, so compare the ratios.

import { createKubeClient, type KubeClient, SERVICE_ENTRIES, SERVICES } from "@isthmus/agent";
import { istioScene, type KubeSim, startKubeSim } from "@isthmus/kubesim";
import {
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
} from "@kubernetes/client-node";
import type { BenchOptions, Figure } from "./harness.js";

const LIST_OWN = "list Services, pages of 500: own client";
const LIST_CN = "list Services, pages of 500: client-node 2.x";
const APPLY_OWN = "server-side apply of a ServiceEntry: own client";
const APPLY_CN = "server-side apply of a ServiceEntry: client-node 2.x";
const WATCH_OWN = "watch: ConfigMap events from first write to last event: own client";
const WATCH_CN = "watch: ConfigMap events from first write to last event: client-node 2.x";

function serviceEntry(i: number): KubernetesObject & Record<string, unknown> {
  return {
    apiVersion: "networking.istio.io/v1",
    kind: "ServiceEntry",
    metadata: { name: `bench-${i % 50}`, namespace: "default" },
    spec: {
      hosts: [`svc-${i % 50}.default.svc.clusterset.local`],
      location: "MESH_INTERNAL",
      resolution: "STATIC",
      ports: [{ number: 8080, name: "http", protocol: "HTTP" }],
      endpoints: [{ address: `10.0.${i % 250}.${(i * 7) % 250}`, ports: { http: 8080 } }],
    },
  };
}

async function listOwn(client: KubeClient): Promise<number> {
  return (await client.list(SERVICES, { pageSize: 500 })).items.length;
}

async function listClientNode(api: CoreV1Api): Promise<number> {
  let count = 0;
  let next: string | undefined;
  do {
    const page = await api.listServiceForAllNamespaces({
      limit: 500,
      ...(next === undefined ? {} : { _continue: next }),
    });
    count += page.items.length;
    next = page.metadata?._continue || undefined;
  } while (next !== undefined);
  return count;
}

/** Milliseconds from the first of `events` ConfigMap writes to the last event received. */
async function timeWatch(
  sim: KubeSim,
  events: number,
  tag: string,
  open: (onEvent: () => void) => Promise<() => void>,
): Promise<number> {
  let seen = 0;
  let finish: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const stop = await open(() => {
    seen += 1;
    if (seen === events) finish();
  });
  const started = performance.now();
  for (let i = 0; i < events; i += 1) {
    sim.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `${tag}-${i}`, namespace: "watched" },
      data: { i: String(i) },
    });
    // A turn per write, as separate changes arrive from the API server.
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  await all;
  const elapsed = performance.now() - started;
  stop();
  return elapsed;
}

async function fill(sim: KubeSim, services: number): Promise<void> {
  for (let i = 0; i < services; i += 1) {
    sim.create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: `svc-${i}`, namespace: "default", labels: { app: `svc-${i}` } },
      spec: { selector: { app: `svc-${i}` }, ports: [{ name: "http", port: 8080 }] },
    });
  }
}

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  const services = smoke ? 50 : 5000;
  const lists = smoke ? 2 : 20;
  const applies = smoke ? 10 : 500;
  const watches = smoke ? 1 : 10;
  const events = smoke ? 20 : 2000;
  const sim = await startKubeSim({ namespaces: ["default", "watched"] });
  sim.load(
    istioScene({
      clusterId: "bench",
      network: "n",
      trustDomain: "t.local",
      eastWestAddress: "192.0.2.1",
    }),
  );
  await fill(sim, services);
  const kc = new KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  const own = createKubeClient(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const samples: Record<string, number[]> = {};
  const add = (name: string, ms: number) => {
    samples[name] ??= [];
    samples[name].push(ms);
  };
  const time = async (name: string, action: () => Promise<unknown>) => {
    const started = performance.now();
    await action();
    add(name, performance.now() - started);
  };
  try {
    for (let i = 0; i < lists; i += 1) {
      await time(LIST_OWN, () => listOwn(own));
      await time(LIST_CN, () => listClientNode(core));
    }
    for (let i = 0; i < applies; i += 1) {
      await time(APPLY_OWN, () =>
        own.apply(SERVICE_ENTRIES, serviceEntry(i) as never, {
          fieldManager: "bench",
          force: true,
        }),
      );
      await time(APPLY_CN, () =>
        objects.patch(
          serviceEntry(i + 1),
          undefined,
          undefined,
          "bench",
          true,
          PatchStrategy.ServerSideApply,
        ),
      );
    }
    const path = "/api/v1/namespaces/watched/configmaps";
    for (let round = 0; round < watches; round += 1) {
      add(
        WATCH_OWN,
        await timeWatch(sim, events, `own-${round}`, async (onEvent) => {
          const query = { resourceVersion: sim.resourceVersion() };
          const controller = await own.watch(
            path,
            query,
            (type) => type === "ADDED" && onEvent(),
            () => undefined,
          );
          return () => controller.abort();
        }),
      );
      add(
        WATCH_CN,
        await timeWatch(sim, events, `cn-${round}`, async (onEvent) => {
          const query = { resourceVersion: sim.resourceVersion() };
          const controller = await new Watch(kc).watch(
            path,
            query,
            (type) => type === "ADDED" && onEvent(),
            () => undefined,
          );
          return () => controller.abort();
        }),
      );
    }
  } finally {
    own.close();
    await sim.close();
  }
  return [
    { name: LIST_OWN, unit: "ms", samples: samples[LIST_OWN]! },
    { name: LIST_CN, unit: "ms", samples: samples[LIST_CN]!, reference: LIST_OWN },
    { name: APPLY_OWN, unit: "ms", samples: samples[APPLY_OWN]! },
    { name: APPLY_CN, unit: "ms", samples: samples[APPLY_CN]!, reference: APPLY_OWN },
    { name: WATCH_OWN, unit: "ms", samples: samples[WATCH_OWN]! },
    { name: WATCH_CN, unit: "ms", samples: samples[WATCH_CN]!, reference: WATCH_OWN },
  ];
}
