import type { Caller, ClusterInput, KubeObject, Mesh, ServiceTarget } from "@isthmus/mesh-model";
import type { Command } from "commander";
import { resolveTargets, type TargetFlags, withTargetOptions } from "../check/targets.js";
import {
  type AdminClient,
  type ConnectionFlags,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { ExitCode } from "../output.js";
import { decisionOf, judge, type Mismatch } from "../verify/compare.js";

type VerifyFlags = ConnectionFlags & TargetFlags;

interface VerifyReport {
  /** Where the objects came from: the agents (through the hub) or kubeconfigs. */
  source: "agents" | "kubeconfig";
  clusters: string[];
  /** Registered clusters whose agent is not connected (agents source): not read. */
  disconnected: string[];
  compared: number;
  skipped: number;
  /** Catalog services in clusters this run did not read: not compared. */
  unread: string[];
  mismatches: Mismatch[];
}

/** `isthmus verify`: the hub's decisions against what the clusters' live objects enforce. */
export function registerVerifyCommand(program: Command): void {
  withTargetOptions(withConnectionOptions(program.command("verify"), { context: false }), "to read")
    .description(
      "compare the hub's decision for every identity x service x port with what Istio enforces " +
        "over each cluster's live objects (the mesh model); exit code 1 when any differs",
    )
    .action(async (flags: VerifyFlags) => {
      const report = await runVerify(flags);
      process.stdout.write(flags.output === "json" ? toJson(report) : toText(report));
      if (report.mismatches.length > 0) throw new ExitCode(1);
    });
}

/** No cluster named: the objects come from the agents, through the hub. */
const fromAgents = (flags: VerifyFlags) =>
  flags.cluster.length === 0 && flags.kubeconfig.length === 0 && flags.context.length === 0;

/**
 * Every connected cluster's objects as its agent lists them on the hub's request, in parallel
 * (pod IPs replaced by stand-ins); clusters whose agent is not connected are returned apart.
 */
async function readFromAgents(
  client: AdminClient,
  call: Parameters<AdminClient["getStatus"]>[1],
): Promise<{ inputs: ClusterInput[]; disconnected: string[] }> {
  const status = await client.getStatus({}, call);
  const connected = status.clusters.filter((c) => c.connected).map((c) => c.cluster?.id ?? "");
  const disconnected = status.clusters.filter((c) => !c.connected).map((c) => c.cluster?.id ?? "");
  const inputs = await Promise.all(
    connected.map(async (id) => {
      const res = await client.getClusterObjects({ clusterId: id }, { ...call, timeoutMs: 90_000 });
      return { id, objects: res.objectsJson.map((j) => JSON.parse(j) as KubeObject) };
    }),
  );
  return { inputs, disconnected };
}

/** Every cluster's objects, read in parallel; a cluster that cannot be read fails the run. */
async function readClusters(flags: VerifyFlags): Promise<ClusterInput[]> {
  const { readClusterObjects } = await import("@isthmus/agent");
  const clusters = await resolveTargets(flags);
  return Promise.all(
    clusters.map(async ({ target, kube }) => {
      try {
        return {
          id: target.id,
          objects: await readClusterObjects(kube, target.id, flags.istioNamespace),
        };
      } finally {
        kube.close();
      }
    }),
  );
}

/** The callers to try: every service account a Pod runs as (the admin API lists no identities). */
function callersOf(inputs: readonly ClusterInput[]): Caller[] {
  const seen = new Map<string, Caller>();
  for (const { id, objects } of inputs)
    for (const o of objects) {
      if (o.kind !== "Pod") continue;
      const namespace = o.metadata?.namespace ?? "default";
      const serviceAccount =
        (o.spec as { serviceAccountName?: string } | undefined)?.serviceAccountName || "default";
      seen.set(`${id}/${namespace}/${serviceAccount}`, { cluster: id, namespace, serviceAccount });
    }
  return [...seen].sort(([a], [b]) => a.localeCompare(b)).map(([, c]) => c);
}

/** Reads the clusters, asks the hub for each pair, judges each decision with the model. */
export async function runVerify(flags: VerifyFlags): Promise<VerifyReport> {
  const { buildMesh } = await import("@isthmus/mesh-model");
  const agents = fromAgents(flags);
  const fromKube = agents ? undefined : await readClusters(flags);
  return withAdmin(flags, async (client, call) => {
    const read = fromKube === undefined ? await readFromAgents(client, call) : undefined;
    const inputs = fromKube ?? read!.inputs;
    const mesh = buildMesh(inputs);
    const clusterIds = new Set(inputs.map((c) => c.id));
    const callers = callersOf(inputs);
    const catalog = await client.listCatalog({}, call);
    const report: VerifyReport = {
      source: agents ? "agents" : "kubeconfig",
      clusters: [...clusterIds],
      disconnected: read?.disconnected ?? [],
      compared: 0,
      skipped: 0,
      unread: [],
      mismatches: [],
    };
    const targets: ServiceTarget[] = [];
    for (const s of catalog.services) {
      const svc = s.service;
      if (svc === undefined) continue;
      if (!clusterIds.has(s.clusterId)) {
        report.unread.push(`${s.clusterId}/${svc.namespace}/${svc.name}`);
        continue;
      }
      for (const p of svc.ports)
        targets.push({
          cluster: s.clusterId,
          namespace: svc.namespace,
          service: svc.name,
          port: p.port,
        });
    }
    for (const caller of callers)
      for (const target of targets) await comparePair(client, call, mesh, caller, target, report);
    return report;
  });
}

async function comparePair(
  client: AdminClient,
  call: Parameters<AdminClient["explain"]>[1],
  mesh: Mesh,
  caller: Caller,
  target: ServiceTarget,
  report: VerifyReport,
): Promise<void> {
  const ex = await client.explain(
    {
      source: {
        clusterId: caller.cluster,
        namespace: caller.namespace,
        serviceAccount: caller.serviceAccount,
      },
      destination: {
        clusterId: target.cluster,
        namespace: target.namespace,
        service: target.service,
        port: target.port,
      },
    },
    call,
  );
  const decided = decisionOf(ex);
  if (decided === undefined) {
    report.skipped++;
    return;
  }
  report.compared++;
  const m = judge(mesh, undefined, caller, target, decided);
  if (m !== undefined) report.mismatches.push(m);
}

function summary(r: VerifyReport): string {
  return `${r.compared} pairs compared, ${r.skipped} skipped (not enforced), ${r.mismatches.length} mismatch${r.mismatches.length === 1 ? "" : "es"}`;
}

function toText(r: VerifyReport): string {
  const lines: string[] = [];
  if (r.source === "agents") {
    lines.push(
      `objects reported by the agents of ${r.clusters.length > 0 ? [...r.clusters].sort().join(", ") : "no cluster"}`,
    );
    if (r.disconnected.length > 0)
      lines.push(`not read: ${[...r.disconnected].sort().join(", ")} (agent not connected)`);
  }
  for (const m of r.mismatches) {
    lines.push(`mismatch ${m.pair}`);
    lines.push(`  hub:     ${m.engine}`);
    lines.push(`  cluster: ${m.model.outcome} at ${m.model.stage}: ${m.model.reason}`);
    lines.push(`  objects: ${m.model.objects.join("; ") || "-"}`);
  }
  if (r.unread.length > 0)
    lines.push(
      `not compared: ${r.unread.length} catalog service${r.unread.length === 1 ? "" : "s"} in clusters not read (${[...new Set(r.unread.map((s) => s.split("/")[0]))].sort().join(", ")})`,
    );
  lines.push(summary(r));
  return `${lines.join("\n")}\n`;
}

function toJson(r: VerifyReport): string {
  const doc = {
    ok: r.mismatches.length === 0,
    source: r.source,
    clusters: r.clusters,
    disconnected: r.disconnected,
    compared: r.compared,
    skipped: r.skipped,
    notCompared: r.unread,
    mismatches: r.mismatches.map((m) => ({
      pair: m.pair,
      hub: m.engine,
      model: m.model,
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
