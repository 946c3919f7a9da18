// Output of read commands: a table for people, JSON or YAML for scripts (-o).
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import Table from "cli-table3";
import { Option } from "commander";
import { plainJson, writeObject } from "./object-shape.js";

export type OutputFormat = "table" | "json" | "yaml";

export function outputOption(): Option {
  return new Option("-o, --output <format>", "output format")
    .choices(["table", "json", "yaml"])
    .default("table");
}

/**
 * Prints a proto message as JSON or YAML (object-shape.ts: proto3 JSON with plain enum words,
 * policies as ConnectionPolicy documents), or runs `table` for people. `object`, when given,
 * is printed instead of the message (e.g. a `kind: List` of policies).
 */
export function print<Desc extends DescMessage>(
  format: OutputFormat,
  schema: Desc,
  message: MessageShape<Desc>,
  table: () => string,
  object?: () => unknown,
): void {
  if (format === "table") {
    process.stdout.write(`${table()}\n`);
    return;
  }
  writeObject(format, object === undefined ? plainJson(schema, message) : object());
}

export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({
    head,
    style: { head: [], border: [] },
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

export function age(seconds: bigint | undefined): string {
  if (seconds === undefined) return "-";
  const s = Math.max(0, Math.floor(Date.now() / 1000) - Number(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Ends a command with this exit code and nothing more on stderr: the command has already
 * printed why (`isthmus check` exits 1 when a check fails, its report on stdout). */
export class ExitCode extends Error {
  override readonly name = "ExitCode";
  constructor(readonly code: number) {
    super(`exit code ${code}`);
  }
}
