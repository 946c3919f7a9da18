// Startup benchmark: what the images run, compiled dist/ with plain node (no tsx, no source
// condition), timed from spawn to the point a user or the kubelet sees it working:
// `isthmus --version` exiting, the hub and an enrolled agent answering /readyz with 200.
// Also the size of what the image adds to node:24-slim, computed from the lock file and the
// installed packages (no Docker engine here). Needs `npm run build` first.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHub, defaultHubConfig } from "@isthmus/hub";
import { istioScene, startKubeSim } from "@isthmus/kubesim";
import { AdminService, clientCredentials, createClient } from "@isthmus/proto";
import { type BenchOptions, type Figure, IMAGE_ENV } from "./harness.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BIN = join(ROOT, "packages/cli/bin/isthmus.js");
const ADMIN_TOKEN = "bench-admin-token-0123456789";

/** The environment of the image: no source condition, no tsx loader. */
function imageEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...IMAGE_ENV, NODE_ENV: "production" };
  delete env.NODE_OPTIONS;
  return env;
}

/** Milliseconds from spawn to exit (code 0). */
function timeRun(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`node ${args.join(" ")} exited with ${code}: ${stderr}`));
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Spawns `isthmus <args>`; resolves with the milliseconds until GET /readyz on `port`
 * answered 200, then stops the process. Polls every 10 ms: the figure's resolution. */
async function timeToReady(args: string[], port: number): Promise<number> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], {
    env: imageEnv(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<never>((_, reject) =>
    child.on("exit", (code) => reject(new Error(`isthmus ${args[0]} exited (${code}): ${stderr}`))),
  );
  try {
    for (;;) {
      const ready = await Promise.race([
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        ),
        exited,
      ]);
      if (ready) return performance.now() - started;
      await Promise.race([new Promise((r) => setTimeout(r, 10)), exited]);
    }
  } finally {
    child.removeAllListeners("exit");
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

/** Bytes of a file or folder tree (apparent sizes, as an image layer stores them), without
 * the files `skip` names. */
async function treeSize(
  path: string,
  skip: (path: string) => boolean = () => false,
): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return skip(path) ? 0 : info.size;
  let total = 0;
  for (const entry of await readdir(path)) total += await treeSize(join(path, entry), skip);
  return total;
}

/** What the Dockerfile's `modules` stage deletes: type declarations and source maps, which
 * plain node never reads. */
const PRUNED = (path: string) =>
  /\.d\.[cm]?ts$|\.map$/.test(path) || path.includes("node_modules/@types/");

interface ImageBytes {
  /** Production packages as `npm ci --omit=dev` installs them. */
  modules: number;
  /** The same after the Dockerfile's pruning. */
  pruned: number;
  /** Each package's dist/ and package.json, the launcher. */
  dist: number;
}

/** What the runtime stage adds to node:24-slim, computed from the lock file (entries without
 * `dev: true`) and the installed packages; uncompressed. */
async function imageBytes(): Promise<ImageBytes> {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; link?: boolean }>;
  };
  const bytes: ImageBytes = { modules: 0, pruned: 0, dist: 0 };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // Nested copies are counted within their parent package's folder.
    if (!path.startsWith("node_modules/") || path.lastIndexOf("node_modules/") > 0) continue;
    if (entry.dev || entry.link || !existsSync(join(ROOT, path))) continue;
    bytes.modules += await treeSize(join(ROOT, path));
    bytes.pruned += await treeSize(join(ROOT, path), PRUNED);
  }
  bytes.dist = await treeSize(join(ROOT, "packages/cli/bin"));
  for (const name of await readdir(join(ROOT, "packages"))) {
    bytes.dist += await treeSize(join(ROOT, "packages", name, "dist"));
    bytes.dist += await treeSize(join(ROOT, "packages", name, "package.json"));
  }
  return bytes;
}

