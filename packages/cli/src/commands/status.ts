import {
  CatalogEventType,
  type ClusterStatus,
  type GetStatusResponse,
  GetStatusResponseSchema,
  ListCatalogResponseSchema,
  Visibility,
  WatchCatalogResponseSchema,
} from "@isthmus/proto";
import type { Command } from "commander";
import { stringify } from "yaml";
import { type ConnectionFlags, withAdmin, withConnectionOptions } from "../connection.js";
import { plainJson } from "../object-shape.js";
import { age, type OutputFormat, outputOption, print, table } from "../output.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

/** Longest NACK reason shown in the table (the whole text is in `-o yaml`). */
const REASON_WIDTH = 100;

/** The first intent the agent refused and still does not hold, with the agent's reason. */
export function nackReason(c: ClusterStatus): string {
  const first = c.refused[0];
  if (first === undefined) return "-";
  const intents = new Set(c.refused.map((e) => e.intentName)).size;
  let text = `${first.intentName}: ${first.message}`.replace(/\s+/g, " ");
  if (text.length > REASON_WIDTH) text = `${text.slice(0, REASON_WIDTH - 1)}…`;
  return intents > 1 ? `${text} (+${intents - 1} more)` : text;
}

/** Drift repairs: how many, and the newest (which object, how long ago). */
export function driftSummary(c: ClusterStatus): string {
  const last = c.driftRepairs[0];
  if (last === undefined) return "-";
  return `${c.driftRepairCount} (last ${last.object} ${last.change} ${age(last.time?.seconds)} ago)`;
}

/** What `isthmus status` prints for people: the hub line, then one row per cluster. */
export function statusTable(res: GetStatusResponse): string {
  return [
    `hub ${res.hubVersion}  system version ${res.systemVersion}  policies ${res.policyCount}${res.warmingUp ? "  (warming up)" : ""}`,
    table(
      [
        "CLUSTER",
        "CONNECTED",
        "LAST SEEN",
        "SERVICES",
        "IDENTITIES",
        "ACKED",
        "IN SYNC",
        "WARNINGS",
        "DRIFT REPAIRS",
        "NACK",
      ],
      res.clusters.map((c) => [
        c.cluster?.id ?? "",
        c.connected ? "yes" : c.staleUntil ? "no (stale)" : "no",
        age(c.lastSeen?.seconds),
        c.serviceCount,
        c.identityCount,
        c.ackedVersion || "-",
        c.inSync ? "yes" : c.pendingNonce ? "no (delta in flight)" : "no",
        c.warnings.map((w) => w.code).join(",") || "-",
        driftSummary(c),
        nackReason(c),
      ]),
    ),
  ].join("\n");
}

export function registerStatusCommands(program: Command): void {
  withConnectionOptions(program.command("status"))
    .description("the hub's status and every cluster's")
    .addOption(outputOption())
    .action(async (flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.getStatus({}, call));
      print(flags.output, GetStatusResponseSchema, res, () => statusTable(res));
    });

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
            const res = await c.listCatalog({ filter }, call);
            print(flags.output, ListCatalogResponseSchema, res, () =>
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
                ],
                res.services.map((s) => [
                  s.clusterId,
                  s.service?.namespace ?? "",
                  s.service?.name ?? "",
                  s.service?.ports.map((p) => p.port).join(",") || "-",
                  s.service?.visibility === Visibility.PUBLIC ? "public" : "private",
                  s.service?.readyEndpoints ?? 0,
                  s.service?.serviceAccounts.join(",") || "-",
                  s.stale ? "yes" : "no",
                ]),
              ),
            );
            return;
          }
          const { timeoutMs: _ignored, ...streaming } = call;
          for await (const ev of c.watchCatalog({ filter }, streaming)) {
            if (flags.output === "table") {
              const s = ev.service;
              const kind = ev.type === CatalogEventType.REMOVED ? "REMOVED" : "UPSERTED";
              process.stdout.write(
                `${kind} ${s?.clusterId}/${s?.service?.namespace}/${s?.service?.name}\n`,
              );
            } else {
              const json = plainJson(WatchCatalogResponseSchema, ev);
              process.stdout.write(
                flags.output === "json" ? `${JSON.stringify(json)}\n` : `---\n${stringify(json)}`,
              );
            }
          }
        });
      },
    );
}
