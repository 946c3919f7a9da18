import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { registerAgentCommand } from "./commands/agent.js";
import { registerCertsCommand } from "./commands/certs.js";
import { registerCheckCommand } from "./commands/check.js";
import { registerClusterCommand } from "./commands/cluster.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerHubCommand } from "./commands/hub.js";
import { registerInstallCommand } from "./commands/install.js";
import { registerPolicyCommand } from "./commands/policy.js";
import { registerSandboxCommand } from "./commands/sandbox.js";
import { registerStatusCommands } from "./commands/status.js";

/** Exit codes: 0 success, 1 an error while doing the work, 2 bad usage (flags, arguments). */
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

const { version } = JSON.parse(
  readFileSync(new URL("../package.json", import.meta.url), "utf8"),
) as { version: string };

/** The `isthmus` program; every command registers itself here. */
export function createProgram(): Command {
  const program = new Command("isthmus")
    .description("multi-cluster policy layer for Istio")
    .version(version)
    .exitOverride()
    .configureOutput({
      outputError: (message, write) => write(`isthmus: ${message.replace(/^error: /, "")}`),
    });
  registerCertsCommand(program);
  registerClusterCommand(program);
  registerPolicyCommand(program);
  registerStatusCommands(program);
  registerInstallCommand(program);
  registerCheckCommand(program);
  registerHubCommand(program);
  registerAgentCommand(program);
  registerSandboxCommand(program);
  registerDemoCommand(program);
  return program;
}

/** Runs the CLI and returns its exit code (the launcher sets process.exitCode). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (reason) {
    if (reason instanceof CommanderError) {
      // Commander has already printed its message (help, version, or a usage error).
      return reason.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (reason instanceof Error && reason.name === "ExitCode")
      return (reason as Error & { code: number }).code;
    // Library errors (PkiError…) carry a message that names the file or object and the problem.
    process.stderr.write(`isthmus: ${reason instanceof Error ? reason.message : String(reason)}\n`);
    return reason instanceof Error && reason.name === "UsageError" ? EXIT_USAGE : EXIT_ERROR;
  }
}
