// kubesim as a process: `tsx packages/kubesim/src/main.ts --cluster east --cluster west --istio`
// starts one simulated cluster per --cluster (each on its own port), writes a kubeconfig per
// cluster, prints one JSON line per cluster ({"cluster","url","kubeconfig"}) on stdout once all
// listen, and runs until SIGINT or SIGTERM. `--workload shop/web,port=8080,replicas=3` adds a
// running sample workload (Service, Ready pods with IPs, Endpoints, EndpointSlice) to every cluster.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { KubeSim } from "./kubesim.js";
import { startKubeSim } from "./kubesim.js";
import { istioScene, parseWorkload, sampleApp } from "./scenes.js";

const usage = `usage: kubesim [--cluster NAME]... [--host ADDR] [--port N] [--tls] [--token T]
               [--kubeconfig-dir DIR] [--seed FILE]... [--istio] [--history N]
               [--workload NAMESPACE/NAME[,port=N][,replicas=N][,portName=S]]...`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cluster: { type: "string", multiple: true },
      host: { type: "string" },
      port: { type: "string" },
      tls: { type: "boolean" },
      token: { type: "string" },
      "kubeconfig-dir": { type: "string" },
      seed: { type: "string", multiple: true },
      workload: { type: "string", multiple: true },
      istio: { type: "boolean" },
      history: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const names = values.cluster ?? ["kubesim"];
  // Read before any cluster starts, so that a wrong spec fails fast.
  const workloads = (values.workload ?? []).map((spec, k) => parseWorkload(spec, k));
  if (values.port !== undefined && names.length > 1) {
    throw new Error("kubesim: --port needs a single --cluster (the others would collide)");
  }
  const dir = resolve(values["kubeconfig-dir"] ?? ".");
  await mkdir(dir, { recursive: true });
  const sims: KubeSim[] = [];
  const stop = async () => {
    await Promise.all(sims.map((s) => s.close()));
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  for (const [i, name] of names.entries()) {
    const sim = await startKubeSim({
      name,
      ...(values.host === undefined ? {} : { host: values.host }),
      ...(values.port === undefined ? {} : { port: Number(values.port) }),
      ...(values.tls ? { tls: true } : {}),
      ...(values.token === undefined ? {} : { token: values.token }),
      ...(values.history === undefined ? {} : { historySize: Number(values.history) }),
    });
    sims.push(sim);
    if (values.istio) {
      sim.load(
        istioScene({
          clusterId: name,
          network: `network-${name}`,
          trustDomain: "cluster.local",
          eastWestAddress: `192.0.2.${10 + i}`,
        }),
      );
    }
    for (const w of workloads) sim.load(sampleApp(w));
    for (const file of values.seed ?? []) await sim.loadFile(file);
    const kubeconfig = await sim.writeKubeconfig(join(dir, `${name}.kubeconfig`));
    process.stdout.write(`${JSON.stringify({ cluster: name, url: sim.url, kubeconfig })}\n`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`kubesim: ${err instanceof Error ? err.message : String(err)}\n${usage}\n`);
  process.exit(1);
});
