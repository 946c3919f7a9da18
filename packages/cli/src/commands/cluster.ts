import {
  type ClusterStatus,
  type CreateClusterResponse,
  CreateClusterResponseSchema,
  GetClusterResponseSchema,
  ListClustersResponseSchema,
  RotateClusterTokenResponseSchema,
} from "@isthmus/proto";
import { type Command, InvalidArgumentError } from "commander";
import { stringify } from "yaml";
import {
  type ConnectionFlags,
  resolveConnection,
  UsageError,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { age, type OutputFormat, outputOption, print, table } from "../output.js";
import { connectedCell, inSyncCell, lastSeenCell, nackReason, watchClusters } from "./status.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

function parseLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(value);
  if (m === null) throw new InvalidArgumentError(`invalid label "${value}": expected key=value`);
  return { ...previous, [m[1]!]: m[2]! };
}

function labelsOf(c: ClusterStatus): string {
  return Object.entries(c.cluster?.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function clusterRows(clusters: ClusterStatus[]): string {
  return table(
    [
      "CLUSTER",
      "LABELS",
      "CONNECTED",
      "IN SYNC",
      "LAST SEEN",
      "SERVICES",
      "ACKED",
      "NACKS",
      "WARNINGS",
      { header: "ENROLLED", wide: true },
      { header: "AGENT", wide: true },
      { header: "TRUST DOMAIN", wide: true },
      { header: "NACK", wide: true },
    ],
    clusters.map((c) => [
      c.cluster?.id ?? "",
      labelsOf(c),
      connectedCell(c),
      inSyncCell(c),
      lastSeenCell(c),
      c.serviceCount,
      c.ackedVersion,
      c.nacks.length,
      c.warnings.length,
      c.enrolled ? "yes" : "no",
      c.agentVersion,
      c.mesh?.trustDomain || c.cluster?.trustDomain || "",
      nackReason(c),
    ]),
  );
}

/** The isthmus-agent chart's values for a new cluster (charts/isthmus-agent/values.yaml). */
export function agentChartValues(
  clusterId: string,
  hubAddress: string,
  res: CreateClusterResponse,
): string {
  return stringify({
    clusterId,
    hub: { address: hubAddress, caPem: res.hubCaPem },
    bootstrapToken: res.bootstrapToken,
  });
}

export function registerClusterCommand(program: Command): void {
  const cluster = program
    .command("cluster")
    .description("register and inspect clusters at the hub");
  registerCreate(cluster);
  registerReads(cluster);
  registerChanges(cluster);
}

function registerCreate(cluster: Command): void {
  withConnectionOptions(cluster.command("create <id>"))
    .description("register a cluster; prints its one-time bootstrap token")
    .option(
      "-l, --label <key=value>",
      "cluster label used by policy selectors; repeatable",
      parseLabel,
      {},
    )
    .option(
      "--trust-domain <domain>",
      "trust domain of the cluster's mesh; the hub refuses any other from its agent (default: the first one the agent reports)",
    )
    .option(
      "--agent-hub-address <host:port>",
      "hub address the agent dials, in the printed chart values (default: the address this command used)",
    )
    .addOption(outputOption())
    .action(
      async (
        id: string,
        flags: ReadFlags & {
          label: Record<string, string>;
          trustDomain?: string;
          agentHubAddress?: string;
        },
      ) => {
        if (
          flags.agentHubAddress !== undefined &&
          !/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(flags.agentHubAddress)
        )
          throw new UsageError(
            `--agent-hub-address "${flags.agentHubAddress}": expected host:port`,
          );
        const address = flags.agentHubAddress ?? resolveConnection(flags).address;
        const res = await withAdmin(flags, (c, call) =>
          c.createCluster(
            { cluster: { id, labels: flags.label, trustDomain: flags.trustDomain ?? "" } },
            call,
          ),
        );
        print(
          flags.output,
          CreateClusterResponseSchema,
          res,
          () =>
            [
              `cluster ${id} registered; bootstrap token shown once, expires ${new Date(Number(res.tokenExpiresAt?.seconds ?? 0n) * 1000).toISOString()}`,
              `values of the isthmus-agent chart (save as values-${id}.yaml; helm upgrade --install isthmus-agent <chart> -n isthmus-system --create-namespace -f values-${id}.yaml):`,
              "",
              agentChartValues(id, address, res).trimEnd(),
            ].join("\n"),
          undefined,
          () => [`cluster/${id}`],
        );
      },
    );
}

/** `cluster list` and `cluster get`. */
function registerReads(cluster: Command): void {
  withConnectionOptions(cluster.command("list"))
    .description("list clusters with their status")
    .addOption(outputOption())
    .option("-w, --watch", "after the table, print each cluster again whenever it changes")
    .action(async (flags: ReadFlags & { watch?: boolean }) => {
      if (flags.watch) {
        await watchClusters(
          flags,
          async (c, call) => (await c.listClusters({}, call)).clusters,
          clusterRows,
        );
        return;
      }
      const res = await withAdmin(flags, (c, call) => c.listClusters({}, call));
      print(
        flags.output,
        ListClustersResponseSchema,
        res,
        () => clusterRows(res.clusters),
        undefined,
        () => res.clusters.map((c) => `cluster/${c.cluster?.id}`),
      );
    });

  withConnectionOptions(cluster.command("get <id>"))
    .description("show one cluster's status, NACKs and warnings")
    .addOption(outputOption())
    .action(async (id: string, flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.getCluster({ id }, call));
      print(
        flags.output,
        GetClusterResponseSchema,
        res,
        () => {
          const s = res.status!;
          const lines = [clusterRows([s])];
          if (s.mesh)
            lines.push(
              `network: ${s.mesh.network || "<none>"}  trust domain: ${s.mesh.trustDomain || "<none>"}  gateways: ${s.mesh.eastWestGateways.map((g) => `${g.address}:${g.port}`).join(", ") || "<none>"}`,
            );
          for (const w of s.warnings) lines.push(`warning ${w.code}: ${w.message}`);
          for (const e of s.refused)
            lines.push(`refused ${e.intentName}: ${e.object ? `${e.object}: ` : ""}${e.message}`);
          for (const d of s.driftRepairs)
            lines.push(
              `drift repaired ${d.object} (${d.change}, intent ${d.intentName}) ${age(d.time?.seconds)} ago`,
            );
          for (const n of s.nacks) lines.push(`nack ${n.nonce}: ${n.errors.join("; ")}`);
          return lines.join("\n");
        },
        undefined,
        () => [`cluster/${id}`],
      );
    });
}

/** `cluster delete` and `cluster rotate-token`. */
function registerChanges(cluster: Command): void {
  withConnectionOptions(cluster.command("delete <id>"))
    .description(
      "delete a cluster: its services leave every cluster at once and its certificate is revoked",
    )
    .action(async (id: string, flags: ConnectionFlags) => {
      await withAdmin(flags, (c, call) => c.deleteCluster({ id }, call));
      process.stdout.write(`cluster ${id} deleted\n`);
    });

  withConnectionOptions(cluster.command("rotate-token <id>"))
    .description("issue a new one-time bootstrap token; the previous one stops working")
    .addOption(outputOption())
    .action(async (id: string, flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.rotateClusterToken({ id }, call));
      print(
        flags.output,
        RotateClusterTokenResponseSchema,
        res,
        () => `new bootstrap token for ${id} (shown once):\n${res.bootstrapToken}`,
      );
    });
}
