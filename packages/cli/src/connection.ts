// Where the hub is and how to authenticate: flags, then environment, then the config file
// (~/.config/isthmus/config.yaml). Credentials are never printed.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  AdminService,
  type CallOptions,
  Code,
  clientCredentials,
  createClient,
  insecureClientCredentials,
  isGrpcError,
  type ServiceClient,
} from "@isthmus/proto";
import type { Command } from "commander";
import { parse } from "yaml";

export interface ConnectionFlags {
  hub?: string;
  token?: string;
  ca?: string;
  insecure?: boolean;
  config?: string;
}

export interface Connection {
  address: string;
  token: string;
  caPem: string | undefined;
  insecure: boolean;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

const CONFIG_KEYS = ["hub", "token", "tokenFile", "caFile", "insecure"];

export function defaultConfigPath(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "isthmus", "config.yaml");
}

function readConfigFile(path: string, explicit: boolean): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`${path}: cannot read config file: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new UsageError(`${path}: invalid YAML: ${(err as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data))
    throw new UsageError(`${path}: expected a mapping`);
  for (const key of Object.keys(data)) {
    if (!CONFIG_KEYS.includes(key))
      throw new UsageError(`${path}: ${key}: unknown field (known: ${CONFIG_KEYS.join(", ")})`);
  }
  return data as Record<string, unknown>;
}

function readFileFor(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`${what} ${path}: ${(err as Error).message}`);
  }
}

/** Adds --hub, --token, --ca, --insecure and --config to a command. */
export function withConnectionOptions(command: Command): Command {
  return command
    .option("--hub <address>", "hub address host:port (env ISTHMUS_HUB)")
    .option("--token <token>", "admin API bearer token (env ISTHMUS_TOKEN)")
    .option(
      "--ca <file>",
      "CA certificate that signed the hub's server certificate (env ISTHMUS_CA)",
    )
    .option("--insecure", "plaintext connection, for a hub started with insecure: true")
    .option("--config <file>", `config file (default ${defaultConfigPath()})`);
}

export function resolveConnection(flags: ConnectionFlags): Connection {
  const path = flags.config ?? defaultConfigPath();
  const file = readConfigFile(path, flags.config !== undefined);
  const str = (v: unknown, key: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v === "")
      throw new UsageError(`${path}: ${key}: must be a non-empty string`);
    return v;
  };
  const address = flags.hub ?? (process.env.ISTHMUS_HUB || undefined) ?? str(file.hub, "hub");
  if (address === undefined)
    throw new UsageError(
      "no hub address: give --hub host:port, ISTHMUS_HUB, or hub in the config file",
    );
  if (!/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(address))
    throw new UsageError(`invalid hub address "${address}": expected host:port`);
  const tokenFile = str(file.tokenFile, "tokenFile");
  const token =
    flags.token ??
    (process.env.ISTHMUS_TOKEN || undefined) ??
    str(file.token, "token") ??
    (tokenFile === undefined ? undefined : readFileFor(tokenFile, "token file").trim());
  if (token === undefined)
    throw new UsageError(
      "no admin token: give --token, ISTHMUS_TOKEN, or token/tokenFile in the config file",
    );
  const insecure = flags.insecure ?? file.insecure === true;
  const caFile = flags.ca ?? (process.env.ISTHMUS_CA || undefined) ?? str(file.caFile, "caFile");
  if (!insecure && caFile === undefined) {
    throw new UsageError(
      "no hub CA: give --ca <file>, ISTHMUS_CA, or caFile in the config file (or --insecure)",
    );
  }
  return {
    address,
    token,
    caPem: caFile === undefined ? undefined : readFileFor(caFile, "hub CA file"),
    insecure,
  };
}

export type AdminClient = ServiceClient<(typeof AdminService)["method"]>;

/** An admin client and the call options carrying the token. */
export function adminClient(conn: Connection): { client: AdminClient; call: CallOptions } {
  const credentials =
    conn.insecure || conn.caPem === undefined
      ? insecureClientCredentials()
      : clientCredentials({ caPem: conn.caPem });
  const client = createClient(AdminService, conn.address, credentials);
  return {
    client,
    call: { metadata: { authorization: `Bearer ${conn.token}` }, timeoutMs: 15_000 },
  };
}

/** The leader's address a follower of a highly available hub names in its refusal. */
function leaderHint(err: unknown): string | undefined {
  if (!isGrpcError(err) || err.code !== Code.UNAVAILABLE) return undefined;
  const value = err.metadata?.get("isthmus-leader")[0];
  // Empty: a follower that knows no leader yet; nowhere to go.
  return typeof value === "string" && /^[^\s,]+:\d+$/.test(value) ? value : undefined;
}

/**
 * Runs `fn` with an admin client built from the command's flags, and closes it. A follower of
 * a highly available hub refuses every call before reading it and names the leader
 * (docs/high-availability.md): `fn` runs again there, a few hops at most.
 */
export async function withAdmin<T>(
  flags: ConnectionFlags,
  fn: (client: AdminClient, call: CallOptions) => Promise<T>,
): Promise<T> {
  const conn = resolveConnection(flags);
  for (let hops = 0; ; hops++) {
    const { client, call } = adminClient(conn);
    try {
      return await fn(client, call);
    } catch (err) {
      const hint = leaderHint(err);
      if (hint === undefined || hops >= 3) throw adminError(conn, err);
      conn.address = hint;
    } finally {
      client.close();
    }
  }
}

/** A failed admin call as one line naming the problem. */
function adminError(conn: Connection, err: unknown): unknown {
  if (!isGrpcError(err)) return err;
  // One line naming the problem: the hub's message already names the object.
  const first = err.message.split("\n")[0];
  if (err.code === Code.UNAVAILABLE)
    return new Error(`cannot reach the hub at ${conn.address}: ${first}`);
  if (err.code === Code.DEADLINE_EXCEEDED)
    return new Error(`the hub at ${conn.address} did not answer in time`);
  return new Error(`${err.codeName.toLowerCase().replace(/_/g, " ")}: ${first}`);
}
