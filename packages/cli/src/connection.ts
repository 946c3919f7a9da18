// Where the hub is and how to authenticate: flags, then environment, then the config file
// (ISTHMUS_CONFIG or ~/.config/isthmus/config.yaml, see cli-config.ts). Credentials are
// never printed.
import { readFileSync } from "node:fs";
import {
  AdminService,
  type CallOptions,
  Code,
  clientCredentials,
  createClient,
  insecureClientCredentials,
  isGrpcError,
  leaderHint,
  type ServiceClient,
} from "@isthmus/proto";
import { type Command, Option } from "commander";
import { configLocation, defaultConfigPath, readCliConfig, selectContext } from "./cli-config.js";
import { UsageError } from "./usage-error.js";

export interface ConnectionFlags {
  hub?: string;
  token?: string;
  ca?: string;
  insecure?: boolean;
  config?: string;
  /** `--context` of the commands whose `--context` names a hub (not a kubeconfig context). */
  hubContext?: string;
}

export interface Connection {
  address: string;
  token: string;
  caPem: string | undefined;
  insecure: boolean;
}

export { UsageError };

function readFileFor(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`${what} ${path}: ${(err as Error).message}`);
  }
}

/** `--context <name>` naming a context of the config file; its value lands in `hubContext`, so
 * that it never mixes with the kubeconfig `--context` of install, check and verify. */
class HubContextOption extends Option {
  override attributeName(): string {
    return "hubContext";
  }
}

/** Adds --hub, --token, --ca, --insecure, --config and (unless the command has a kubeconfig
 * `--context` of its own) --context to a command. */
export function withConnectionOptions(
  command: Command,
  { context = true }: { context?: boolean } = {},
): Command {
  command
    .option("--hub <address>", "hub address host:port (env ISTHMUS_HUB)")
    .option("--token <token>", "admin API bearer token (env ISTHMUS_TOKEN)")
    .option(
      "--ca <file>",
      "CA certificate that signed the hub's server certificate (env ISTHMUS_CA)",
    )
    .option("--insecure", "plaintext connection, for a hub started with insecure: true")
    .option("--config <file>", `config file (env ISTHMUS_CONFIG, default ${defaultConfigPath()})`);
  if (context)
    command.addOption(
      new HubContextOption(
        "--context <name>",
        "context of the config file to use (env ISTHMUS_CONTEXT, default its currentContext)",
      ),
    );
  return command;
}

/** The hub connection: flags, then environment variables, then the config file's context
 * (`--context`, else `ISTHMUS_CONTEXT`, else the file's current context). */
export function resolveConnection(flags: ConnectionFlags): Connection {
  const { path, explicit } = configLocation(flags.config);
  const file = selectContext(
    readCliConfig(path, explicit),
    flags.hubContext ?? (process.env.ISTHMUS_CONTEXT || undefined),
  ) ?? { name: "" };
  const address = flags.hub ?? (process.env.ISTHMUS_HUB || undefined) ?? file.hub;
  if (address === undefined)
    throw new UsageError(
      "no hub address: give --hub host:port, ISTHMUS_HUB, or a context with a hub in the config file (isthmus config set-context)",
    );
  if (!/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(address))
    throw new UsageError(`invalid hub address "${address}": expected host:port`);
  const token =
    flags.token ??
    (process.env.ISTHMUS_TOKEN || undefined) ??
    file.token ??
    (file.tokenFile === undefined ? undefined : readFileFor(file.tokenFile, "token file").trim());
  if (token === undefined)
    throw new UsageError(
      "no admin token: give --token, ISTHMUS_TOKEN, or token/tokenFile in the config file's context",
    );
  const insecure = flags.insecure ?? file.insecure === true;
  const caFile = flags.ca ?? (process.env.ISTHMUS_CA || undefined) ?? file.caFile;
  if (!insecure && caFile === undefined) {
    throw new UsageError(
      "no hub CA: give --ca <file>, ISTHMUS_CA, or caFile in the config file's context (or --insecure)",
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

/**
 * Runs `fn` with an admin client built from the command's flags, and closes it. A follower of
 * a highly available hub refuses every call before reading it and names the leader
 * (docs/high-availability.md): `fn` runs again there. A follower that names none (the leader
 * advertises no address: replicas behind one Service) is asked again on a new connection,
 * which the Service may send to another replica. A few hops at most.
 */
export async function withAdmin<T>(
  flags: ConnectionFlags,
  fn: (client: AdminClient, call: CallOptions) => Promise<T>,
): Promise<T> {
  const conn = resolveConnection(flags);
  const started = Date.now();
  for (let hops = 0; ; hops++) {
    const { client, call } = adminClient(conn);
    try {
      return await fn(client, call);
    } catch (err) {
      const hint = leaderHint(err);
      // No hint, too many hops, or no leader found for 10 s (etcd down: no election).
      const giveUp = hops >= MAX_HOPS || (hint === "" && Date.now() - started > 10_000);
      if (hint === undefined || giveUp) throw adminError(conn, err);
      if (hint === "") await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      else conn.address = hint;
    } finally {
      client.close();
    }
  }
}

/** Calls made before giving up on finding the leader: with three replicas behind a Service
 * and no hint, the chance of missing it this often is (2/3)^8, under 4%. */
const MAX_HOPS = 8;

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
