import type { Command } from "commander";
import { UsageError } from "../connection.js";

/** `isthmus agent`: runs the in-cluster agent until SIGINT/SIGTERM (flags in packages/agent/README.md). */
export function registerAgentCommand(program: Command): void {
  program
    .command("agent")
    .description(
      "run the agent of one cluster until interrupted; flags: --cluster-id, --hub, --hub-ca-file, " +
        "--bootstrap-token-file, --hub-server-name, --kubeconfig, --namespace, --istio-namespace, --locality, " +
        "--listen (each also from its environment variable, see packages/agent/README.md)",
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (_flags: unknown, command: Command) => {
      const { createAgent, parseAgentConfig } = await import("@isthmus/agent");
      const { createLogger } = await import("@isthmus/logging");
      let config: ReturnType<typeof parseAgentConfig>;
      try {
        config = parseAgentConfig(command.args);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const agent = createAgent({ ...config, logger: createLogger({ component: "agent" }) });
      await agent.start();
      process.stdout.write(
        `agent of cluster ${config.clusterId} started${agent.healthAddress() ? `, health on ${agent.healthAddress()}` : ""}\n`,
      );
      await new Promise<void>((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      });
      await agent.stop();
    });
}
