import { join } from "node:path";
import {
  createCertificate,
  isIssuedBy,
  type ParsedCertificate,
  parseCertificate,
  parseCertificatesPem,
  parseSingleCertificatePem,
  verifiesWith,
} from "./certificate.js";
import { PkiError } from "./errors.js";
import { listPresent, prepareFolder, readText, writeNewFiles } from "./files.js";
import {
  type CryptoKey,
  generateRsaKeyPair,
  type KeyPair,
  type LoadedPrivateKey,
  loadPrivateKeyPem,
  RSA_KEY_SIZES,
  type RsaKeySize,
} from "./keys.js";

/** Istio's plug-in CA file names, in the order they are checked. */
export const PLUGIN_CA_FILES = [
  "root-cert.pem",
  "root-key.pem",
  "ca-cert.pem",
  "ca-key.pem",
  "cert-chain.pem",
] as const;
export type PluginCaFile = (typeof PLUGIN_CA_FILES)[number];

/** A per-cluster folder holds the same names except the root key, which never leaves the top folder. */
export const CLUSTER_CA_FILES = [
  "root-cert.pem",
  "ca-cert.pem",
  "ca-key.pem",
  "cert-chain.pem",
] as const;

/** Subfolder of the certs folder holding per-cluster intermediates. */
export const CLUSTERS_FOLDER = "clusters";

export const DEFAULT_ROOT_KEY_SIZE: RsaKeySize = 4096;
export const DEFAULT_CA_KEY_SIZE: RsaKeySize = 4096;
export const DEFAULT_ROOT_VALIDITY_YEARS = 10;
export const DEFAULT_CA_VALIDITY_YEARS = 5;
export const DEFAULT_ORGANIZATION = "Isthmus";
/** notBefore is set this far in the past so that peers with a slow clock accept new certificates. */
export const BACKDATE_MS = 5 * 60 * 1000;

export type KeyRole = "root" | "ca" | "cluster-ca";

/** Progress of a long operation, for a CLI to print; the library itself logs nothing. */
export type PkiProgressEvent =
  | { type: "key-generation-started"; role: KeyRole; algorithm: string; cluster?: string }
  | {
      type: "key-generated";
      role: KeyRole;
      algorithm: string;
      milliseconds: number;
      cluster?: string;
    }
  | { type: "file-written"; file: string };

export interface ValidateOptions {
  /** Clock for validity checks (default: now). */
  now?: Date;
}

export interface MeshCaOptions extends ValidateOptions {
  rootKeySize?: RsaKeySize;
  caKeySize?: RsaKeySize;
  rootValidityYears?: number;
  caValidityYears?: number;
  organization?: string;
  onProgress?: (event: PkiProgressEvent) => void;
}

export interface CertificateSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
  notBefore: string;
  notAfter: string;
}

export interface MeshCaResult {
  folder: string;
  status: "created" | "reused";
  root: CertificateSummary;
  ca: CertificateSummary;
}

export interface ClusterCaResult {
  cluster: string;
  folder: string;
  status: "created" | "reused";
  root: CertificateSummary;
  ca: CertificateSummary;
}

/** A validated set, as read from a folder. */
interface LoadedSet {
  folder: string;
  texts: Record<PluginCaFile, string>;
  root: ParsedCertificate;
  rootKey: LoadedPrivateKey;
  ca: ParsedCertificate;
}

const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Throws unless `cluster` is a DNS label (it becomes a folder name and a SPIFFE path segment). */
export function assertClusterName(cluster: string): void {
  if (!CLUSTER_NAME.test(cluster)) {
    throw new PkiError(
      `invalid cluster name "${cluster}": use lowercase letters, digits and "-" (at most 63, starting and ending with a letter or digit)`,
      "invalid-option",
    );
  }
}

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

/** The files Istio's `cacerts` Secret carries (the root key is never shipped to a cluster). */
export const CACERTS_SECRET_FILES = [
  "ca-cert.pem",
  "ca-key.pem",
  "root-cert.pem",
  "cert-chain.pem",
] as const;

