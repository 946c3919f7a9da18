// The CA folder's vocabulary: Istio's plug-in CA file names, the defaults, the options and
// results of the CA functions, and the cluster name rule.

import { PkiError } from "./errors.js";
import type { RsaKeySize } from "./keys.js";

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
