import { execFileSync, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { stringify } from "yaml";
import {
  type ConnectionFlags,
  UsageError,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import {
  afterCacertsChange,
  agentChart,
  describeValues,
  imageValues,
  setValue,
} from "./install-steps.js";
import {
  checkTrustDomain,
  defaultTrustDomain,
  istiodValues,
  trustDomainsOf,
} from "./istio-trust.js";

interface InstallFlags extends ConnectionFlags {
  certs: string;
  cluster: string;
  kubeconfig?: string;
  context?: string;
  perClusterCa?: boolean;
  force?: boolean;
  dryRun?: boolean;
  namespace: string;
  out: string;
  label: string[];
  trustDomain?: string;
  chart?: string;
  chartVersion?: string;
  image?: string;
  set: string[];
  restartIstiod?: boolean;
}

function helmOnPath(): boolean {
  return spawnSync("helm", ["version", "--short"], { stdio: "ignore" }).status === 0;
}

/** `isthmus install`: the shared root into the cluster, registration, agent chart values. */
export function registerInstallCommand(program: Command): void {
  withConnectionOptions(program.command("install"), { context: false })
    .description(
      "install a cluster: put the shared root and CA into istio-system/cacerts, register the cluster at the hub " +
        "(with --hub), write values-<cluster>.yaml and run helm (or print the command)",
    )
    .requiredOption(
      "-c, --certs <folder>",
      "plug-in CA folder (generated when empty, see isthmus certs)",
    )
    .requiredOption("--cluster <id>", "cluster id (DNS label)")
    .option(
      "--kubeconfig <file>",
      "kubeconfig of the cluster (default: KUBECONFIG or ~/.kube/config)",
    )
    .option("--context <name>", "kubeconfig context")
    .option(
      "--per-cluster-ca",
      "give the cluster its own intermediate CA under <folder>/clusters/<id>/",
    )
    .option("--force", "replace an existing cacerts Secret that holds a different root")
    .option("--dry-run", "print every object and step; change nothing")
    .option("-n, --namespace <ns>", "namespace of the agent release", "isthmus-system")
    .option("--out <dir>", "where values-<cluster>.yaml is written", ".")
    .option(
      "--trust-domain <domain>",
      "the cluster's Istio trust domain, written into istio-<cluster>.yaml (default <cluster>.local)",
    )
    .option(
      "-l, --label <key=value>",
      "cluster label for policy selectors (with --hub); repeatable",
      (v: string, p: string[]) => [...p, v],
      [],
    )
    .option(
      "--chart <folder|oci://ref>",
      "isthmus-agent chart (default: the chart this package ships)",
    )
    .option("--chart-version <version>", "chart version to pull (with an oci:// --chart)")
    .option(
      "--image <repository[:tag][@digest]>",
      "agent image (image.repository, image.tag, image.digest)",
    )
    .option(
      "--set <key=value>",
      "another chart value, written into the values file; repeatable",
      (v: string, p: string[]) => [...p, v],
      [],
    )
    .option("--restart-istiod", "restart istiod after cacerts changed (unless it auto-reloads)")
    .action(async (flags: InstallFlags) => {
      await runInstall(flags);
    });
}

type Say = (line: string) => void;
type CacertsSecret = Awaited<ReturnType<typeof import("@isthmus/pki").renderCacertsSecret>>;

export async function runInstall(flags: InstallFlags): Promise<void> {
  // Loaded here so that other commands start without pkijs and client-node.
  const { assertClusterName } = await import("@isthmus/pki");
  assertClusterName(flags.cluster);
  // Flags that are wrong on their own fail before anything is written.
  const chart = agentChart(flags.chart);
  if (flags.chartVersion !== undefined && !chart.startsWith("oci://"))
    throw new UsageError("--chart-version needs an oci:// --chart");
  const image = flags.image === undefined ? undefined : imageValues(flags.image);
  const say: Say = (line) => process.stdout.write(`${line}\n`);
  const labels: Record<string, string> = {};
  for (const l of flags.label) {
    const m = /^([^=]+)=(.*)$/.exec(l);
    if (m === null) throw new UsageError(`invalid label "${l}": expected key=value`);
    labels[m[1]!] = m[2]!;
  }

  const secret = await installCertificates(flags, say);
  await installCacerts(flags, secret, say);
  const { valuesFile, values } = await writeAgentValues(flags, labels, image, say);

  // 5. Istio's trust settings: this trust domain, the shared root for every cluster's.
  await writeIstioTrust(
    flags,
    Buffer.from(secret.data["root-cert.pem"]!, "base64").toString(),
    say,
  );
  runHelm(flags, chart, valuesFile, values, say);
}

/** 1. Certificates: validated (or generated) before anything touches the cluster. */
async function installCertificates(flags: InstallFlags, say: Say): Promise<CacertsSecret> {
  const { ensureClusterCa, ensureMeshCa, renderCacertsSecret, validateMeshCa } = await import(
    "@isthmus/pki"
  );
  if (flags.dryRun) {
    await validateMeshCa(flags.certs);
    say(`certs: ${flags.certs} holds a valid root and CA`);
  } else {
    const mesh = await ensureMeshCa(flags.certs);
    say(`certs: ${mesh.status} ${flags.certs} (root ${mesh.root.fingerprint256.slice(0, 23)}…)`);
    if (flags.perClusterCa) {
      const cluster = await ensureClusterCa(flags.certs, flags.cluster);
      say(`certs: ${cluster.status} CA for ${flags.cluster} in ${cluster.folder}`);
    }
  }
  return await renderCacertsSecret(
    flags.certs,
    flags.perClusterCa ? { cluster: flags.cluster } : {},
  );
}

/** 2. The cacerts Secret: never replace a different root unless forced. */
async function installCacerts(flags: InstallFlags, secret: CacertsSecret, say: Say): Promise<void> {
  const { createKubeClient, kubeConfigFromDefault, SECRETS } = await import("@isthmus/agent");
  let kc: ReturnType<typeof kubeConfigFromDefault>;
  try {
    kc = kubeConfigFromDefault(flags.kubeconfig);
    if (flags.context !== undefined) kc.setCurrentContext(flags.context);
  } catch (err) {
    throw new UsageError(
      `kubeconfig${flags.kubeconfig ? ` ${flags.kubeconfig}` : ""}: ${(err as Error).message}`,
    );
  }
  const kube = createKubeClient(kc);
  try {
    const existing = await kube.get(SECRETS, "cacerts", "istio-system");
    const existingRoot = (existing?.data as Record<string, string> | undefined)?.["root-cert.pem"];
    if (existing === undefined) {
      if (flags.dryRun)
        say(`dry run: would create Secret istio-system/cacerts:\n${stringify(redact(secret))}`);
      else {
        await kube.create(SECRETS, secret as never);
        say("cluster: created Secret istio-system/cacerts");
        await afterCacertsChange(kube, flags.restartIstiod === true, say);
      }
    } else if (existingRoot === secret.data["root-cert.pem"] && !flags.force) {
      say("cluster: Secret istio-system/cacerts already holds this root; left as is");
    } else if (existingRoot !== secret.data["root-cert.pem"] && !flags.force) {
      throw new Error(
        "Secret istio-system/cacerts holds a different root certificate; replacing it breaks mTLS with workloads " +
          "that still use the old one. Re-run with --force to replace it.",
      );
    } else if (flags.dryRun) {
      say(`dry run: would replace Secret istio-system/cacerts:\n${stringify(redact(secret))}`);
    } else {
      await kube.apply(SECRETS, secret as never, { fieldManager: "isthmus-install", force: true });
      say("cluster: replaced Secret istio-system/cacerts (--force)");
      await afterCacertsChange(kube, flags.restartIstiod === true, say);
    }
  } finally {
    kube.close();
  }
}

/** 3. Registration at the hub, 4. values for the agent chart. */
async function writeAgentValues(
  flags: InstallFlags,
  labels: Record<string, string>,
  image: ReturnType<typeof imageValues> | undefined,
  say: Say,
): Promise<{ valuesFile: string; values: Record<string, unknown> }> {
  const valuesFile = join(flags.out, `values-${flags.cluster}.yaml`);
  const values: Record<string, unknown> = { clusterId: flags.cluster };
  if (flags.hub !== undefined) {
    if (flags.dryRun) {
      say(`dry run: would register cluster ${flags.cluster} at ${flags.hub}`);
      values.hub = { address: flags.hub, caPem: "<from the hub>" };
      values.bootstrapToken = "<from the hub>";
    } else {
      const created = await withAdmin(flags, (c, call) =>
        c.createCluster({ cluster: { id: flags.cluster, labels } }, call),
      );
      say(`hub: registered cluster ${flags.cluster} at ${flags.hub}`);
      values.hub = { address: flags.hub, caPem: created.hubCaPem };
      values.bootstrapToken = created.bootstrapToken;
    }
  }
  if (image !== undefined) values.image = image;
  for (const assignment of flags.set) setValue(values, assignment);
  if (flags.dryRun) say(`dry run: would write ${valuesFile}`);
  else {
    await writeFile(valuesFile, stringify(values), { mode: 0o600, flag: "w" });
    say(
      `values: wrote ${valuesFile}${flags.hub ? "" : " (no --hub: add hub.address, hub.caPem and bootstrapToken)"}`,
    );
  }
  return { valuesFile, values };
}

/** 6. helm, or the exact command. */
function runHelm(
  flags: InstallFlags,
  chart: string,
  valuesFile: string,
  values: Record<string, unknown>,
  say: Say,
): void {
  const helmArgs = [
    "upgrade",
    "--install",
    "isthmus-agent",
    chart,
    "--namespace",
    flags.namespace,
    "--create-namespace",
    "-f",
    valuesFile,
  ];
  if (flags.chartVersion !== undefined) helmArgs.push("--version", flags.chartVersion);
  if (flags.kubeconfig !== undefined) helmArgs.push("--kubeconfig", flags.kubeconfig);
  if (flags.context !== undefined) helmArgs.push("--kube-context", flags.context);
  say(`values: ${describeValues(values).join(" ")}`);
  if (!flags.dryRun && helmOnPath()) {
    execFileSync("helm", helmArgs, { stdio: "inherit" });
    say("helm: agent installed");
  } else {
    say(
      `${flags.dryRun ? "dry run: would run" : "helm is not on PATH; run"}: helm ${helmArgs.join(" ")}`,
    );
  }
}

/** The Secret with key material replaced, for printing. */
function redact(secret: { data: Record<string, string> }): unknown {
  return {
    ...secret,
    data: Object.fromEntries(
      Object.keys(secret.data).map((k) => [
        k,
        k.includes("key") ? "<redacted>" : "<base64 certificate>",
      ]),
    ),
  };
}

/**
 * Writes istio-<cluster>.yaml (istiod Helm values) with the trust settings Isthmus needs and
 * says how to apply them. The trust domains are those of every cluster the hub knows (with
 * --hub): clusters added later must be added to every cluster's list (re-run install).
 */
async function writeIstioTrust(
  flags: InstallFlags,
  rootPem: string,
  say: (line: string) => void,
): Promise<void> {
  const trustDomain = checkTrustDomain(
    flags.trustDomain ?? defaultTrustDomain(flags.cluster),
    "--trust-domain",
  );
  let known: { id: string; trustDomain: string }[] = [];
  if (flags.hub !== undefined && !flags.dryRun) {
    const listed = await withAdmin(flags, (c, call) => c.listClusters({}, call));
    known = listed.clusters.map((c) => ({
      id: c.cluster?.id ?? "",
      trustDomain: c.mesh?.trustDomain ?? "",
    }));
  }
  const file = join(flags.out, `istio-${flags.cluster}.yaml`);
  const trustDomains = trustDomainsOf({ id: flags.cluster, trustDomain }, known);
  const text = istiodValues({ trustDomain, trustDomains, rootPem });
  if (flags.dryRun) {
    say(`dry run: would write ${file} (trust domains ${trustDomains.join(", ")})`);
    return;
  }
  await writeFile(file, text, { mode: 0o644 });
  say(
    `istio: wrote ${file}: trust domain ${trustDomain}, root trusted for ${trustDomains.join(", ")}`,
  );
  say(
    `istio: apply it with: helm upgrade istiod istio/istiod -n istio-system --reuse-values -f ${file} ` +
      "(or put its meshConfig under spec.meshConfig for istioctl install); " +
      "a new trust domain needs restarted workloads, and every other cluster's file must list this one",
  );
}
