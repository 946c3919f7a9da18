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

export interface LoggerOptions {
  /** Component name, logged as `component` on every line. */
  component: string;
  /** Level; default from ISTHMUS_LOG_LEVEL, else "info". */
  level?: LogLevel;
  /** Where lines go; default stderr, so that stdout stays free for command output. */
  stream?: NodeJS.WritableStream;
}

const levels: readonly string[] = ["error", "warn", "info", "debug"];

/** Parses a level name, with an error that names the source of the bad value. */
export function parseLogLevel(value: string, source: string): LogLevel {
  if (levels.includes(value)) return value as LogLevel;
  throw new Error(`${source}: invalid log level "${value}" (expected one of ${levels.join(", ")})`);
}

/**
 * The one logger factory for services (hub, agent, CLI): winston, JSON lines with a
 * timestamp, constant messages and lowercase fields (`cluster`, `nonce`, `err`).
 */
export function createLogger(options: LoggerOptions): Logger {
  const envLevel = process.env.ISTHMUS_LOG_LEVEL;
  const level = options.level ?? (envLevel ? parseLogLevel(envLevel, "ISTHMUS_LOG_LEVEL") : "info");
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors(),
      winston.format.json(),
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

/** Formats an unknown thrown value for the `err` field. */
export function errorField(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
