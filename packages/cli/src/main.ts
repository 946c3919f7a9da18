import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";

/** Exit codes: 0 success, 1 an error while doing the work, 2 bad usage (flags, arguments). */
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

const { version } = JSON.parse(
  readFileSync(new URL("../package.json", import.meta.url), "utf8"),
) as { version: string };

type Register = (program: Command) => void;

/**
 * Every command's module, by the command names it registers, in help order. Modules are
 * loaded only when an invocation needs them: each pulls in its libraries (gRPC, PKI, the
 * hub, the agent, kubesim), and loading all of them takes about a second, where
 * `isthmus --version` or `isthmus certs` needs a fraction of it (bench/startup.ts).
 */
const COMMAND_MODULES: readonly [names: readonly string[], load: () => Promise<Register>][] = [
  [["certs"], async () => (await import("./commands/certs.js")).registerCertsCommand],
  [["cluster"], async () => (await import("./commands/cluster.js")).registerClusterCommand],
  [["policy"], async () => (await import("./commands/policy.js")).registerPolicyCommand],
  [
    ["status", "catalog"],
    async () => (await import("./commands/status.js")).registerStatusCommands,
  ],
  [["install"], async () => (await import("./commands/install.js")).registerInstallCommand],
  [["check"], async () => (await import("./commands/check.js")).registerCheckCommand],
  [["verify"], async () => (await import("./commands/verify.js")).registerVerifyCommand],
  [["hub"], async () => (await import("./commands/hub.js")).registerHubCommand],
  [["agent"], async () => (await import("./commands/agent.js")).registerAgentCommand],
  [["sandbox"], async () => (await import("./commands/sandbox.js")).registerSandboxCommand],
  [["demo"], async () => (await import("./commands/demo.js")).registerDemoCommand],
];

/** The first argument that is not an option: the command's name, if any. Options of the
 * program itself take no value, so the first such word is the command. */
function commandName(argv: readonly string[]): string | undefined {
  return argv.slice(2).find((arg) => !arg.startsWith("-"));
}

/**
 * The `isthmus` program with the commands `argv` needs: the named command alone, nothing for
 * `--version`, and every command for anything else (help, an unknown command), so that help
 * and "unknown command" list them all. Without `argv`, every command.
 */
export async function createProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command("isthmus")
    .description("multi-cluster policy layer for Istio")
    .version(version)
    .exitOverride()
    .configureOutput({
      outputError: (message, write) => write(`isthmus: ${message.replace(/^error: /, "")}`),
    });
  const name = argv === undefined ? undefined : commandName(argv);
  const named = COMMAND_MODULES.filter(([names]) => name !== undefined && names.includes(name));
  const versionOnly =
    argv !== undefined &&
    name === undefined &&
    argv.slice(2).some((a) => a === "-V" || a === "--version");
  const needed = named.length > 0 ? named : versionOnly ? [] : COMMAND_MODULES;
  for (const register of await Promise.all(needed.map(([, load]) => load()))) register(program);
  return program;
}

/** Runs the CLI and returns its exit code (the launcher sets process.exitCode). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = await createProgram(argv);
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
    // One line per problem (a policy file's validation reports every problem it finds).
    const message = reason instanceof Error ? reason.message : String(reason);
    process.stderr.write(
      message
        .split("\n")
        .map((line) => `isthmus: ${line}\n`)
        .join(""),
    );
    return reason instanceof Error && reason.name === "UsageError" ? EXIT_USAGE : EXIT_ERROR;
  }
}
