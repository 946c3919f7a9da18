// `isthmus config …`: the hubs of the CLI config file (contexts), as `kubectl config`.
import { resolve } from "node:path";
import type { Command } from "commander";
import {
  type CliConfig,
  checkContextName,
  configLocation,
  defaultConfigPath,
  type HubContext,
  readCliConfig,
  writeCliConfig,
} from "../cli-config.js";
import { type OutputFormat, outputOption, printJson, table } from "../output.js";
import { UsageError } from "../usage-error.js";

interface ConfigFlags {
  config?: string;
}

function withConfigOption(command: Command): Command {
  return command.option(
    "--config <file>",
    `CLI config file (env ISTHMUS_CONFIG, default ${defaultConfigPath()})`,
  );
}

function load(flags: ConfigFlags, mustExist: boolean): CliConfig {
  const { path, explicit } = configLocation(flags.config);
  return readCliConfig(path, explicit && mustExist);
}

/** A context as `get-contexts -o json|yaml` shows it: the token itself is never printed. */
function shown(c: HubContext): Record<string, unknown> {
  const { token, ...rest } = c;
  return token === undefined ? rest : { ...rest, token: "<redacted>" };
}

function contextsTable(config: CliConfig): string {
  const rows = config.contexts.map((c) => [
    // kubectl leaves the CURRENT cell of other contexts blank rather than "<none>".
    c.name === config.currentContext ? "*" : " ",
    c.name,
    c.hub ?? "",
    c.insecure ? "(insecure)" : (c.caFile ?? ""),
    c.tokenFile !== undefined ? `file ${c.tokenFile}` : c.token !== undefined ? "token" : "",
  ]);
  return table(["CURRENT", "NAME", "HUB", "CA", "AUTH"], rows);
}

interface SetContextFlags extends ConfigFlags {
  hub?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  insecure?: boolean;
  current?: boolean;
}

function setContext(name: string | undefined, flags: SetContextFlags): string {
  const config = load(flags, false);
  const target = flags.current ? config.currentContext : name;
  if (target === undefined)
    throw new UsageError(
      flags.current
        ? `${config.path}: no current context to modify`
        : "set-context: give a context name or --current",
    );
  checkContextName(target);
  if (flags.hub !== undefined && !/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(flags.hub))
    throw new UsageError(`invalid hub address "${flags.hub}": expected host:port`);
  if (flags.token !== undefined && flags.tokenFile !== undefined)
    throw new UsageError("give --token or --token-file, not both");
  let context = config.contexts.find((c) => c.name === target);
  const created = context === undefined;
  if (context === undefined) {
    context = { name: target };
    config.contexts.push(context);
  }
  if (flags.hub !== undefined) context.hub = flags.hub;
  if (flags.token !== undefined) {
    context.token = flags.token;
    delete context.tokenFile;
  }
  if (flags.tokenFile !== undefined) {
    context.tokenFile = resolve(flags.tokenFile);
    delete context.token;
  }
  if (flags.ca !== undefined) context.caFile = resolve(flags.ca);
  if (flags.insecure !== undefined) context.insecure = flags.insecure;
  // The first context of a file is the one to use; later ones wait for `use-context`.
  config.currentContext ??= target;
  writeCliConfig(config);
  return `Context "${target}" ${created ? "created" : "modified"} in ${config.path}.`;
}

export function registerConfigCommand(program: Command): void {
  const config = program
    .command("config")
    .description("the hubs (contexts) of the CLI config file, as kubectl config");

  withConfigOption(config.command("get-contexts"))
    .description("list the contexts; * marks the current one")
    .addOption(outputOption())
    .action((flags: ConfigFlags & { output: OutputFormat }) => {
      const file = load(flags, true);
      if (flags.output === "table" || flags.output === "wide") {
        const text = contextsTable(file);
        process.stdout.write(text === "" ? `No contexts in ${file.path}.\n` : `${text}\n`);
      } else if (flags.output === "name") {
        for (const c of file.contexts) process.stdout.write(`${c.name}\n`);
      } else {
        printJson(flags.output, {
          ...(file.currentContext === undefined ? {} : { currentContext: file.currentContext }),
          contexts: file.contexts.map(shown),
        });
      }
    });

  withConfigOption(config.command("current-context"))
    .description("print the current context's name")
    .action((flags: ConfigFlags) => {
      const file = load(flags, true);
      if (file.currentContext === undefined)
        throw new Error(`${file.path}: no current context (isthmus config use-context <name>)`);
      process.stdout.write(`${file.currentContext}\n`);
    });

  withConfigOption(config.command("use-context <name>"))
    .description("make a context the current one")
    .action((name: string, flags: ConfigFlags) => {
      const file = load(flags, true);
      if (!file.contexts.some((c) => c.name === name)) {
        const known = file.contexts.map((c) => c.name).join(", ") || "none";
        throw new Error(`context "${name}" not found in ${file.path} (contexts: ${known})`);
      }
      file.currentContext = name;
      writeCliConfig(file);
      process.stdout.write(`Switched to context "${name}".\n`);
    });

  withConfigOption(config.command("set-context [name]"))
    .description("create a context or change some of its settings (the first one becomes current)")
    .option("--current", "change the current context")
    .option("--hub <address>", "hub address host:port")
    .option("--token <token>", "admin API bearer token (stored in the file, mode 0600)")
    .option("--token-file <file>", "file holding the token (stored as an absolute path)")
    .option("--ca <file>", "CA certificate of the hub's server certificate (absolute path)")
    .option("--insecure", "plaintext connection")
    .option("--no-insecure", "TLS connection (the default)")
    .action((name: string | undefined, flags: SetContextFlags) => {
      process.stdout.write(`${setContext(name, flags)}\n`);
    });

  withConfigOption(config.command("delete-context <name>"))
    .description("remove a context (the current one too: then no context is current)")
    .action((name: string, flags: ConfigFlags) => {
      const file = load(flags, true);
      const before = file.contexts.length;
      file.contexts = file.contexts.filter((c) => c.name !== name);
      if (file.contexts.length === before)
        throw new Error(`context "${name}" not found in ${file.path}`);
      if (file.currentContext === name) file.currentContext = undefined;
      writeCliConfig(file);
      process.stdout.write(`Deleted context "${name}" from ${file.path}.\n`);
    });
}
