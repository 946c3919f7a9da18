// The mesh's CA folder: the root and CA generated once (ensureMeshCa), validated on every
// later run (validateMeshCa), and per-cluster intermediates (ensureClusterCa).
import { join } from "node:path";
import {
  assertClusterName,
  BACKDATE_MS,
  type CertificateSummary,
  CLUSTER_CA_FILES,
  CLUSTERS_FOLDER,
  type ClusterCaResult,
  DEFAULT_CA_KEY_SIZE,
  DEFAULT_CA_VALIDITY_YEARS,
  DEFAULT_ORGANIZATION,
  DEFAULT_ROOT_KEY_SIZE,
  DEFAULT_ROOT_VALIDITY_YEARS,
  type KeyRole,
  type MeshCaOptions,
  type MeshCaResult,
  type PkiProgressEvent,
  PLUGIN_CA_FILES,
  type ValidateOptions,
} from "./ca-files.js";
import { loadClusterSet, loadSet, partialSet, requireCompleteSet } from "./ca-folder.js";
import { createCertificate, type ParsedCertificate, parseCertificate } from "./certificate.js";
import { PkiError } from "./errors.js";
import { listPresent, prepareFolder, writeNewFiles } from "./files.js";
import {
  type CryptoKey,
  generateRsaKeyPair,
  type KeyPair,
  RSA_KEY_SIZES,
  type RsaKeySize,
} from "./keys.js";

/**
 * The root of trust for every cluster: with no plug-in CA file in `folder` (or no folder),
 * generates a root and a CA and writes Istio's five plug-in CA files; with the complete set,
 * validates it and changes nothing; anything else throws a PkiError naming the file.
 */
export async function ensureMeshCa(
  folder: string,
  options: MeshCaOptions = {},
): Promise<MeshCaResult> {
  const settings = resolveOptions(options);
  const { present, missing } = await listPresent(folder, PLUGIN_CA_FILES);
  if (missing.length === 0) {
    const set = await loadSet(folder, settings.now);
    return { folder, status: "reused", root: summarize(set.root), ca: summarize(set.ca) };
  }
  if (present.length > 0) {
    throw partialSet(folder, present, missing);
  }
  const clustersPresent = await listPresent(folder, [CLUSTERS_FOLDER]);
  if (clustersPresent.present.length > 0) {
    throw new PkiError(
      `${join(folder, "root-cert.pem")}: missing, but ${join(folder, CLUSTERS_FOLDER)} holds per-cluster CAs issued from a root; restore the root files or use another folder`,
      "partial-set",
    );
  }
  await prepareFolder(folder);

  const rootAlgorithm = `RSA ${settings.rootKeySize}`;
  const caAlgorithm = `RSA ${settings.caKeySize}`;
  const [rootKey, caKey] = await Promise.all([
    generateReported(settings, "root", rootAlgorithm, settings.rootKeySize),
    generateReported(settings, "ca", caAlgorithm, settings.caKeySize),
  ]);
  const notBefore = new Date(settings.now.getTime() - BACKDATE_MS);
  const rootDer = await createCertificate(
    {
      subject: { organization: settings.organization, commonName: "Isthmus Root CA" },
      publicKey: rootKey.publicKey,
      notBefore,
      notAfter: addYears(settings.now, settings.rootValidityYears),
      ca: { pathLength: 1 },
      keyUsage: ["keyCertSign", "cRLSign"],
    },
    { selfSigned: rootKey.privateKey },
  );
  const root = parseCertificate(rootDer, join(folder, "root-cert.pem"));
  const ca = await issueIntermediate(root, rootKey.privateKey, caKey, {
    commonName: "Isthmus Intermediate CA",
    organization: settings.organization,
    now: settings.now,
    years: settings.caValidityYears,
  });
  const written = await writeNewFiles(folder, [
    { name: "root-cert.pem", contents: root.pem, mode: 0o644 },
    { name: "root-key.pem", contents: rootKey.privateKeyPem, mode: 0o600 },
    { name: "ca-cert.pem", contents: ca.pem, mode: 0o644 },
    { name: "ca-key.pem", contents: caKey.privateKeyPem, mode: 0o600 },
    { name: "cert-chain.pem", contents: ca.pem + root.pem, mode: 0o644 },
  ]);
  for (const file of written) {
    options.onProgress?.({ type: "file-written", file });
  }
  return { folder, status: "created", root: summarize(root), ca: summarize(ca) };
}

/** Validates a complete plug-in CA folder and describes it; throws a PkiError naming the file. */
export async function validateMeshCa(
  folder: string,
  options: ValidateOptions = {},
): Promise<MeshCaResult> {
  const now = options.now ?? new Date();
  const { present, missing } = await listPresent(folder, PLUGIN_CA_FILES);
  if (missing.length > 0) {
    throw present.length === 0
      ? new PkiError(
          `${join(folder, missing[0]!)}: missing; no plug-in CA files in ${folder} (run isthmus certs -c ${folder})`,
          "missing-file",
        )
      : partialSet(folder, present, missing);
  }
  const set = await loadSet(folder, now);
  return { folder, status: "reused", root: summarize(set.root), ca: summarize(set.ca) };
}

/**
 * Issues (or, when present and valid, reuses) an intermediate CA for one cluster from the
 * root in `folder`, under `folder/clusters/<cluster>/`: `ca-cert.pem`, `ca-key.pem`,
 * `cert-chain.pem` (cluster CA then root) and a byte-identical copy of `root-cert.pem`.
 * The top-level set must be complete and valid.
 */
