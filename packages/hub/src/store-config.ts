// Opens the etcd store that hub.yaml's `store: etcd` and `etcd:` describe: reads the TLS and
// password files, naming the field of one that cannot be read.
import { readFile } from "node:fs/promises";
import type { Logger } from "@isthmus/logging";
import { ConfigError, type EtcdConfig } from "./config.js";
import { type EtcdStore, type EtcdStoreOptions, openEtcdStore } from "./store-etcd.js";

async function read(file: string, field: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(`etcd.${field}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The store options for `config`, with the files' contents. */
export async function etcdStoreOptions(
  config: EtcdConfig,
  logger?: Logger,
): Promise<EtcdStoreOptions> {
  const options: EtcdStoreOptions = {
    ...(logger !== undefined ? { logger } : {}),
    endpoints: config.endpoints,
    prefix: config.prefix,
    requestTimeoutMs: config.requestTimeoutMs,
    maxTxnOps: config.maxTxnOps,
  };
  if (config.caFile !== undefined || config.certFile !== undefined) {
    options.tls = {
      ...(config.caFile !== undefined ? { caPem: await read(config.caFile, "caFile") } : {}),
      ...(config.certFile !== undefined
        ? { certPem: await read(config.certFile, "certFile") }
        : {}),
      ...(config.keyFile !== undefined ? { keyPem: await read(config.keyFile, "keyFile") } : {}),
    };
  }
  if (config.username !== undefined) {
    const password =
      config.passwordFile !== undefined
        ? (await read(config.passwordFile, "passwordFile")).trim()
        : (config.password ?? "");
    options.auth = { username: config.username, password };
  }
  return options;
}

export async function openConfiguredEtcdStore(
  config: EtcdConfig,
  logger?: Logger,
): Promise<EtcdStore> {
  return openEtcdStore(await etcdStoreOptions(config, logger));
}
