// The whole system on one machine: a hub, N kubesim clusters seeded with an Istio
// installation and sample workloads, and their agents, all in this process.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Agent, createAgent } from "@isthmus/agent";
import { createHub, defaultHubConfig, type Hub, type HubConfig } from "@isthmus/hub";
import { type KubeObject, type KubeSim, startKubeSim } from "@isthmus/kubesim";
import { type Logger, silentLogger } from "@isthmus/logging";
import {
  AdminService,
  type CallOptions,
  Code,
  type CreateClusterResponse,
  clientCredentials,
  createClient,
  isGrpcError,
} from "@isthmus/proto";
import { stringify } from "yaml";
import type { AdminClient } from "./connection.js";
import {
  SANDBOX_NAMESPACES,
  type Scene,
  type SceneCluster,
  sceneObjects,
} from "./sandbox-scene.js";

export * from "./sandbox-scene.js";

export interface SandboxCluster {
  id: string;
  labels: Record<string, string>;
  sim: KubeSim;
  kubeconfigPath: string;
  agent: Agent | undefined;
  startAgent(): Promise<void>;
  stopAgent(): Promise<void>;
}

export interface Sandbox {
  hub: Hub;
  address: string;
  adminToken: string;
  /** CLI config file (hub, token, caFile) for `isthmus --config`. */
  configPath: string;
  clusters: SandboxCluster[];
  /** An admin client and the call options carrying the token. */
  admin(): { client: AdminClient; call: CallOptions };
  /** Objects Isthmus wrote into a cluster (managed-by isthmus), sorted. */
  owned(clusterId: string): KubeObject[];
  stopHub(): Promise<void>;
  startHub(): Promise<void>;
  close(): Promise<void>;
}

export interface SandboxOptions {
  scene: Scene;
  /** Folder for the hub's data, kubeconfigs and the CLI config. */
  dir: string;
  logger?: Logger;
  /** Hub settings on top of the sandbox defaults. */
  hub?: Partial<HubConfig>;
  /** Extra objects per cluster id, loaded before the agents start (e.g. cacerts). */
  extraObjects?: Record<string, KubeObject[]>;
  /** Agent catalog debounce (ms). */
  agentDebounceMs?: number;
  /** Agents' retry timer of failed objects (ms; 0 disables it). Default the agent's, 30 s. */
  agentRetryIntervalMs?: number;
  /** Clusters whose agents forward their ConnectionPolicy objects (the CRD must be loaded). */
  policySourceAgents?: string[];
  /** PEM of the shared root certificate, written into each mesh config's `caCertificates`. */
  rootCertPem?: string;
}

const ISTHMUS_KINDS: [string, string][] = [
  ["networking.istio.io/v1", "ServiceEntry"],
  ["networking.istio.io/v1", "DestinationRule"],
  ["security.istio.io/v1", "AuthorizationPolicy"],
];

/**
 * Registers a scene cluster. A folder of an earlier sandbox keeps the hub's state (policies,
 * clusters); a cluster of the scene registered there is deleted and registered afresh, since
 * its simulated cluster, and the agent identity it held, did not survive that sandbox.
 */
async function registerCluster(
  client: AdminClient,
  call: CallOptions,
  sc: SceneCluster,
): Promise<CreateClusterResponse> {
  const request = { cluster: { id: sc.id, labels: sc.labels ?? {} } };
  try {
    return await client.createCluster(request, call);
  } catch (err) {
    if (!isGrpcError(err) || err.code !== Code.ALREADY_EXISTS) throw err;
    await client.deleteCluster({ id: sc.id }, call);
    return await client.createCluster(request, call);
  }
}

/** Whether `dir` holds the hub state of an earlier sandbox (which startSandbox reuses). */
export function hasSandboxState(dir: string): boolean {
  return existsSync(join(dir, "hub", "state.json"));
}

/** The isthmus CLI config (`isthmus.yaml`) and the hub's CA, for commands run against the
 * sandbox; returns the config's path. */
async function writeSandboxConfig(
  dir: string,
  address: string,
  adminToken: string,
  caPem: string,
): Promise<string> {
  const configPath = join(dir, "isthmus.yaml");
  await writeFile(join(dir, "hub-ca.pem"), caPem);
  await writeFile(
    configPath,
    stringify({
      currentContext: "sandbox",
      contexts: [
        {
          name: "sandbox",
          hub: address,
          token: adminToken,
          caFile: join(dir, "hub-ca.pem"),
        },
      ],
    }),
    { mode: 0o600 },
  );
  return configPath;
}

interface SimClusterInput {
  options: SandboxOptions;
  index: number;
  scene: SceneCluster;
  admin: { client: AdminClient; call: CallOptions };
  address: string;
  caPem: string;
  logger: Logger;
}

/** One scene cluster: a kubesim seeded with the scene, registered at the hub, and its agent
 * (not started yet). */