export async function ensureClusterCa(
  folder: string,
  cluster: string,
  options: MeshCaOptions = {},
): Promise<ClusterCaResult> {
  assertClusterName(cluster);
  const settings = resolveOptions(options);
  const set = await loadSet(folder, settings.now, await requireCompleteSet(folder));
  const clusterFolder = join(folder, CLUSTERS_FOLDER, cluster);
  const { present, missing } = await listPresent(clusterFolder, CLUSTER_CA_FILES);
  if (missing.length === 0) {
    const ca = await loadClusterSet(set, clusterFolder, settings.now);
    return {
      cluster,
      folder: clusterFolder,
      status: "reused",
      root: summarize(set.root),
      ca: summarize(ca),
    };
  }
  if (present.length > 0) {
    throw partialSet(clusterFolder, present, missing);
  }
  await prepareFolder(join(folder, CLUSTERS_FOLDER));
  await prepareFolder(clusterFolder);
  const algorithm = `RSA ${settings.caKeySize}`;
  const caKey = await generateReported(
    settings,
    "cluster-ca",
    algorithm,
    settings.caKeySize,
    cluster,
  );
  const ca = await issueIntermediate(set.root, set.rootKey.signingKey, caKey, {
    commonName: `Isthmus Intermediate CA ${cluster}`,
    organization: settings.organization,
    now: settings.now,
    years: settings.caValidityYears,
  });
  const written = await writeNewFiles(clusterFolder, [
    { name: "root-cert.pem", contents: set.texts["root-cert.pem"], mode: 0o644 },
    { name: "ca-cert.pem", contents: ca.pem, mode: 0o644 },
    { name: "ca-key.pem", contents: caKey.privateKeyPem, mode: 0o600 },
    { name: "cert-chain.pem", contents: ca.pem + set.root.pem, mode: 0o644 },
  ]);
  for (const file of written) {
    options.onProgress?.({ type: "file-written", file });
  }
  return {
    cluster,
    folder: clusterFolder,
    status: "created",
    root: summarize(set.root),
    ca: summarize(ca),
  };
}

interface ResolvedOptions {
  rootKeySize: RsaKeySize;
  caKeySize: RsaKeySize;
  rootValidityYears: number;
  caValidityYears: number;
  organization: string;
  now: Date;
  onProgress: (event: PkiProgressEvent) => void;
}

function resolveOptions(options: MeshCaOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    rootKeySize: options.rootKeySize ?? DEFAULT_ROOT_KEY_SIZE,
    caKeySize: options.caKeySize ?? DEFAULT_CA_KEY_SIZE,
    rootValidityYears: options.rootValidityYears ?? DEFAULT_ROOT_VALIDITY_YEARS,
    caValidityYears: options.caValidityYears ?? DEFAULT_CA_VALIDITY_YEARS,
    organization: options.organization ?? DEFAULT_ORGANIZATION,
    now: options.now ?? new Date(),
    onProgress: options.onProgress ?? (() => undefined),
  };
  for (const [name, size] of [
    ["root key size", resolved.rootKeySize],
    ["ca key size", resolved.caKeySize],
  ] as const) {
    if (!(RSA_KEY_SIZES as readonly number[]).includes(size)) {
      throw new PkiError(
        `invalid ${name} ${size}: use ${RSA_KEY_SIZES.join(", ")}`,
        "invalid-option",
      );
    }
  }
  for (const [name, years] of [
    ["root validity", resolved.rootValidityYears],
    ["ca validity", resolved.caValidityYears],
  ] as const) {
    if (!Number.isInteger(years) || years < 1 || years > 100) {
      throw new PkiError(
        `invalid ${name} ${years}: use whole years from 1 to 100`,
        "invalid-option",
      );
    }
  }
  return resolved;
}

async function generateReported(
  settings: ResolvedOptions,
  role: KeyRole,
  algorithm: string,
  bits: number,
  cluster?: string,
): Promise<KeyPair> {
  const tag = cluster === undefined ? {} : { cluster };
  settings.onProgress({ type: "key-generation-started", role, algorithm, ...tag });
  const started = performance.now();
  const key = await generateRsaKeyPair(bits);
  const milliseconds = Math.round(performance.now() - started);
  settings.onProgress({ type: "key-generated", role, algorithm, milliseconds, ...tag });
  return key;
}

async function issueIntermediate(
  root: ParsedCertificate,
  rootKey: CryptoKey,
  key: KeyPair,
  spec: { commonName: string; organization: string; now: Date; years: number },
): Promise<ParsedCertificate> {
  // An intermediate must not outlive its root.
  const notAfter = new Date(
    Math.min(addYears(spec.now, spec.years).getTime(), root.notAfter.getTime()),
  );
  const der = await createCertificate(
    {
      subject: { organization: spec.organization, commonName: spec.commonName },
      publicKey: key.publicKey,
      notBefore: new Date(spec.now.getTime() - BACKDATE_MS),
      notAfter,
      ca: { pathLength: 0 },
      keyUsage: ["digitalSignature", "keyCertSign", "cRLSign"],
    },
    { issuer: root, signingKey: rootKey },
  );
  return parseCertificate(der, "ca-cert.pem");
}

function addYears(date: Date, years: number): Date {
  const result = new Date(date.getTime());
  result.setUTCFullYear(result.getUTCFullYear() + years);
  return result;
}

function summarize(certificate: ParsedCertificate): CertificateSummary {
  return {
    subject: certificate.subject,
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber,
    fingerprint256: certificate.fingerprint256,
    notBefore: certificate.notBefore.toISOString(),
    notAfter: certificate.notAfter.toISOString(),
  };
}
