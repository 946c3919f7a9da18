import { AGENT_FLAGS } from "@isthmus/agent/flags";
import type { Command } from "commander";
import { ExitCode } from "../output.js";
import { UsageError } from "../usage-error.js";

type AgentFlag = keyof typeof AGENT_FLAGS;

/** commander's attribute name of a kebab-case flag (`cluster-id` → `clusterId`). */
const attribute = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * `isthmus agent`: runs the in-cluster agent until SIGINT/SIGTERM. The flags are the agent's
 * own (AGENT_FLAGS, also in packages/agent/README.md), declared to commander so that
 * `--help` and unknown options behave as for every other command; the agent then reads them,
 * with their environment variables, as it does when started by itself.
 */
export function registerAgentCommand(program: Command): void {
  const command = program
    .command("agent")
    .description(
      "run the agent of one cluster until interrupted (each flag also from its environment variable)",
    );
  for (const [flag, { env, help }] of Object.entries(AGENT_FLAGS))
    command.option(`--${flag} <value>`, `${help} (env ${env})`);
  command.action(async (flags: Record<string, string | undefined>) => {
    const argv = (Object.keys(AGENT_FLAGS) as AgentFlag[]).flatMap((flag) => {
      const value = flags[attribute(flag)];
      return value === undefined ? [] : [`--${flag}=${value}`];
    });
    // Loaded here: the agent's code (Kubernetes client, gRPC) is not needed for --help.
    const { parseAgentConfig, runAgent } = await import("@isthmus/agent");
    try {
      parseAgentConfig(argv); // a bad or missing flag is one clear line and exit code 2
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const code = await runAgent(argv);
    // Its log said why, on the one stream (stderr) and in its format: no line of our own.
    if (code !== 0) throw new ExitCode(code);
  });
}