async function startSimCluster(input: SimClusterInput): Promise<SandboxCluster> {
  const { options, index: i, scene: sc, admin, address, caPem, logger } = input;
  const { client, call } = admin;
  const sim = await startKubeSim({ name: sc.id, namespaces: SANDBOX_NAMESPACES });
  let created: CreateClusterResponse;
  let kubeconfigPath: string;
  try {
    sim.load([
      ...sceneObjects(
        options.scene,
        i,
        options.rootCertPem === undefined ? {} : { rootCertPem: options.rootCertPem },
      ),
      ...(options.extraObjects?.[sc.id] ?? []),
    ]);
    kubeconfigPath = await sim.writeKubeconfig(join(options.dir, `${sc.id}.kubeconfig`));
    created = await registerCluster(client, call, sc);
  } catch (err) {
    // Not yet in `clusters`, which close() stops: a simulated cluster left running
    // would keep the process alive after the error.
    await sim.close();
    throw err;
  }
  const cluster: SandboxCluster = {
    id: sc.id,
    labels: sc.labels ?? {},
    sim,
    kubeconfigPath,
    agent: undefined,
    async startAgent() {
      if (cluster.agent !== undefined) return;
      cluster.agent = createAgent({
        clusterId: sc.id,
        hubAddress: address,
        hubCaPem: caPem,
        bootstrapToken: created.bootstrapToken,
        kubeconfig: sim.kubeconfig(),
        logger: logger.child({ component: "agent" }),
        ...(options.agentDebounceMs === undefined ? {} : { debounceMs: options.agentDebounceMs }),
        ...(options.agentRetryIntervalMs === undefined
          ? {}
          : { retryIntervalMs: options.agentRetryIntervalMs }),
        ...(options.policySourceAgents?.includes(sc.id) === true ? { policySource: true } : {}),
      });
      await cluster.agent.start();
    },
    async stopAgent() {
      await cluster.agent?.stop();
      cluster.agent = undefined;
    },
  };
  return cluster;
}

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const logger = options.logger ?? silentLogger;
  const adminToken = randomBytes(24).toString("base64url");
  let hubConfig: HubConfig = {
    ...defaultHubConfig,
    listen: "127.0.0.1:0",
    metricsListen: "127.0.0.1:0",
    dataDir: join(options.dir, "hub"),
    adminTokens: [{ name: "sandbox", role: "admin", token: adminToken }],
    warmupSeconds: 30,
    graceSeconds: 60,
    ...options.hub,
  };
  let hub: Hub | undefined = await createHub({
    config: hubConfig,
    logger: logger.child({ component: "hub" }),
  });
  // Restarts reuse the port, so that agents find the hub again.
  hubConfig = { ...hubConfig, listen: `127.0.0.1:${hub.port}` };
  const address = `localhost:${hub.port}`;
  const caPem = hub.caPem;
  const configPath = await writeSandboxConfig(options.dir, address, adminToken, caPem);

  const admin = () => {
    const client = createClient(AdminService, address, clientCredentials({ caPem }));
    return {
      client,
      call: { metadata: { authorization: `Bearer ${adminToken}` }, timeoutMs: 15_000 },
    };
  };

  const clusters: SandboxCluster[] = [];
  const sandbox: Sandbox = {
    get hub() {
      if (hub === undefined) throw new Error("sandbox: the hub is stopped");
      return hub;
    },
    address,
    adminToken,
    configPath,
    clusters,
    admin,
    owned(clusterId) {
      const c = clusters.find((x) => x.id === clusterId);
      if (c === undefined) throw new Error(`sandbox: no cluster ${clusterId}`);
      return ISTHMUS_KINDS.flatMap(([apiVersion, kind]) =>
        c.sim.list(apiVersion, kind, { labelSelector: "app.kubernetes.io/managed-by=isthmus" }),
      ).sort((a, b) =>
        `${a.kind}/${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(
          `${b.kind}/${b.metadata?.namespace}/${b.metadata?.name}`,
        ),
      );
    },
    async stopHub() {
      await hub?.close();
      hub = undefined;
    },
    async startHub() {
      hub ??= await createHub({ config: hubConfig, logger: logger.child({ component: "hub" }) });
    },
    async close() {
      for (const c of clusters) await c.stopAgent();
      await hub?.close();
      hub = undefined;
      for (const c of clusters) await c.sim.close();
    },
  };

  try {
    const { client, call } = admin();
    try {
      for (const [i, sc] of options.scene.clusters.entries()) {
        clusters.push(
          await startSimCluster({
            options,
            index: i,
            scene: sc,
            admin: { client, call },
            address,
            caPem,
            logger,
          }),
        );
      }
    } finally {
      client.close();
    }
    await Promise.all(clusters.map((c) => c.startAgent()));
  } catch (err) {
    await sandbox.close();
    throw err;
  }
  return sandbox;
}

/** Resolves once every cluster's agent reported its catalog and holds the current desired
 * config, with nothing pending or in flight (polls the admin API). */
export async function waitConverged(sandbox: Sandbox, timeoutMs = 30_000): Promise<void> {
  const { client, call } = sandbox.admin();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const s = await client.getStatus({}, call);
      const pending = s.clusters.filter((c) => !c.inSync || c.catalogRevision === 0n);
      if (!s.warmingUp && pending.length === 0) return;
      if (Date.now() > deadline) {
        const why = (c: (typeof pending)[number]) =>
          !c.connected
            ? "disconnected"
            : c.catalogRevision === 0n
              ? "no catalog yet"
              : c.pendingNonce
                ? "delta in flight"
                : c.refused[0] !== undefined
                  ? `refused ${c.refused[0].intentName}: ${c.refused[0].message}`
                  : "changes pending";
        const waiting = pending.map((c) => `${c.cluster?.id} (${why(c)})`).join(", ") || "warm-up";
        throw new Error(`sandbox: not converged after ${timeoutMs} ms: waiting for ${waiting}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    client.close();
  }
}
