import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseLogFormat } from "@isthmus/logging";
import type { AgentConfig } from "./agent.js";

/** Flags, their environment variables and meaning (also in packages/agent/README.md). */
export const AGENT_FLAGS = {
  "cluster-id": { env: "ISTHMUS_CLUSTER_ID", help: "this cluster's id at the hub (required)" },
  hub: {
    env: "ISTHMUS_HUB_ADDRESS",
    help: "hub address host:port, or the addresses of a highly available hub's replicas separated by commas (required)",
  },
  "hub-ca-file": {
    env: "ISTHMUS_HUB_CA_FILE",
    help: "PEM file of the CA of the hub's server certificate (required)",
  },
  "hub-server-name": {
    env: "ISTHMUS_HUB_SERVER_NAME",
    help: "TLS name of the hub when it differs from the address host",
  },
  "bootstrap-token-file": {
    env: "ISTHMUS_BOOTSTRAP_TOKEN_FILE",
    help: "file holding the one-time bootstrap token",
  },
  kubeconfig: { env: "KUBECONFIG", help: "kubeconfig file; default in-cluster or ~/.kube/config" },
  namespace: {
    env: "ISTHMUS_NAMESPACE",
    help: "agent namespace, holds the identity Secret (default isthmus-system)",
  },
  "istio-namespace": {
    env: "ISTHMUS_ISTIO_NAMESPACE",
    help: "Istio control plane namespace (default istio-system)",
  },
  locality: {
    env: "ISTHMUS_LOCALITY",
    help: "cluster locality region/zone (default from node labels)",
  },
  listen: { env: "ISTHMUS_LISTEN", help: "health and metrics address (default 0.0.0.0:9090)" },
  "mesh-ca-secret": {
    env: "ISTHMUS_MESH_CA_SECRET",
    help: "Istio's plug-in CA Secret in the Istio namespace (cacerts) to export the intermediates' expiry of; needs get on it",
  },
  "log-format": { env: "ISTHMUS_LOG_FORMAT", help: "log line format: json (default) or text" },
  "policy-source": {
    env: "ISTHMUS_POLICY_SOURCE",
    help: "true: forward this cluster's ConnectionPolicy objects to the hub (default false)",
  },
} as const;

type Flag = keyof typeof AGENT_FLAGS;

const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Agent configuration from command-line flags, falling back to environment variables
 * (`ISTHMUS_BOOTSTRAP_TOKEN` holds the token itself when no token file is given).
 * Errors name the flag and its variable.
 */
export function parseAgentConfig(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): AgentConfig {
  const options = Object.fromEntries(
    Object.keys(AGENT_FLAGS).map((k) => [k, { type: "string" as const }]),
  );
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
      .values as Record<string, string | undefined>;
  } catch (err) {
    throw new Error(`agent: ${err instanceof Error ? err.message : String(err)}`);
  }
  const get = (flag: Flag): string | undefined => {
    const v = values[flag] ?? env[AGENT_FLAGS[flag].env];
    return v === undefined || v === "" ? undefined : v;
  };
  const need = (flag: Flag): string => {
    const v = get(flag);
    if (v === undefined)
      throw new Error(
        `agent: --${flag} (or ${AGENT_FLAGS[flag].env}) is required: ${AGENT_FLAGS[flag].help}`,
      );
    return v;
  };
  const readFile = (flag: Flag, path: string): string => {
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      throw new Error(
        `agent: --${flag} ${path}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };

  const clusterId = need("cluster-id");
  if (!DNS1123.test(clusterId) || clusterId.length > 63) {
    throw new Error(
      `agent: --cluster-id "${clusterId}" is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)`,
    );
  }
  const hubAddress = need("hub");
  for (const address of hubAddress.split(",")) {
    if (!/^[^,\s]+:[0-9]{1,5}$/.test(address.trim()))
      throw new Error(
        `agent: --hub "${address.trim()}" must be host:port (several: separated by commas)`,
      );
  }
  const caFile = need("hub-ca-file");
  const hubCaPem = readFile("hub-ca-file", caFile);
  if (!hubCaPem.includes("-----BEGIN CERTIFICATE-----"))
    throw new Error(`agent: --hub-ca-file ${caFile}: no PEM certificate in the file`);

  const config: AgentConfig = {
    clusterId,
    hubAddress,
    hubCaPem,
    listen: get("listen") ?? "0.0.0.0:9090",
  };
  const logFormat = get("log-format");
  if (logFormat !== undefined)
    config.logFormat = parseLogFormat(
      logFormat,
      `agent: --log-format (or ${AGENT_FLAGS["log-format"].env})`,
    );
  const tokenFile = get("bootstrap-token-file");
  const token =
    tokenFile !== undefined
      ? readFile("bootstrap-token-file", tokenFile).trim()
      : env.ISTHMUS_BOOTSTRAP_TOKEN;
  if (token !== undefined && token !== "") config.bootstrapToken = token;
  const optional: [Flag, keyof AgentConfig][] = [
    ["hub-server-name", "hubServerName"],
    ["kubeconfig", "kubeconfigPath"],
    ["namespace", "namespace"],
    ["istio-namespace", "istioNamespace"],
    ["locality", "locality"],
    ["mesh-ca-secret", "meshCaSecret"],
  ];
  for (const [flag, key] of optional) {
    const v = get(flag);
    if (v !== undefined) (config as unknown as Record<string, string>)[key] = v;
  }
  const policySource = get("policy-source");
  if (policySource !== undefined) {
    if (policySource !== "true" && policySource !== "false")
      throw new Error(
        `agent: --policy-source (or ISTHMUS_POLICY_SOURCE) "${policySource}": must be true or false`,
      );
    config.policySource = policySource === "true";
  }
  return config;
}