async function hubAndAgent(restarts: number): Promise<{ hub: number[]; agent: number[] }> {
  const dir = await mkdtemp(join(tmpdir(), "isthmus-bench-startup-"));
  const tokenFile = join(dir, "admin-token");
  await writeFile(tokenFile, ADMIN_TOKEN);
  const hubData = join(dir, "hub");
  const hubArgs = (metrics: number) => [
    "hub",
    "--listen",
    "127.0.0.1:0",
    "--metrics-listen",
    `127.0.0.1:${metrics}`,
    "--data-dir",
    hubData,
    "--admin-token-file",
    tokenFile,
  ];
  // The first start creates the control-plane CA; the figure is a restart, as in a pod
  // (with no restarts asked for, the smoke workload, the first start stands in).
  const firstHubPort = await freePort();
  const firstHub = await timeToReady(hubArgs(firstHubPort), firstHubPort);
  const hub: number[] = restarts === 0 ? [firstHub] : [];
  for (let i = 0; i < restarts; i += 1) {
    const port = await freePort();
    hub.push(await timeToReady(hubArgs(port), port));
  }

  // The agent dials an in-process hub and watches an in-process kubesim with Istio.
  const server = await createHub({
    config: {
      ...defaultHubConfig,
      listen: "127.0.0.1:0",
      metricsListen: "",
      dataDir: join(dir, "agent-hub"),
      adminTokens: [{ name: "bench", role: "admin", token: ADMIN_TOKEN }],
      warmupSeconds: 0,
    },
  });
  const sim = await startKubeSim({ namespaces: ["default", "isthmus-system"] });
  sim.load(
    istioScene({
      clusterId: "bench",
      network: "bench-net",
      trustDomain: "bench.local",
      eastWestAddress: "192.0.2.10",
    }),
  );
  try {
    const admin = createClient(
      AdminService,
      `localhost:${server.port}`,
      clientCredentials({ caPem: server.caPem }),
    );
    const created = await admin.createCluster(
      { cluster: { id: "bench" } },
      { metadata: { authorization: `Bearer ${ADMIN_TOKEN}` } },
    );
    await writeFile(join(dir, "bootstrap-token"), created.bootstrapToken);
    await writeFile(join(dir, "hub-ca.crt"), server.caPem);
    const kubeconfig = await sim.writeKubeconfig(join(dir, "kubeconfig"));
    const agentArgs = (port: number) => [
      "agent",
      "--cluster-id=bench",
      `--hub=localhost:${server.port}`,
      `--hub-ca-file=${join(dir, "hub-ca.crt")}`,
      `--bootstrap-token-file=${join(dir, "bootstrap-token")}`,
      `--kubeconfig=${kubeconfig}`,
      "--namespace=isthmus-system",
      `--listen=127.0.0.1:${port}`,
    ];
    // The first start enrolls (token -> identity Secret); the figure is a restart.
    const first = await freePort();
    const firstAgent = await timeToReady(agentArgs(first), first);
    const agent: number[] = restarts === 0 ? [firstAgent] : [];
    for (let i = 0; i < restarts; i += 1) {
      const port = await freePort();
      agent.push(await timeToReady(agentArgs(port), port));
    }
    return { hub, agent };
  } finally {
    await sim.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const NODE = "node -e 0 (Node's own start)";
const VERSION = "isthmus --version (dist, plain node)";
const HELP = "isthmus --help (dist, every command module loaded)";
const HELP_TSX = "isthmus --help (sources through tsx, as the image ran before)";
const MODULES = "image: production node_modules, as installed";
const PRUNED_MODULES = "image: production node_modules, pruned";

export default async function run({ smoke }: BenchOptions): Promise<Figure[]> {
  if (!existsSync(join(ROOT, "packages/cli/dist/main.js"))) {
    throw new Error("startup: packages/cli/dist/ is missing; run `npm run build` first");
  }
  const runs = smoke ? 1 : 15;
  const env = imageEnv();
  const sourceEnv = {
    ...env,
    NODE_OPTIONS: `--conditions=@isthmus/source --import=${import.meta.resolve("tsx")}`,
  };
  const samples: Record<string, number[]> = {
    [NODE]: [],
    [VERSION]: [],
    [HELP]: [],
    [HELP_TSX]: [],
  };
  // Interleaved, so that all of them see the same machine load.
  for (let i = 0; i < runs; i += 1) {
    samples[NODE]!.push(await timeRun(["-e", "0"], env));
    samples[VERSION]!.push(await timeRun([BIN, "--version"], env));
    samples[HELP]!.push(await timeRun([BIN, "--help"], env));
    samples[HELP_TSX]!.push(await timeRun([BIN, "--help"], sourceEnv));
  }
  const { hub, agent } = await hubAndAgent(smoke ? 0 : 10);
  const size = await imageBytes();
  const MB = 1e6;
  return [
    { name: NODE, unit: "ms", samples: samples[NODE]! },
    { name: VERSION, unit: "ms", samples: samples[VERSION]!, reference: NODE },
    { name: HELP, unit: "ms", samples: samples[HELP]!, reference: VERSION },
    { name: HELP_TSX, unit: "ms", samples: samples[HELP_TSX]!, reference: HELP },
    { name: "hub start to ready (restart, existing data dir)", unit: "ms", samples: hub },
    { name: "agent start to ready (restart, enrolled, Istio scene)", unit: "ms", samples: agent },
    { name: MODULES, unit: "MB", samples: [size.modules / MB] },
    { name: PRUNED_MODULES, unit: "MB", samples: [size.pruned / MB], reference: MODULES },
    {
      name: "image: dist/ of every package + launcher",
      unit: "MB",
      samples: [size.dist / MB],
      reference: PRUNED_MODULES,
    },
    { name: "image: added to node:24-slim", unit: "MB", samples: [(size.pruned + size.dist) / MB] },
  ];
}
