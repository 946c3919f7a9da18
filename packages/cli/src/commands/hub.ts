import { join, resolve } from "node:path";
import type { Hub, HubConfig } from "@isthmus/hub";
import type { Command } from "commander";
import { UsageError } from "../connection.js";
import { ExitCode } from "../output.js";

interface HubFlags {
  config?: string;
  listen?: string;
  metricsListen?: string;
  dataDir?: string;
  insecure?: boolean;
  adminTokenFile?: string;
  init?: boolean;
  logFormat?: string;
  store?: string;
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  etcdUsername?: string;
  etcdPasswordFile?: string;
  advertiseAddress?: string;
  peerAddress?: string;
}

/** The `etcd:` keys the --etcd-* flags set. */
function etcdOverrides(flags: HubFlags): Record<string, string> | undefined {
  const etcd: Record<string, string> = {};
  if (flags.etcdEndpoints !== undefined) etcd.endpoints = flags.etcdEndpoints;
  if (flags.etcdPrefix !== undefined) etcd.prefix = flags.etcdPrefix;
  if (flags.etcdCaFile !== undefined) etcd.caFile = flags.etcdCaFile;
  if (flags.etcdCertFile !== undefined) etcd.certFile = flags.etcdCertFile;
  if (flags.etcdKeyFile !== undefined) etcd.keyFile = flags.etcdKeyFile;
  if (flags.etcdUsername !== undefined) etcd.username = flags.etcdUsername;
  if (flags.etcdPasswordFile !== undefined) etcd.passwordFile = flags.etcdPasswordFile;
  return Object.keys(etcd).length > 0 ? etcd : undefined;
}

/** What `isthmus hub` logs once it listens: its addresses, where the admin tokens and the CA
 * are, and the command that makes a CLI context of them. Never a token itself. */
export function startupNotes(
  config: HubConfig,
  hub: Pick<Hub, "port" | "metricsPort">,
  flags: Pick<HubFlags, "config" | "adminTokenFile">,
): Record<string, unknown> {
  const host = config.listen.replace(/:\d+$/, "").replace(/^0\.0\.0\.0$|^\[?::\]?$/, "localhost");
  // The control-plane CA lives in the data dir, or in etcd with the etcd store (then the
  // admin API hands it out: `isthmus cluster create` prints it as hub.caPem).
  const caFile = config.tls?.certFile
    ? `the CA that issued ${resolve(config.tls.certFile)}`
    : config.store === "etcd"
      ? "in etcd (isthmus cluster create prints it as hub.caPem)"
      : resolve(join(config.dataDir, "control-plane", "ca-cert.pem"));
  const tokenFile = flags.adminTokenFile === undefined ? undefined : resolve(flags.adminTokenFile);
  const fromConfig = config.adminTokens.length - (tokenFile === undefined ? 0 : 1);
  const tokens = [
    ...(tokenFile === undefined ? [] : [`--admin-token-file ${tokenFile}`]),
    ...(fromConfig > 0
      ? [`adminTokens of ${flags.config ?? "the hub config"} (${fromConfig})`]
      : []),
  ];
  return {
    listen: config.listen,
    port: hub.port,
    metricsPort: hub.metricsPort,
    tls: !config.insecure,
    caFile: config.insecure ? "none (--insecure: plaintext)" : caFile,
    adminTokens: tokens.join(", ") || "none: give --admin-token-file or adminTokens in hub.yaml",
    cli: `isthmus config set-context hub --hub ${host}:${hub.port} ${config.insecure ? "--insecure" : `--ca ${config.tls?.certFile || config.store === "etcd" ? "<CA file>" : caFile}`} --token-file ${tokenFile ?? "<admin token file>"}`,
  };
}

