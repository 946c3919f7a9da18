// Istio's `cacerts` Secret, rendered from a validated CA folder.
import { join } from "node:path";
import {
  assertClusterName,
  CLUSTER_CA_FILES,
  CLUSTERS_FOLDER,
  type ValidateOptions,
} from "./ca-files.js";
import { loadClusterSet, loadSet, partialSet, readAll, requireCompleteSet } from "./ca-folder.js";
import { PkiError } from "./errors.js";
import { listPresent } from "./files.js";

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
