import { realpathSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError } from "commander";
import {
  defaultScene,
  hasSandboxState,
  loadScene,
  type Sandbox,
  startSandbox,
  waitConverged,
} from "../sandbox.js";

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
      "folder for kubeconfigs, the hub's data and the CLI config (default: a new temporary folder); a folder of an earlier sandbox keeps its policies",
    )
    .action(async (flags: { clusters: number; scene?: string; dir?: string }) => {
      const { createLogger } = await import("@isthmus/logging");
      const scene =
        flags.scene === undefined ? defaultScene(flags.clusters) : await loadScene(flags.scene);
      const dir =
        flags.dir === undefined
          ? await mkdtemp(join(tmpdir(), "isthmus-sandbox-"))
          : resolve(flags.dir);
      await mkdir(dir, { recursive: true });
      const reused = hasSandboxState(dir);
      if (reused)
        process.stderr.write(
          `reusing ${dir} of an earlier sandbox: its policies are kept, its clusters start anew (use a new --dir for a clean start)\n`,
        );
      // Ctrl-C while starting stops too, once what started is closed.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const sandbox = await startSandbox({
        scene,
        dir,
        logger: createLogger({ component: "sandbox", level: "warn" }),
      });
      try {
        if (!stop.signal.aborted) {
          await waitConverged(sandbox, 60_000);
          process.stdout.write(`${banner(sandbox, reused)}\n`);
          await new Promise<void>((resolve) => {
            if (stop.signal.aborted) resolve();
            stop.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      } finally {
        process.stdout.write("stopping the sandbox\n");
        await sandbox.close();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}

/** How to run this CLI from any folder: `isthmus` when that name on PATH is this CLI,
 * else this Node binary and the launcher's absolute path (the `node` on PATH may be older). */
export function cliCommand(): string {
  const launcher = fileURLToPath(new URL("../../bin/isthmus.js", import.meta.url));
  for (const folder of (process.env.PATH ?? "").split(delimiter)) {
    if (folder === "") continue;
    try {
      if (realpathSync(join(folder, "isthmus")) === realpathSync(launcher)) return "isthmus";
    } catch {
      // not in this folder
    }
  }
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return `${quote(process.execPath)} ${quote(launcher)}`;
}

function banner(sandbox: Sandbox, reused: boolean): string {
  const cli = cliCommand();
  return [
    `sandbox running: hub at ${sandbox.address}, ${sandbox.clusters.length} clusters${reused ? " (hub state reused)" : ""}`,
    "",
    ...sandbox.clusters.map(
      (c) =>
        `  ${c.id.padEnd(12)} kubectl --kubeconfig ${c.kubeconfigPath} get serviceentries,authorizationpolicies -A`,
    ),
    "",
    "CLI (from any folder):",
    `  export ISTHMUS_CONFIG=${sandbox.configPath}`,
    `  ${cli} status`,
    `  ${cli} policy apply -f <file>`,
    "Ctrl-C stops everything.",
  ].join("\n");
}