/** `isthmus hub`: runs the hub until SIGINT/SIGTERM. Flags override the config file. */
export function registerHubCommand(program: Command): void {
  program
    .command("hub")
    .description("run the hub (gRPC agent and admin API, metrics) until interrupted")
    .option("--config <file>", "hub.yaml (keys in packages/hub/README.md)")
    .option("--listen <host:port>", "gRPC address (default 0.0.0.0:8443)")
    .option(
      "--metrics-listen <host:port>",
      'metrics/health address, "" to disable (default 0.0.0.0:9090)',
    )
    .option("--data-dir <dir>", "store and control-plane CA (default /var/lib/isthmus)")
    .option("--insecure", "plaintext gRPC for local use (agents cannot connect)")
    .option("--admin-token-file <file>", "file holding an admin-role bearer token")
    .option(
      "--log-format <format>",
      "json (default) or text; also logFormat in hub.yaml, ISTHMUS_LOG_FORMAT",
    )
    .option(
      "--init",
      "start with an empty store in a data dir whose state.json is missing (refused when it exists)",
    )
    .option("--store <file|etcd>", "where clusters and policies live (default file: state.json)")
    .option("--etcd-endpoints <urls>", "etcd client URLs, comma-separated (http(s)://host:2379)")
    .option("--etcd-prefix <prefix>", "key prefix in etcd (default /isthmus/)")
    .option("--etcd-ca-file <file>", "CA of etcd's server certificate (PEM)")
    .option("--etcd-cert-file <file>", "client certificate for etcd (PEM)")
    .option("--etcd-key-file <file>", "key of the client certificate (PEM)")
    .option("--etcd-username <user>", "etcd user (with --etcd-password-file)")
    .option("--etcd-password-file <file>", "file holding the etcd user's password")
    .option(
      "--advertise-address <host:port>",
      "with etcd: where agents and the CLI reach this replica (the leader hint)",
    )
    .option(
      "--peer-address <host:port>",
      "with etcd: where the other replicas reach this one (default: --advertise-address)",
    )
    .action(async (flags: HubFlags) => {
      // Loaded here so that other commands start without the hub's code.
      const { createHub, defaultHubConfig, loadHubConfigFile, resolveHubConfig } = await import(
        "@isthmus/hub"
      );
      const { createLogger, parseLogFormat } = await import("@isthmus/logging");
      const base = flags.config === undefined ? defaultHubConfig : loadHubConfigFile(flags.config);
      const overrides: Record<string, unknown> = {};
      if (flags.listen !== undefined) overrides.listen = flags.listen;
      if (flags.metricsListen !== undefined) overrides.metricsListen = flags.metricsListen;
      if (flags.dataDir !== undefined) overrides.dataDir = flags.dataDir;
      if (flags.insecure) overrides.insecure = true;
      if (flags.store !== undefined) overrides.store = flags.store;
      if (flags.advertiseAddress !== undefined) overrides.advertiseAddress = flags.advertiseAddress;
      if (flags.peerAddress !== undefined) overrides.peerAddress = flags.peerAddress;
      const etcd = etcdOverrides(flags);
      if (etcd !== undefined) overrides.etcd = etcd;
      if (flags.logFormat !== undefined) {
        try {
          overrides.logFormat = parseLogFormat(flags.logFormat, "--log-format");
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
      }
      const config = resolveHubConfig(overrides, "flags", base);
      if (flags.adminTokenFile !== undefined) {
        const [token] = resolveHubConfig(
          { adminTokens: [{ name: "flag", role: "admin", tokenFile: flags.adminTokenFile }] },
          "--admin-token-file",
        ).adminTokens;
        config.adminTokens = [...config.adminTokens, token!];
      }
      // Everything from here on is a log line on one stream (stderr), in one format: the hub's
      // "hub started" record tells its ports, and a failure to start is a record too.
      const logger = createLogger({
        component: "hub",
        ...(config.logFormat === undefined ? {} : { format: config.logFormat }),
      });
      let hub: Awaited<ReturnType<typeof createHub>>;
      try {
        hub = await createHub({ config, logger, init: flags.init === true });
      } catch (err) {
        logger.error("hub failed to start", { err });
        throw new ExitCode(1);
      }
      // How to reach the hub and get what a client needs, as a record of the same stream.
      logger.info("hub ready", startupNotes(config, hub, flags));
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await hub.close();
    });
}
