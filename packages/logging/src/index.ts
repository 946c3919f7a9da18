import winston from "winston";

/** The logger libraries accept: winston's, or anything with the same four methods. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): unknown;
  info(message: string, fields?: Record<string, unknown>): unknown;
  warn(message: string, fields?: Record<string, unknown>): unknown;
  error(message: string, fields?: Record<string, unknown>): unknown;
  child(fields: Record<string, unknown>): Logger;
}

export type LogLevel = "error" | "warn" | "info" | "debug";

/** `json`: one JSON object a line (log collectors); `text`: `time level message k=v` (people). */
export type LogFormat = "json" | "text";

export interface LoggerOptions {
  /** Component name, logged as `component` on every line. */
  component: string;
  /** Level; default from ISTHMUS_LOG_LEVEL, else "info". */
  level?: LogLevel;
  /** Line format; default from ISTHMUS_LOG_FORMAT, else "json". */
  format?: LogFormat;
  /** Where lines go; default stderr, so that stdout stays free for command output. */
  stream?: NodeJS.WritableStream;
}

const levels: readonly string[] = ["error", "warn", "info", "debug"];
const formats: readonly string[] = ["json", "text"];

/** Parses a level name, with an error that names the source of the bad value. */
export function parseLogLevel(value: string, source: string): LogLevel {
  if (levels.includes(value)) return value as LogLevel;
  throw new Error(`${source}: invalid log level "${value}" (expected one of ${levels.join(", ")})`);
}

/** Parses a format name, with an error that names the source of the bad value. */
export function parseLogFormat(value: string, source: string): LogFormat {
  if (formats.includes(value)) return value as LogFormat;
  throw new Error(
    `${source}: invalid log format "${value}" (expected one of ${formats.join(", ")})`,
  );
}

/**
 * Fields holding an Error become its message, and its stack goes beside it (`stack` for the
 * `err` field, `<field>_stack` for others): JSON.stringify makes `{}` of an Error, and a
 * message alone does not say where an unexpected error came from.
 */
const errorFields = winston.format((info) => {
  for (const [key, value] of Object.entries(info)) {
    if (!(value instanceof Error)) continue;
    info[key] = value.message;
    if (value.stack !== undefined) info[key === "err" ? "stack" : `${key}_stack`] = value.stack;
  }
  return info;
});

/** A value of a text line: bare when it is one word, else JSON (quoted, escaped). */
function textValue(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/** `2026-12-06T00:10:00.000Z info hub started component=hub port=8443`, stacks indented below. */
const textLine = winston.format.printf((info) => {
  const { timestamp, level, message, stack, ...fields } = info;
  let line = `${String(timestamp)} ${level} ${String(message)}`;
  for (const [key, value] of Object.entries(fields)) {
    if (typeof key === "string" && value !== undefined) line += ` ${key}=${textValue(value)}`;
  }
  if (typeof stack === "string") line += `\n    ${stack.split("\n").join("\n    ")}`;
  return line;
});

/**
 * The one logger factory for services (hub, agent, CLI): winston, JSON lines (or text) with a
 * timestamp, constant messages and lowercase fields (`cluster`, `nonce`, `err`).
 */
export function createLogger(options: LoggerOptions): Logger {
  const envLevel = process.env.ISTHMUS_LOG_LEVEL;
  const level = options.level ?? (envLevel ? parseLogLevel(envLevel, "ISTHMUS_LOG_LEVEL") : "info");
  const envFormat = process.env.ISTHMUS_LOG_FORMAT;
  const format =
    options.format ?? (envFormat ? parseLogFormat(envFormat, "ISTHMUS_LOG_FORMAT") : "json");
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      errorFields(),
      format === "json" ? winston.format.json() : textLine,
    ),
    defaultMeta: { component: options.component },
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stderr })],
  });
}

/** A logger that drops everything: the default of libraries when none is injected. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/**
 * An unknown thrown value as text, for messages built from it. A log line takes the Error
 * itself (`{ err }`): the logger writes its message as `err` and keeps its stack.
 */
export function errorField(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
