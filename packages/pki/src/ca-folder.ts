// Reading a CA folder back: the complete set of plug-in CA files (or a cluster's subfolder),
// parsed and checked (CA certificates, signatures by the root, keys matching certificates,
// the chain), each refusal a PkiError naming the file.
import { join } from "node:path";
import { CLUSTER_CA_FILES, PLUGIN_CA_FILES, type PluginCaFile } from "./ca-files.js";
import {
  isIssuedBy,
  type ParsedCertificate,
  parseCertificatesPem,
  parseSingleCertificatePem,
  verifiesWith,
} from "./certificate.js";
import { PkiError } from "./errors.js";
import { listPresent, readText } from "./files.js";
import { type LoadedPrivateKey, loadPrivateKeyPem } from "./keys.js";

/** A validated set, as read from a folder. */
export interface LoadedSet {
  folder: string;
  texts: Record<PluginCaFile, string>;
  root: ParsedCertificate;
  rootKey: LoadedPrivateKey;
  ca: ParsedCertificate;
}

export async function requireCompleteSet(folder: string): Promise<Record<PluginCaFile, string>> {
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

export function partialSet(folder: string, present: readonly string[], missing: readonly string[]) {
  return new PkiError(
    `${join(folder, missing[0]!)}: missing from a partial set (present: ${present.join(", ")}; missing: ${missing.join(", ")}); complete the set or use an empty folder`,
    "partial-set",
  );
}

export async function readAll<T extends string>(
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
export async function loadSet(
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
export async function loadClusterSet(
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
