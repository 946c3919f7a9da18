import {
  type ClusterStatus,
  CreateClusterResponseSchema,
  GetClusterResponseSchema,
  ListClustersResponseSchema,
  RotateClusterTokenResponseSchema,
} from "@isthmus/proto";
import { type Command, InvalidArgumentError } from "commander";
import { type ConnectionFlags, withAdmin, withConnectionOptions } from "../connection.js";
import { age, type OutputFormat, outputOption, print, table } from "../output.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

function parseLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)=([-A-Za-z0-9_.]*)$/.exec(value);
  if (m === null) throw new InvalidArgumentError(`invalid label "${value}": expected key=value`);
  return { ...previous, [m[1]!]: m[2]! };
}

function statusRows(clusters: ClusterStatus[]): string {
  return table(
    ["CLUSTER", "LABELS", "CONNECTED", "LAST SEEN", "SERVICES", "ACKED", "NACKS", "WARNINGS"],
    clusters.map((c) => [
      c.cluster?.id ?? "",
      Object.entries(c.cluster?.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(",") || "-",
      c.connected ? "yes" : c.staleUntil ? "no (stale)" : "no",
      age(c.lastSeen?.seconds),
      c.serviceCount,
      c.ackedVersion || "-",
      c.nacks.length,
      c.warnings.length,
    ]),
  );
}

export function registerClusterCommand(program: Command): void {
  const cluster = program
    .command("cluster")
    .description("register and inspect clusters at the hub");

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
    .addOption(outputOption())
    .action(
      async (
        id: string,
        flags: ReadFlags & { label: Record<string, string>; trustDomain?: string },
      ) => {
        const res = await withAdmin(flags, (c, call) =>
          c.createCluster(
            { cluster: { id, labels: flags.label, trustDomain: flags.trustDomain ?? "" } },
            call,
          ),
        );
        print(flags.output, CreateClusterResponseSchema, res, () =>
          [
            `cluster ${id} registered`,
            `bootstrap token (shown once, expires ${new Date(Number(res.tokenExpiresAt?.seconds ?? 0n) * 1000).toISOString()}):`,
            res.bootstrapToken,
          ].join("\n"),
        );
      },
    );

  withConnectionOptions(cluster.command("list"))
    .description("list clusters with their status")
    .addOption(outputOption())
    .action(async (flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.listClusters({}, call));
      print(flags.output, ListClustersResponseSchema, res, () => statusRows(res.clusters));
    });

  withConnectionOptions(cluster.command("get <id>"))
    .description("show one cluster's status, NACKs and warnings")
    .addOption(outputOption())
    .action(async (id: string, flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.getCluster({ id }, call));
      print(flags.output, GetClusterResponseSchema, res, () => {
        const s = res.status!;
        const lines = [statusRows([s])];
        if (s.mesh)
          lines.push(
            `network: ${s.mesh.network || "-"}  trust domain: ${s.mesh.trustDomain || "-"}  gateways: ${s.mesh.eastWestGateways.map((g) => `${g.address}:${g.port}`).join(", ") || "-"}`,
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
      });
    });

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
