// `isthmus version`: the client's version and, when a hub is configured, the hub's, as
// `kubectl version` prints them.
import { type Command, Option } from "commander";
import { CLI_VERSION } from "../cli-version.js";
import {
  type ConnectionFlags,
  UsageError,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { printJson } from "../output.js";

interface VersionInfo {
  version: string;
  runtime: string;
  platform: string;
}

type VersionFlags = ConnectionFlags & { client?: boolean; output?: "json" | "yaml" };

function clientVersion(): VersionInfo {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  return {
    version: CLI_VERSION,
    runtime: `node ${process.version}`,
    platform: `${process.platform}/${arch}`,
  };
}

function show(flags: VersionFlags, client: VersionInfo, server: VersionInfo | undefined): void {
  if (flags.output === undefined) {
    process.stdout.write(`Client Version: ${client.version}\n`);
    if (server !== undefined) process.stdout.write(`Server Version: ${server.version}\n`);
    return;
  }
  printJson(flags.output, {
    clientVersion: client,
    ...(server === undefined ? {} : { serverVersion: server }),
  });
}

export function registerVersionCommand(program: Command): void {
  withConnectionOptions(program.command("version"))
    .description("print the client's version and, when a hub is configured, the hub's")
    .option("--client", "the client's version only; no hub is asked")
    .addOption(new Option("-o, --output <format>", "json or yaml").choices(["json", "yaml"]))
    .action(async (flags: VersionFlags) => {
      const client = clientVersion();
      if (flags.client) return show(flags, client, undefined);
      let server: VersionInfo | undefined;
      try {
        server = await withAdmin(flags, (c, call) => c.getVersion({}, call));
      } catch (err) {
        // No hub configured at all: the client's version is the whole answer.
        if (err instanceof UsageError && /^no hub address/.test(err.message))
          return show(flags, client, undefined);
        // As kubectl: the client's version, then why the server's is missing.
        show(flags, client, undefined);
        throw err;
      }
      show(flags, client, {
        version: server.version,
        runtime: server.runtime,
        platform: server.platform,
      });
    });
}
