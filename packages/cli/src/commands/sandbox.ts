import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { defaultScene, loadScene, startSandbox, waitConverged } from "../sandbox.js";

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 50)
    throw new InvalidArgumentError(`invalid cluster count "${value}": give 1 to 50`);
  return n;
}

/** `isthmus sandbox`: a hub, N kubesim clusters and their agents on this machine. */
export function registerSandboxCommand(program: Command): void {
  program
    .command("sandbox")
    .description(
      "run a hub, simulated clusters (kubesim, with Istio and sample workloads) and their agents until interrupted",
    )
    .option(
      "--clusters <n>",
      "number of clusters (default scene: prod-eu, prod-us, dev, cluster-4…)",
      parseCount,
      3,
    )
    .option(
      "--scene <file>",
      "scene YAML: clusters: [{id, labels, apps: [{name, namespace, replicas, port, portName, serviceAccount}]}]",
    )
    .option(
      "--dir <dir>",
      "folder for kubeconfigs, the hub's data and the CLI config (default: a new temporary folder)",
    )
    .action(async (flags: { clusters: number; scene?: string; dir?: string }) => {
      const { createLogger } = await import("@isthmus/logging");
      const scene =
        flags.scene === undefined ? defaultScene(flags.clusters) : await loadScene(flags.scene);
      const dir = flags.dir ?? (await mkdtemp(join(tmpdir(), "isthmus-sandbox-")));
      const sandbox = await startSandbox({
        scene,
        dir,
        logger: createLogger({ component: "sandbox", level: "warn" }),
      });
      await waitConverged(sandbox, 60_000);
      const out = [
        `sandbox running: hub at ${sandbox.address}, ${sandbox.clusters.length} clusters`,
        "",
        ...sandbox.clusters.map(
          (c) =>
            `  ${c.id.padEnd(12)} kubectl --kubeconfig ${c.kubeconfigPath} get serviceentries,authorizationpolicies -A`,
        ),
        "",
        `CLI: isthmus status --config ${sandbox.configPath}`,
        "Ctrl-C stops everything.",
      ];
      process.stdout.write(`${out.join("\n")}\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      await sandbox.close();
    });
}
