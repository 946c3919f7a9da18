import {
  type CallOptions,
  CatalogEventType,
  type ClusterStatus,
  ClusterStatusSchema,
  type GetStatusResponse,
  GetStatusResponseSchema,
  type ListCatalogResponse,
  ListCatalogResponseSchema,
  Visibility,
  WatchCatalogResponseSchema,
} from "@isthmus/proto";
import type { Command } from "commander";
import { conflictLine } from "../conflicts.js";
import {
  type AdminClient,
  type ConnectionFlags,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { plainJson } from "../object-shape.js";
import {
  age,
  type OutputFormat,
  outputOption,
  print,
  printJson,
  table,
  tableSettings,
} from "../output.js";
import { pollWatch } from "../watch.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

/** Longest NACK reason shown in the table (the whole text is in `-o yaml`). */
const REASON_WIDTH = 100;

/** The first intent the agent refused and still does not hold, with the agent's reason
 * (a missing namespace, an object someone else owns…). */
export function nackReason(c: ClusterStatus): string {
  const first = c.refused[0];
  if (first === undefined) return "";
  const intents = new Set(c.refused.map((e) => e.intentName)).size;
  let text = `${first.intentName}: ${first.message}`.replace(/\s+/g, " ");
  if (text.length > REASON_WIDTH) text = `${text.slice(0, REASON_WIDTH - 1)}…`;
  return intents > 1 ? `${text} (+${intents - 1} more)` : text;
}

/** The newest drift repair: which object, how long ago. */
export function lastDriftRepair(c: ClusterStatus): string {
  const last = c.driftRepairs[0];
  if (last === undefined) return "";
  return `${last.object} ${last.change} ${age(last.time?.seconds)} ago`;
}

export function connectedCell(c: ClusterStatus): string {
  return c.connected ? "yes" : c.staleUntil ? "no (stale)" : "no";
}

export function inSyncCell(c: ClusterStatus): string {
  return c.inSync ? "yes" : !c.connected ? "no" : c.pendingNonce ? "no (delta in flight)" : "no";
}

/** LAST SEEN: how long ago the agent's last message arrived; never for a cluster whose agent
 * never connected. */
export function lastSeenCell(c: ClusterStatus): string {
  return c.lastSeen === undefined ? "<never>" : age(c.lastSeen.seconds);
}

/** The rows `isthmus status` prints, one per cluster (wide columns with `-o wide`). */
export function statusRows(clusters: ClusterStatus[]): string {
  return table(
    [
      "CLUSTER",
      "CONNECTED",
      "IN SYNC",
      "LAST SEEN",
      "SERVICES",
      "IDENTITIES",
      "ACKED",
      "WARNINGS",
      "DRIFT REPAIRS",
      "NACK",
      { header: "AGENT", wide: true },
      { header: "NETWORK", wide: true },
      { header: "TRUST DOMAIN", wide: true },
      { header: "LAST DRIFT REPAIR", wide: true },
    ],
    clusters.map((c) => [
      c.cluster?.id ?? "",
      connectedCell(c),
      inSyncCell(c),
      lastSeenCell(c),
      c.serviceCount,
      c.identityCount,
      c.ackedVersion,
      c.warnings.map((w) => w.code).join(","),
      c.driftRepairCount.toString(),
      nackReason(c),
      c.agentVersion,
      c.mesh?.network ?? "",
      c.mesh?.trustDomain || c.cluster?.trustDomain || "",
      lastDriftRepair(c),
    ]),
  );
}

/** What `isthmus status` prints for people: the hub line (unless --no-headers), then one row
 * per cluster. */
export function statusTable(res: GetStatusResponse): string {
  const rows = statusRows(res.clusters);
  if (tableSettings.noHeaders) return rows;
  const hub = `hub ${res.hubVersion}  system version ${res.systemVersion}  policies ${res.policyCount}${res.warmingUp ? "  (warming up)" : ""}`;
  const body = rows === "" ? `${hub}\nNo clusters registered.` : `${hub}\n${rows}`;
  return [body, ...conflictLines(res)].join("\n");
}

/** The foreign objects in conflict, one line each under the table, by cluster. */
function conflictLines(res: GetStatusResponse): string[] {
  return res.clusters.flatMap((c) =>
    c.conflicts.map((x) => `conflict in ${c.cluster?.id ?? ""}: ${conflictLine(x)}`),
  );
}

/** `--watch` of status and cluster list: the clusters every second, a row per change. */
export async function watchClusters(
  flags: ReadFlags,
  list: (client: AdminClient, call: CallOptions) => Promise<ClusterStatus[]>,
  rows: (clusters: ClusterStatus[]) => string,
): Promise<void> {
  await withAdmin(flags, (client, call) =>
    pollWatch({
      list: () => list(client, call),
      id: (c) => c.cluster?.id ?? "",
      state: (c) => JSON.stringify(plainJson(ClusterStatusSchema, c)),
      print(clusters, first) {
        if (flags.output === "table" || flags.output === "wide") {
          tableSettings.wide = flags.output === "wide";
          const headers = tableSettings.noHeaders;
          tableSettings.noHeaders = headers || !first;
          const text = rows(clusters);
          tableSettings.noHeaders = headers;
          if (text !== "") process.stdout.write(`${text}\n`);
        } else if (flags.output === "name") {
          for (const c of clusters) process.stdout.write(`cluster/${c.cluster?.id}\n`);
        } else {
          for (const c of clusters)
            printJson(flags.output, plainJson(ClusterStatusSchema, c), true);
        }
      },
    }),
  );
}

export function registerStatusCommands(program: Command): void {
  withConnectionOptions(program.command("status"))
    .description("the hub's status and every cluster's")
    .addOption(outputOption())
    .option("-w, --watch", "after the table, print each cluster again whenever its status changes")
    .action(async (flags: ReadFlags & { watch?: boolean }) => {
      if (flags.watch) {
        await watchClusters(
          flags,
          async (c, call) => (await c.getStatus({}, call)).clusters,
          statusRows,
        );
        return;
      }
      const res = await withAdmin(flags, (c, call) => c.getStatus({}, call));
      print(
        flags.output,
        GetStatusResponseSchema,
        res,
        () => statusTable(res),
        undefined,
        () => res.clusters.map((c) => `cluster/${c.cluster?.id}`),
      );
    });
  registerCatalogCommand(program);
}

/** `catalog list [-w]`: the table or objects, or the hub's watch stream. */
function registerCatalogCommand(program: Command): void {
  const catalog = program.command("catalog").description("the global service catalog");
  withConnectionOptions(catalog.command("list"))
    .description("list services (and identities with -o json|yaml)")
    .option("--cluster <id>", "only this cluster")
    .option("-n, --namespace <ns>", "only this namespace")
    .option("--service <name>", "only this service")
    .option("-w, --watch", "after the list, stream changes until interrupted")
    .addOption(outputOption())
    .action(
      async (
        flags: ReadFlags & {
          cluster?: string;
          namespace?: string;
          service?: string;
          watch?: boolean;
        },
      ) => {
        const filter = {
          clusterId: flags.cluster ?? "",
          namespace: flags.namespace ?? "",
          service: flags.service ?? "",
        };
        await withAdmin(flags, async (c, call) => {
          if (!flags.watch) {
            printCatalog(flags.output, await c.listCatalog({ filter }, call));
            return;
          }
          const { timeoutMs: _ignored, ...streaming } = call;
          for await (const ev of c.watchCatalog({ filter }, streaming)) {
            if (flags.output === "table" || flags.output === "wide") {
              const s = ev.service;
              const kind = ev.type === CatalogEventType.REMOVED ? "REMOVED" : "UPSERTED";
              process.stdout.write(
                `${kind} ${s?.clusterId}/${s?.service?.namespace}/${s?.service?.name}\n`,
              );
            } else if (flags.output === "name") {
              const s = ev.service;
              process.stdout.write(
                `service/${s?.clusterId}/${s?.service?.namespace}/${s?.service?.name}\n`,
              );
            } else {
              printJson(flags.output, plainJson(WatchCatalogResponseSchema, ev), true);
            }
          }
        });
      },
    );
}

/** One `catalog list` answer in the chosen output. */
function printCatalog(output: OutputFormat, res: ListCatalogResponse): void {
  print(
    output,
    ListCatalogResponseSchema,
    res,
    () =>
      table(
        [
          "CLUSTER",
          "NAMESPACE",
          "SERVICE",
          "PORTS",
          "VISIBILITY",
          "READY",
          "IDENTITIES",
          "STALE",
          { header: "PORT NAMES", wide: true },
          { header: "LABELS", wide: true },
        ],
        res.services.map((s) => [
          s.clusterId,
          s.service?.namespace ?? "",
          s.service?.name ?? "",
          s.service?.ports.map((p) => p.port).join(","),
          s.service?.visibility === Visibility.PUBLIC ? "public" : "private",
          s.service?.readyEndpoints ?? 0,
          s.service?.serviceAccounts.join(","),
          s.stale ? "yes" : "no",
          s.service?.ports
            .map((p) => `${p.name || "-"}:${p.port}/${p.protocol || "TCP"}`)
            .join(","),
          Object.entries(s.service?.labels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(","),
        ]),
      ),
    undefined,
    () =>
      res.services.map((s) => `service/${s.clusterId}/${s.service?.namespace}/${s.service?.name}`),
  );
}
