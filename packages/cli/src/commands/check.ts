import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  type CheckContext,
  type CheckResult,
  checkCacerts,
  checkIstiodRoot,
  checkNetwork,
  checkStrictMtls,
} from "../check/checks.js";
import { checkEastWestGateway } from "../check/gateway-check.js";
import { meshSettingsOf } from "../check/mesh-config.js";
import type { ClusterSnapshot } from "../check/snapshot.js";
import {
  type CheckTarget,
  kubectlFor,
  resolveTargets,
  type TargetFlags,
  withTargetOptions,
} from "../check/targets.js";
import { checkTrustDomain, type KnownTrustDomain } from "../check/trust-domain.js";
import { type ConnectionFlags, withAdmin, withConnectionOptions } from "../connection.js";
import { ExitCode } from "../output.js";
import { defaultTrustDomain } from "./istio-trust.js";

interface CheckFlags extends ConnectionFlags, TargetFlags {
  certs: string;
}

/** One cluster's outcome: its checks, or why it could not be asked. */
interface ClusterReport {
  target: CheckTarget;
  checks: CheckResult[];
}

/** `isthmus check`: the prerequisites of multi-network Istio, per cluster. */
export function registerCheckCommand(program: Command): void {
  withTargetOptions(withConnectionOptions(program.command("check"), { context: false }), "to check")
    .description(
      "check every cluster's Istio for what Isthmus needs: the shared root in cacerts and served by istiod, " +
        "the network label, the east-west gateway, the trust-domain setting; exit code 1 when a check fails",
    )
    .requiredOption("-c, --certs <folder>", "folder of the shared root (root-cert.pem)")
    .action(async (flags: CheckFlags) => {
      const failed = await runCheck(flags);
      if (failed) throw new ExitCode(1);
    });
}

/** The shared root from `<certs>/root-cert.pem` (the first certificate, as Istio reads it). */
function readSharedRoot(certs: string): X509Certificate {
  const file = join(certs, "root-cert.pem");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`${file}: cannot read the shared root: ${(err as Error).message}`);
  }
  try {
    const root = new X509Certificate(text);
    if (!root.ca) throw new Error("not a CA certificate");
    return root;
  } catch (err) {
    throw new Error(`${file}: not a root certificate: ${(err as Error).message}`);
  }
}

/** Trust domains of the Isthmus clusters: those read in this run, then (with --hub) the hub's. */
async function knownTrustDomains(
  flags: CheckFlags,
  snapshots: readonly { id: string; snapshot: ClusterSnapshot | undefined }[],
): Promise<KnownTrustDomain[]> {
  const known = new Map<string, KnownTrustDomain>();
  for (const { id, snapshot } of snapshots) {
    if (snapshot === undefined || !("value" in snapshot.meshConfig)) continue;
    try {
      const { trustDomain } = meshSettingsOf(snapshot.meshConfig.value);
      known.set(id, { clusterId: id, trustDomain, source: "cluster" });
    } catch {
      // an unreadable mesh config fails that cluster's trust-domain check
    }
  }
  if (flags.hub === undefined) return [...known.values()];
  const listed = await withAdmin(flags, (c, call) => c.listClusters({}, call));
  for (const status of listed.clusters) {
    const id = status.cluster?.id ?? "";
    if (id === "" || known.has(id)) continue;
    const reported = status.mesh?.trustDomain ?? "";
    known.set(
      id,
      reported === ""
        ? { clusterId: id, trustDomain: defaultTrustDomain(id), source: "assumed" }
        : { clusterId: id, trustDomain: reported, source: "hub" },
    );
  }
  return [...known.values()];
}

/** Runs every check; prints the report; true when any check failed. */
export async function runCheck(flags: CheckFlags): Promise<boolean> {
  const root = readSharedRoot(flags.certs);
  const { readSnapshot } = await import("../check/snapshot.js");
  const clusters = await resolveTargets(flags);
  const read = await Promise.all(
    clusters.map(async ({ target, kube }) => {
      try {
        return { id: target.id, snapshot: await readSnapshot(kube, flags.istioNamespace) };
      } catch (err) {
        return { id: target.id, snapshot: undefined, error: (err as Error).message };
      } finally {
        kube.close();
      }
    }),
  );
  const known = await knownTrustDomains(flags, read);
  const reports: ClusterReport[] = clusters.map(({ target }, i) => {
    const { snapshot, error } = read[i]! as { snapshot?: ClusterSnapshot; error?: string };
    const kubectl = kubectlFor(target);
    if (snapshot === undefined) {
      const api: CheckResult = {
        name: "api",
        status: "fail",
        message: `cannot read namespace ${flags.istioNamespace}: ${error ?? "unknown error"}`,
        fix: `check the kubeconfig, context and credentials: ${kubectl} get namespace ${flags.istioNamespace}`,
      };
      return { target, checks: [api] };
    }
    const context: CheckContext = {
      clusterId: target.id,
      root,
      certsDir: flags.certs,
      kubectl,
      install: installCommand(target, flags.certs),
    };
    return {
      target,
      checks: [
        checkCacerts(snapshot, context),
        checkIstiodRoot(snapshot, context),
        checkNetwork(snapshot, context),
        checkEastWestGateway(snapshot, context),
        checkTrustDomain(snapshot, context, known),
        checkStrictMtls(snapshot, context),
      ],
    };
  });
  process.stdout.write(flags.output === "json" ? toJson(reports) : toText(reports));
  return reports.some((r) => r.checks.some((c) => c.status === "fail"));
}

function installCommand(t: CheckTarget, certs: string): string {
  return [
    "isthmus install -c",
    certs,
    "--cluster",
    t.id,
    ...(t.kubeconfig === undefined ? [] : ["--kubeconfig", t.kubeconfig]),
    ...(t.context === undefined ? [] : ["--context", t.context]),
  ].join(" ");
}

function counts(reports: readonly ClusterReport[]) {
  const all = reports.flatMap((r) => r.checks);
  return {
    passed: all.filter((c) => c.status === "ok").length,
    warnings: all.filter((c) => c.status === "warn").length,
    failed: all.filter((c) => c.status === "fail").length,
  };
}

function toText(reports: readonly ClusterReport[]): string {
  const lines: string[] = [];
  for (const { target, checks } of reports) {
    const where = [
      target.kubeconfig === undefined ? "default kubeconfig" : `kubeconfig ${target.kubeconfig}`,
      ...(target.context === undefined ? [] : [`context ${target.context}`]),
    ].join(", ");
    lines.push(`cluster ${target.id} (${where})`);
    for (const c of checks) {
      lines.push(`  ${`[${c.status}]`.padEnd(6)} ${c.name}: ${c.message}`);
      if (c.fix !== undefined) lines.push(`         fix: ${c.fix}`);
    }
  }
  const n = counts(reports);
  lines.push(
    `${reports.length} cluster${reports.length === 1 ? "" : "s"}: ${n.passed} ok, ${n.warnings} warning${n.warnings === 1 ? "" : "s"}, ${n.failed} failed`,
  );
  return `${lines.join("\n")}\n`;
}

function toJson(reports: readonly ClusterReport[]): string {
  const n = counts(reports);
  const doc = {
    ok: n.failed === 0,
    ...n,
    clusters: reports.map(({ target, checks }) => ({
      cluster: target.id,
      ...(target.kubeconfig === undefined ? {} : { kubeconfig: target.kubeconfig }),
      ...(target.context === undefined ? {} : { context: target.context }),
      checks,
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
