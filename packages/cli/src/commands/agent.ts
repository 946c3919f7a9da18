import type { Command } from "commander";
import { UsageError } from "../connection.js";
import { ExitCode } from "../output.js";

/** `isthmus agent`: runs the in-cluster agent until SIGINT/SIGTERM (flags in packages/agent/README.md). */
export function registerAgentCommand(program: Command): void {
  program
    .command("agent")
    .description(
      "run the agent of one cluster until interrupted; flags: --cluster-id, --hub, --hub-ca-file, " +
        "--bootstrap-token-file, --hub-server-name, --kubeconfig, --namespace, --istio-namespace, --locality, " +
        "--listen, --mesh-ca-secret, --log-format (each also from its environment variable, see packages/agent/README.md)",
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (_flags: unknown, command: Command) => {
      const { parseAgentConfig, runAgent } = await import("@isthmus/agent");
      try {
        parseAgentConfig(command.args); // a bad flag is one clear line and exit code 2
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const code = await runAgent(command.args);
      // Its log said why, on the one stream (stderr) and in its format: no line of our own.
      if (code !== 0) throw new ExitCode(code);
    });
}
