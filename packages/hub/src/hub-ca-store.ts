// The control-plane CA of hub replicas that share a store: every replica must sign and trust
// agents' certificates with one CA, so it lives in the store (key `control-plane/ca`) beside
// the clusters whose certificates it signed. etcd must then be protected as a CA key is
// (TLS and auth): Kubernetes keeps its Secrets in etcd the same way.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { type Logger, silentLogger } from "@isthmus/logging";
import type { CertifiedKey } from "@isthmus/pki";
import { loadOrCreateHubCa } from "./data-dir.js";
import { isStoreError, type Store, StoreError } from "./store.js";

export const CA_KEY_IN_STORE = "control-plane/ca";

function checkStoredCa(store: Store, value: unknown): CertifiedKey {
  const v = value as Partial<CertifiedKey> | null;
  const bad = (why: string) =>
    new StoreError(`${store.location}: entry "${CA_KEY_IN_STORE}": ${why}`, "corrupt");
  if (typeof v !== "object" || v === null) throw bad("not an object");
  if (typeof v.certPem !== "string" || typeof v.keyPem !== "string")
    throw bad("certPem and keyPem must be strings");
  try {
    if (!new X509Certificate(v.certPem).checkPrivateKey(createPrivateKey(v.keyPem)))
      throw new Error("keyPem does not match certPem");
  } catch (err) {
    throw bad((err as Error).message);
  }
  return { certPem: v.certPem, keyPem: v.keyPem };
}

/**
 * The CA in `store`; on the first start of the first replica, the one in `dataDir` (a hub
 * moving from the file store keeps its agents) or a new one. Of replicas starting together,
 * the first write wins (create-only) and the others read it.
 */
export async function loadOrCreateStoredHubCa(
  store: Store,
  dataDir: string,
  logger: Logger = silentLogger,
): Promise<CertifiedKey> {
  const stored = await store.get(CA_KEY_IN_STORE);
  if (stored !== undefined) return checkStoredCa(store, stored.value);
  const ca = await loadOrCreateHubCa(dataDir);
  try {
    await store.txn([{ op: "put", key: CA_KEY_IN_STORE, value: ca, expectVersion: 0 }]);
    logger.info("control-plane CA stored for every replica", { store: store.location });
    return ca;
  } catch (err) {
    if (!isStoreError(err) || err.code !== "conflict") throw err;
    const winner = await store.get(CA_KEY_IN_STORE);
    if (winner === undefined) throw err;
    return checkStoredCa(store, winner.value);
  }
}
