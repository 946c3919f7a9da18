// What main.ts needs of the output module before a command runs, apart from it: output.ts
// loads protobuf and YAML, which `isthmus --version` and `certs` do without (bench/startup.ts).
import type { Option } from "commander";

/** The `-o` options whose formats include tables; main.ts adds `--no-headers` to their
 * commands. */
export const tableOutputs = new WeakSet<Option>();

export function isTableOutputOption(option: Option): boolean {
  return tableOutputs.has(option);
}

/** Settings of the table the current command prints. The CLI runs one command per process,
 * and main.ts sets them from the command's flags before its action runs, so that each
 * command's table function need not pass them along. */
export const tableSettings = { noHeaders: false, wide: false };
