import {
  assertClusterName,
  type CertificateSummary,
  type ClusterCaResult,
  DEFAULT_CA_KEY_SIZE,
  DEFAULT_CA_VALIDITY_YEARS,
  DEFAULT_ORGANIZATION,
  DEFAULT_ROOT_KEY_SIZE,
  DEFAULT_ROOT_VALIDITY_YEARS,
  ensureClusterCa,
  ensureMeshCa,
  isPkiError,
  type MeshCaOptions,
  type MeshCaResult,
  type PkiProgressEvent,
  RSA_KEY_SIZES,
  type RsaKeySize,
} from "@isthmus/pki";
import { type Command, InvalidArgumentError, Option } from "commander";

interface CertsFlags {
  certs: string;
  rootKeySize: RsaKeySize;
  caKeySize: RsaKeySize;
  rootYears: number;
  caYears: number;
  org: string;
  perClusterCa?: string[];
  output: "text" | "json";
  quiet?: boolean;
}

/** `isthmus certs -c <folder>`: the shared root of trust (Istio plug-in CA files). */
export function registerCertsCommand(program: Command): void {
  program
    .command("certs")
    .description(
      "create or validate the shared root of trust (Istio plug-in CA files) in a folder; " +
        "an empty or missing folder gets a new root and CA, a complete set is validated and reused, " +
        "anything else is an error and nothing is written",
    )
    .requiredOption("-c, --certs <folder>", "folder holding the plug-in CA files")
    .addOption(
      new Option("--root-key-size <bits>", "RSA key size of a new root")
        .argParser(parseKeySize)
        .default(DEFAULT_ROOT_KEY_SIZE),
    )
    .addOption(
      new Option("--ca-key-size <bits>", "RSA key size of a new CA (shared or per cluster)")
        .argParser(parseKeySize)
        .default(DEFAULT_CA_KEY_SIZE),
    )
    .addOption(
      new Option("--root-years <years>", "validity of a new root")
        .argParser(parseYears)
        .default(DEFAULT_ROOT_VALIDITY_YEARS),
    )
    .addOption(
      new Option("--ca-years <years>", "validity of a new CA (capped at the root's expiry)")
        .argParser(parseYears)
        .default(DEFAULT_CA_VALIDITY_YEARS),
    )
    .option("--org <name>", "subject organization of new certificates", DEFAULT_ORGANIZATION)
    .addOption(
      new Option(
        "--per-cluster-ca <cluster>",
        "also issue (or reuse) an intermediate CA for this cluster under clusters/<cluster>/; repeatable",
      ).argParser(collectCluster),
    )
    .addOption(
      new Option("-o, --output <format>", "result format on stdout")
        .choices(["text", "json"])
        .default("text"),
    )
    .option("-q, --quiet", "no progress on stderr")
    .action(async (flags: CertsFlags) => {
      await runCerts(flags);
    });
}

async function runCerts(flags: CertsFlags): Promise<void> {
  const options: MeshCaOptions = {
    rootKeySize: flags.rootKeySize,
    caKeySize: flags.caKeySize,
    rootValidityYears: flags.rootYears,
    caValidityYears: flags.caYears,
    organization: flags.org,
  };
  if (flags.quiet !== true) {
    options.onProgress = printProgress;
  }
  const mesh = await ensureMeshCa(flags.certs, options);
  const clusters: ClusterCaResult[] = [];
  for (const cluster of flags.perClusterCa ?? []) {
    clusters.push(await ensureClusterCa(flags.certs, cluster, options));
  }
  process.stdout.write(
    flags.output === "json"
      ? `${JSON.stringify(toJson(mesh, clusters), null, 2)}\n`
      : toText(mesh, clusters),
  );
}

function printProgress(event: PkiProgressEvent): void {
  const who =
    event.type === "file-written"
      ? ""
      : event.cluster === undefined
        ? `${event.role} key`
        : `${event.role} key for ${event.cluster}`;
  switch (event.type) {
    case "key-generation-started":
      process.stderr.write(`generating ${who} (${event.algorithm})...\n`);
      break;
    case "key-generated":
      process.stderr.write(`${who} ready in ${(event.milliseconds / 1000).toFixed(1)} s\n`);
      break;
    case "file-written":
      process.stderr.write(`wrote ${event.file}\n`);
      break;
  }
}

function toJson(mesh: MeshCaResult, clusters: readonly ClusterCaResult[]) {
  return {
    folder: mesh.folder,
    status: mesh.status,
    root: mesh.root,
    ca: mesh.ca,
    clusters: clusters.map((cluster) => ({
      cluster: cluster.cluster,
      folder: cluster.folder,
      status: cluster.status,
      ca: cluster.ca,
    })),
  };
}

function toText(mesh: MeshCaResult, clusters: readonly ClusterCaResult[]): string {
  const lines = [
    `${mesh.status} ${mesh.folder}`,
    ...describe("root", mesh.root),
    ...describe("ca", mesh.ca),
  ];
  for (const cluster of clusters) {
    lines.push(`${cluster.status} ${cluster.folder}`, ...describe("ca", cluster.ca));
  }
  return `${lines.join("\n")}\n`;
}

function describe(label: "root" | "ca", summary: CertificateSummary): string[] {
  const pad = "    ";
  return [
    `  ${label.padEnd(pad.length)}  ${summary.subject}`,
    `  ${pad}  sha256 ${summary.fingerprint256}`,
    `  ${pad}  not after ${summary.notAfter}`,
  ];
}

function parseKeySize(value: string): RsaKeySize {
  const size = Number(value);
  if (!(RSA_KEY_SIZES as readonly number[]).includes(size)) {
    throw new InvalidArgumentError(`use one of ${RSA_KEY_SIZES.join(", ")}.`);
  }
  return size as RsaKeySize;
}

function parseYears(value: string): number {
  const years = Number(value);
  if (!/^\d+$/.test(value) || years < 1 || years > 100) {
    throw new InvalidArgumentError("use whole years from 1 to 100.");
  }
  return years;
}

function collectCluster(value: string, previous: string[] | undefined): string[] {
  try {
    assertClusterName(value);
  } catch (reason) {
    throw new InvalidArgumentError(isPkiError(reason) ? `${reason.message}.` : String(reason));
  }
  const clusters = previous ?? [];
  return clusters.includes(value) ? clusters : [...clusters, value];
}