export interface CacertsSecret {
  apiVersion: "v1";
  kind: "Secret";
  metadata: {
    name: "cacerts";
    namespace: "istio-system";
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  type: "Opaque";
  /** base64 of each file, keyed by file name. */
  data: Record<(typeof CACERTS_SECRET_FILES)[number], string>;
}

/**
 * Renders Istio's `cacerts` Secret from a validated folder, or from its
 * `clusters/<cluster>/` subfolder when `cluster` is given.
 */
export async function renderCacertsSecret(
  folder: string,
  options: ValidateOptions & { cluster?: string } = {},
): Promise<CacertsSecret> {
  const now = options.now ?? new Date();
  const set = await loadSet(folder, now, await requireCompleteSet(folder));
  let source = folder;
  let texts: Record<string, string> = set.texts;
  if (options.cluster !== undefined) {
    assertClusterName(options.cluster);
    source = join(folder, CLUSTERS_FOLDER, options.cluster);
    const { present, missing } = await listPresent(source, CLUSTER_CA_FILES);
    if (missing.length > 0) {
      throw present.length === 0
        ? new PkiError(
            `${source}: no CA for cluster ${options.cluster} (run isthmus certs -c ${folder} --per-cluster-ca ${options.cluster})`,
            "missing-file",
          )
        : partialSet(source, present, missing);
    }
    await loadClusterSet(set, source, now);
    texts = await readAll(source, CLUSTER_CA_FILES);
  }
  const data = {} as CacertsSecret["data"];
  for (const name of CACERTS_SECRET_FILES) {
    data[name] = Buffer.from(texts[name]!, "utf8").toString("base64");
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "cacerts",
      namespace: "istio-system",
      labels: { "app.kubernetes.io/managed-by": "isthmus" },
      annotations: {
        "isthmus.io/root-sha256": set.root.fingerprint256.replaceAll(":", "").toLowerCase(),
      },
    },
    type: "Opaque",
    data,
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

async function requireCompleteSet(folder: string): Promise<Record<PluginCaFile, string>> {
  const { present, missing } = await listPresent(folder, PLUGIN_CA_FILES);
  if (missing.length > 0) {
    throw present.length === 0
      ? new PkiError(
          `${join(folder, "root-cert.pem")}: missing; create the root first (isthmus certs -c ${folder})`,
          "missing-file",
        )
      : partialSet(folder, present, missing);
  }
  return readAll(folder, PLUGIN_CA_FILES);
}

function partialSet(folder: string, present: readonly string[], missing: readonly string[]) {
  return new PkiError(
    `${join(folder, missing[0]!)}: missing from a partial set (present: ${present.join(", ")}; missing: ${missing.join(", ")}); complete the set or use an empty folder`,
    "partial-set",
  );
}

async function readAll<T extends string>(
  folder: string,
  names: readonly T[],
): Promise<Record<T, string>> {
  const texts = {} as Record<T, string>;
  for (const name of names) {
    texts[name] = await readText(join(folder, name));
  }
  return texts;
}

/** Reads and checks the five files, in a fixed order so that the first problem is reported. */
async function loadSet(
  folder: string,
  now: Date,
  preread?: Record<PluginCaFile, string>,
): Promise<LoadedSet> {
  const texts = preread ?? (await readAll(folder, PLUGIN_CA_FILES));
  const path = (name: PluginCaFile) => join(folder, name);
  const root = parseSingleCertificatePem(texts["root-cert.pem"], path("root-cert.pem"));
  const rootKey = await loadPrivateKeyPem(texts["root-key.pem"], path("root-key.pem"));
  const ca = parseSingleCertificatePem(texts["ca-cert.pem"], path("ca-cert.pem"));
  const caKey = await loadPrivateKeyPem(texts["ca-key.pem"], path("ca-key.pem"));
  const chain = parseCertificatesPem(texts["cert-chain.pem"], path("cert-chain.pem"));

  if (!root.pkijs.issuer.isEqual(root.pkijs.subject)) {
    throw new PkiError(
      `${path("root-cert.pem")}: not self-signed (issuer "${root.issuer}" differs from subject "${root.subject}")`,
      "not-self-signed",
    );
  }
  if (!verifiesWith(root, root)) {
    throw new PkiError(
      `${path("root-cert.pem")}: not self-signed (its signature does not verify with its own key)`,
      "not-self-signed",
    );
  }
  checkCaCertificate(root, path("root-cert.pem"), now);
  checkKeyMatches(rootKey, path("root-key.pem"), root, "root-cert.pem");

  checkCaCertificate(ca, path("ca-cert.pem"), now);
  checkSignedByRoot(ca, path("ca-cert.pem"), root, "root-cert.pem");
  checkKeyMatches(caKey, path("ca-key.pem"), ca, "ca-cert.pem");
  checkChain(chain, path("cert-chain.pem"), ca, root);
  return { folder, texts, root, rootKey, ca };
}

/** Checks a `clusters/<cluster>/` folder against the validated top-level set. */
async function loadClusterSet(
  set: LoadedSet,
  clusterFolder: string,
  now: Date,
): Promise<ParsedCertificate> {
  const texts = await readAll(clusterFolder, CLUSTER_CA_FILES);
  const path = (name: (typeof CLUSTER_CA_FILES)[number]) => join(clusterFolder, name);
  const root = parseSingleCertificatePem(texts["root-cert.pem"], path("root-cert.pem"));
  const ca = parseSingleCertificatePem(texts["ca-cert.pem"], path("ca-cert.pem"));
  const caKey = await loadPrivateKeyPem(texts["ca-key.pem"], path("ca-key.pem"));
  const chain = parseCertificatesPem(texts["cert-chain.pem"], path("cert-chain.pem"));
  if (!Buffer.from(root.der).equals(Buffer.from(set.root.der))) {
    throw new PkiError(
      `${path("root-cert.pem")}: differs from ${join(set.folder, "root-cert.pem")}`,
      "root-mismatch",
    );
  }
  checkCaCertificate(ca, path("ca-cert.pem"), now);
  checkSignedByRoot(ca, path("ca-cert.pem"), set.root, join(set.folder, "root-cert.pem"));
  checkKeyMatches(caKey, path("ca-key.pem"), ca, "ca-cert.pem");
  checkChain(chain, path("cert-chain.pem"), ca, set.root);
  return ca;
}

function checkCaCertificate(certificate: ParsedCertificate, file: string, now: Date): void {
  if (!certificate.isCa) {
    throw new PkiError(
      `${file}: not a CA certificate (basicConstraints CA:TRUE is missing)`,
      "not-ca",
    );
  }
  if (certificate.keyUsage === null || !certificate.keyUsage.has("keyCertSign")) {
    throw new PkiError(`${file}: key usage lacks keyCertSign`, "key-usage");
  }
  if (now < certificate.notBefore) {
    throw new PkiError(
      `${file}: not valid before ${certificate.notBefore.toISOString()}`,
      "not-yet-valid",
    );
  }
  if (now > certificate.notAfter) {
    throw new PkiError(`${file}: expired on ${certificate.notAfter.toISOString()}`, "expired");
  }
}

function checkSignedByRoot(
  certificate: ParsedCertificate,
  file: string,
  root: ParsedCertificate,
  rootName: string,
): void {
  if (!certificate.pkijs.issuer.isEqual(root.pkijs.subject)) {
    throw new PkiError(
      `${file}: not signed by ${rootName} (issuer "${certificate.issuer}" differs from the root subject "${root.subject}")`,
      "not-signed-by-root",
    );
  }
  if (!isIssuedBy(certificate, root)) {
    throw new PkiError(
      `${file}: not signed by ${rootName} (signature does not verify with the root key)`,
      "not-signed-by-root",
    );
  }
}

function checkKeyMatches(
  key: LoadedPrivateKey,
  keyFile: string,
  certificate: ParsedCertificate,
  certificateName: string,
): void {
  let matches: boolean;
  try {
    matches = certificate.x509.checkPrivateKey(key.keyObject);
  } catch {
    matches = false;
  }
  if (!matches) {
    throw new PkiError(`${keyFile}: private key does not match ${certificateName}`, "key-mismatch");
  }
}

function checkChain(
  chain: readonly ParsedCertificate[],
  file: string,
  ca: ParsedCertificate,
  root: ParsedCertificate,
): void {
  const expected = [ca.der, root.der];
  let problem: string | null = null;
  if (chain.length !== expected.length) {
    problem = `holds ${chain.length} certificate${chain.length === 1 ? "" : "s"}, expected 2`;
  } else {
    const index = chain.findIndex(
      (certificate, position) =>
        !Buffer.from(certificate.der).equals(Buffer.from(expected[position]!)),
    );
    if (index !== -1) {
      problem = `certificate ${index + 1} differs`;
    }
  }
  if (problem !== null) {
    throw new PkiError(
      `${file}: does not match ca-cert.pem followed by root-cert.pem (${problem})`,
      "chain-mismatch",
    );
  }
}
