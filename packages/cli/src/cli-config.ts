// The CLI's config file: several hubs ("contexts", as in a kubeconfig) and the current one.
//
//   currentContext: prod
//   contexts:
//     - { name: prod, hub: hub.example:8443, tokenFile: ~/.isthmus/prod-token, caFile: prod-ca.pem }
//     - { name: sandbox, hub: localhost:40123, token: …, caFile: /tmp/…/hub-ca.pem }
//
// A file of the earlier single-hub shape (`hub`, `token`, `tokenFile`, `caFile`, `insecure` at
// the top) is read as one context named "default", which is current; `config set-context` and
// `use-context` rewrite such a file in the shape above.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";
import { UsageError } from "./usage-error.js";

export interface HubContext {
  name: string;
  hub?: string;
  token?: string;
  tokenFile?: string;
  caFile?: string;
  insecure?: boolean;
}

export interface CliConfig {
  path: string;
  currentContext: string | undefined;
  contexts: HubContext[];
}

export const CONTEXT_KEYS = ["hub", "token", "tokenFile", "caFile", "insecure"] as const;
const TOP_KEYS = ["currentContext", "contexts"];
/** The name a single-hub config file's settings get as a context. */
export const LEGACY_CONTEXT = "default";
const CONTEXT_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.@]{0,61}[A-Za-z0-9])?$/;

export function defaultConfigPath(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "isthmus", "config.yaml");
}

/** The config file: `--config`, else `ISTHMUS_CONFIG`, else the default path. A file named by
 * flag or environment must exist when read. */
export function configLocation(flag: string | undefined): { path: string; explicit: boolean } {
  if (flag !== undefined) return { path: flag, explicit: true };
  const env = process.env.ISTHMUS_CONFIG;
  if (env) return { path: env, explicit: true };
  return { path: defaultConfigPath(), explicit: false };
}

export function checkContextName(name: string): string {
  if (!CONTEXT_NAME.test(name))
    throw new UsageError(
      `invalid context name "${name}": letters, digits, '-', '_', '.', '@', at most 63`,
    );
  return name;
}

function parseContext(path: string, where: string, value: unknown): HubContext {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new UsageError(`${path}: ${where}: expected a mapping`);
  const entry = value as Record<string, unknown>;
  for (const key of Object.keys(entry)) {
    if (key !== "name" && !(CONTEXT_KEYS as readonly string[]).includes(key))
      throw new UsageError(
        `${path}: ${where}.${key}: unknown field (known: name, ${CONTEXT_KEYS.join(", ")})`,
      );
  }
  const context: HubContext = { name: "" };
  for (const key of ["name", "hub", "token", "tokenFile", "caFile"] as const) {
    const v = entry[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "")
      throw new UsageError(`${path}: ${where}.${key}: must be a non-empty string`);
    context[key] = v;
  }
  if (entry.insecure !== undefined) {
    if (typeof entry.insecure !== "boolean")
      throw new UsageError(`${path}: ${where}.insecure: must be true or false`);
    context.insecure = entry.insecure;
  }
  return context;
}

/** Reads the config file; a missing file that was not named explicitly is an empty config. */
export function readCliConfig(path: string, explicit: boolean): CliConfig {
  const empty: CliConfig = { path, currentContext: undefined, contexts: [] };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === "ENOENT") return empty;
    throw new UsageError(`${path}: cannot read config file: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new UsageError(`${path}: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (data === null || data === undefined) return empty;
  if (typeof data !== "object" || Array.isArray(data))
    throw new UsageError(`${path}: expected a mapping`);
  const keys = Object.keys(data);
  const legacy = keys.filter((k) => (CONTEXT_KEYS as readonly string[]).includes(k));
  if (legacy.length > 0) {
    if (keys.some((k) => TOP_KEYS.includes(k)))
      throw new UsageError(
        `${path}: ${legacy[0]}: belongs in a context (contexts[].${legacy[0]}) when the file has contexts`,
      );
    const context = parseContext(path, "(top level)", { ...data, name: LEGACY_CONTEXT });
    return { path, currentContext: LEGACY_CONTEXT, contexts: [context] };
  }
  for (const key of keys) {
    if (!TOP_KEYS.includes(key))
      throw new UsageError(
        `${path}: ${key}: unknown field (known: currentContext, contexts, or the single-hub keys ${CONTEXT_KEYS.join(", ")})`,
      );
  }
  const { currentContext, contexts = [] } = data as Record<string, unknown>;
  if (!Array.isArray(contexts)) throw new UsageError(`${path}: contexts: expected a list`);
  const parsed = contexts.map((c, i) => parseContext(path, `contexts[${i}]`, c));
  const names = new Set<string>();
  parsed.forEach((c, i) => {
    if (c.name === "") throw new UsageError(`${path}: contexts[${i}].name: required`);
    if (names.has(c.name))
      throw new UsageError(`${path}: contexts[${i}].name: "${c.name}" appears twice`);
    names.add(c.name);
  });
  if (currentContext !== undefined && (typeof currentContext !== "string" || currentContext === ""))
    throw new UsageError(`${path}: currentContext: must be a non-empty string`);
  return { path, currentContext, contexts: parsed };
}

/** Writes the config file atomically (a new file renamed over the old one), readable by its
 * owner only: it may hold tokens. */
export function writeCliConfig(config: CliConfig): void {
  const data: Record<string, unknown> = {};
  if (config.currentContext !== undefined) data.currentContext = config.currentContext;
  data.contexts = config.contexts;
  mkdirSync(dirname(config.path), { recursive: true, mode: 0o700 });
  const temporary = `${config.path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, stringify(data), { mode: 0o600 });
    renameSync(temporary, config.path);
  } catch (err) {
    throw new Error(`${config.path}: cannot write config file: ${(err as Error).message}`);
  }
}

/** The context `name` names (an error when the file has none of that name), else the current
 * context, else none. */
export function selectContext(config: CliConfig, name: string | undefined): HubContext | undefined {
  const wanted = name ?? config.currentContext;
  if (wanted === undefined) return undefined;
  const context = config.contexts.find((c) => c.name === wanted);
  if (context === undefined) {
    const known = config.contexts.map((c) => c.name).join(", ") || "none";
    throw new UsageError(
      name !== undefined
        ? `context "${name}" not found in ${config.path} (contexts: ${known})`
        : `${config.path}: currentContext "${wanted}" names no context (contexts: ${known})`,
    );
  }
  return context;
}
