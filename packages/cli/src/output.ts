// Output of read commands, as kubectl prints it: a borderless table for people (`-o wide`
// adds columns, `--no-headers` drops the header line), `-o name` one `kind/name` per line, and
// for scripts `-o json`, `-o yaml` (object-shape.ts: one shape everywhere) or
// `-o jsonpath=<template>` over that same object.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { InvalidArgumentError, Option } from "commander";
import { stringify } from "yaml";
import { jsonPath, parseTemplate } from "./jsonpath.js";
import { plainJson, writeObject } from "./object-shape.js";
import { tableOutputs, tableSettings } from "./table-settings.js";
import { UsageError } from "./usage-error.js";

export { tableSettings };

/** `table` is the default (people), `wide` the table with more columns. */
export type OutputFormat = "table" | "wide" | "name" | "json" | "yaml" | `jsonpath=${string}`;

const FORMATS = "table, wide, name, json, yaml, jsonpath=<template>";

export function parseOutputFormat(value: string): OutputFormat {
  if (value.startsWith("jsonpath=")) {
    try {
      parseTemplate(value.slice("jsonpath=".length));
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    return value as OutputFormat;
  }
  if (["table", "wide", "name", "json", "yaml"].includes(value)) return value as OutputFormat;
  throw new InvalidArgumentError(`expected one of ${FORMATS}`);
}

export function outputOption(): Option {
  const option = new Option("-o, --output <format>", `output format: ${FORMATS}`)
    .argParser(parseOutputFormat)
    .default("table");
  tableOutputs.add(option);
  return option;
}

/** A JSON value as `-o json`, `-o yaml` or `-o jsonpath=` print it; `stream`: one of many
 * (watch), as one JSON line or one YAML document. */
export function printJson(format: OutputFormat, json: unknown, stream = false): void {
  if (format.startsWith("jsonpath=")) {
    process.stdout.write(`${jsonPath(format.slice("jsonpath=".length), json)}\n`);
  } else if (!stream) {
    writeObject(format === "yaml" ? "yaml" : "json", json);
  } else if (format === "yaml") {
    process.stdout.write(`---\n${stringify(json, { lineWidth: 0 })}`);
  } else {
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }
}

/**
 * Prints a proto message as JSON, YAML or a JSONPath template's result (object-shape.ts:
 * proto3 JSON with plain enum words, policies as ConnectionPolicy documents; `object`, when
 * given, is printed instead of the message, e.g. a `kind: List` of policies), `-o name` as
 * the lines `names` returns, or the text `table` returns for people (table and wide:
 * `tableSettings.wide` tells which).
 */
export function print<Desc extends DescMessage>(
  format: OutputFormat,
  schema: Desc,
  message: MessageShape<Desc>,
  table: () => string,
  object?: () => unknown,
  names?: () => string[],
): void {
  if (format === "table" || format === "wide") {
    tableSettings.wide = format === "wide";
    const text = table();
    // An empty list, as kubectl says it: on stderr, so that scripts read nothing.
    if (text === "") process.stderr.write("No resources found.\n");
    else process.stdout.write(`${text}\n`);
    return;
  }
  if (format === "name") {
    if (names === undefined) throw new UsageError("-o name: this command prints no named objects");
    const lines = names();
    process.stdout.write(lines.length === 0 ? "" : `${lines.join("\n")}\n`);
    return;
  }
  printJson(format, object === undefined ? plainJson(schema, message) : object());
}

/** A column; `wide` columns appear with `-o wide` only. */
export type Column = string | { header: string; wide: true };

const GAP = "   ";

/**
 * A borderless table as kubectl prints it: upper-case headers (unless `--no-headers`), columns
 * left-aligned and three spaces apart, "<none>" for an empty or undefined cell. Without rows, nothing (the
 * caller says "No resources found" where kubectl would).
 */
export function table(columns: Column[], rows: (string | number | undefined)[][]): string {
  const keep = columns.map((c) => typeof c === "string" || tableSettings.wide);
  const pick = <T>(cells: T[]) => cells.filter((_, i) => keep[i]);
  const head = pick(columns).map((c) => (typeof c === "string" ? c : c.header).toUpperCase());
  const body = rows.map((r) =>
    pick(r).map((cell) => {
      const text = String(cell ?? "").replace(/\s*\n\s*/g, " ");
      return text === "" ? "<none>" : text;
    }),
  );
  if (body.length === 0) return "";
  const lines = tableSettings.noHeaders ? body : [head, ...body];
  const widths = head.map((_, i) => Math.max(...lines.map((l) => [...(l[i] ?? "")].length)));
  return lines
    .map((l) =>
      l
        .map((cell, i) => (i === l.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join(GAP)
        .trimEnd(),
    )
    .join("\n");
}

export function age(seconds: bigint | undefined): string {
  if (seconds === undefined) return "<none>";
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
