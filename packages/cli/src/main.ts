import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { CLI_VERSION } from "./cli-version.js";
import { isTableOutputOption, tableSettings } from "./table-settings.js";
import { UsageError } from "./usage-error.js";

/** Exit codes: 0 success, 1 an error while doing the work, 2 bad usage (flags, arguments). */
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

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
  [["config"], async () => (await import("./commands/config.js")).registerConfigCommand],
  [["version"], async () => (await import("./commands/version.js")).registerVersionCommand],
  [
    ["completion"],
    async () => (await import("./commands/completion.js")).registerCompletionCommand,
  ],
];

/** Options of the program and of every command group that every command taking the same
 * option accepts before its name too (`isthmus -o json status` as `isthmus status -o json`,
 * `isthmus cluster -o json list` as `isthmus cluster list -o json`), as kubectl's global
 * flags. The program parses positionally (its options end at the command's name), and so do
 * groups: an option before a subcommand's name is the group's, which passes it on. */
const globalOptions = () => [
  new Option("--config <file>", "CLI config file (env ISTHMUS_CONFIG)"),
  new Option("--context <name>", "context of the config file (env ISTHMUS_CONTEXT)"),
  new Option("-o, --output <format>", "output format of the command"),
  new Option("--no-headers", "tables without their header line"),
];
const GLOBAL_OPTIONS = globalOptions();
const VALUED_GLOBALS = new Set(["--config", "--context", "-o", "--output"]);

/** The first argument that is not an option or the value of a global option: the command's
 * name, if any. */
function commandName(argv: readonly string[]): string | undefined {
  const args = argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return args[i + 1];
    if (VALUED_GLOBALS.has(arg)) i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

/** Commands whose option `--name` is the program's global option of that name. */
function ownOption(command: Command, long: string): Option | undefined {
  return command.options.find((o) => o.long === long);
}

/**
 * Before an action: each global option given before the command name (to the program or to
 * a group above the command) becomes the command's own (parsed and checked as the command
 * parses it). The nearest wins: the command's own after its name, then its group's, then the
 * program's. An option the command does not take is a usage error. Then the table settings.
 */
function applyGlobalOptions(action: Command): void {
  for (let holder = action.parent; holder !== null; holder = holder.parent) {
    for (const global of GLOBAL_OPTIONS) passOptionOn(holder, global, action);
  }
  const opts = action.opts();
  tableSettings.noHeaders = opts.headers === false;
}

/** The value `holder` got for a global option, as `action`'s, unless that is set already. */
function passOptionOn(holder: Command, global: Option, action: Command): void {
  const key = global.attributeName();
  if (holder.getOptionValueSource(key) !== "cli") return;
  const own = ownOption(action, global.long!);
  if (own === undefined)
    throw new UsageError(`option '${global.long}' does not apply to '${fullName(action)}'`);
  const ownKey = own.attributeName();
  if (action.getOptionValueSource(ownKey) === "cli") return;
  let value = holder.getOptionValue(key) as unknown;
  if (own.parseArg !== undefined && typeof value === "string") {
    try {
      value = own.parseArg(value, action.getOptionValue(ownKey));
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
      throw new UsageError(`option '${own.flags}' argument '${value}' is invalid. ${err.message}`);
    }
  }
  action.setOptionValueWithSource(ownKey, value, "cli");
}

function fullName(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * Finishes the command tree: a command with subcommands but no action of its own takes the
 * global options and answers without a subcommand, or with an unknown one, with one usage
 * line (commander prints its whole help on stderr there); a command whose `-o` prints tables
 * takes `--no-headers`.
 */
function finishTree(command: Command): void {
  if (command.commands.length > 0 && command.parent !== null) {
    for (const option of globalOptions()) command.addOption(option);
    command.allowExcessArguments().action((_flags: unknown, self: Command) => {
      const names = self.commands.map((c) => c.name()).join(", ");
      const given = self.args[0];
      throw new UsageError(
        given === undefined
          ? `missing command for '${fullName(self)}' (one of ${names}; see '${fullName(self)} --help')`
          : `unknown command '${given}' for '${fullName(self)}' (one of ${names})`,
      );
    });
  }
  const output = command.options.find(isTableOutputOption);
  if (output !== undefined && ownOption(command, "--no-headers") === undefined)
    command.option("--no-headers", "tables without their header line");
  for (const sub of command.commands) finishTree(sub);
}

/**
 * The `isthmus` program with the commands `argv` needs: the named command alone (every command
 * for `completion`, which describes them), nothing for `--version`, and every command for
 * anything else (help, an unknown command), so that help and "unknown command" list them all.
 * Without `argv`, every command.
 */
export async function createProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command("isthmus")
    .description("multi-cluster policy layer for Istio")
    .version(CLI_VERSION)
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      // Commander's usage errors, one line: some carry a second ("(Did you mean status?)").
      outputError: (message, write) =>
        write(
          `isthmus: ${message
            .replace(/^error: /, "")
            .trim()
            .replace(/\s*\n\s*/g, " ")}\n`,
        ),
    });
  for (const option of GLOBAL_OPTIONS) program.addOption(option);
  program.hook("preAction", (_self, action) => applyGlobalOptions(action));
  const name = argv === undefined ? undefined : commandName(argv);
  const named =
    name === "completion"
      ? COMMAND_MODULES
      : COMMAND_MODULES.filter(([names]) => name !== undefined && names.includes(name));
  const versionOnly =
    argv !== undefined &&
    name === undefined &&
    argv.slice(2).some((a) => a === "-V" || a === "--version");
  const needed = named.length > 0 ? named : versionOnly ? [] : COMMAND_MODULES;
  for (const register of await Promise.all(needed.map(([, load]) => load()))) register(program);
  for (const sub of program.commands) finishTree(sub);
  return program;
}

/** Runs the CLI and returns its exit code (the launcher sets process.exitCode). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = await createProgram(argv);
  if (
    commandName(argv) === undefined &&
    !argv.slice(2).some((a) => /^(-h|--help|-V|--version)$/.test(a))
  ) {
    process.stderr.write("isthmus: missing command (see 'isthmus --help' for the list)\n");
    return EXIT_USAGE;
  }
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
    // One line per problem (a policy file's validation reports every problem it finds), each
    // `isthmus: …`.
    const message = reason instanceof Error ? reason.message : String(reason);
    process.stderr.write(
      message
        .trim()
        .split(/\s*\n\s*/)
        .map((line) => `isthmus: ${line}\n`)
        .join(""),
    );
    return reason instanceof Error && reason.name === "UsageError" ? EXIT_USAGE : EXIT_ERROR;
  }
}
