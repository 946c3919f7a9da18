// The hub's control-plane CA kept in the shared store, for replicas of a highly available
// hub: every replica must sign and verify agent certificates with the same CA, and a data
// dir per replica cannot give them one. The first replica to start creates it (a create-only
// write, so of replicas starting together exactly one CA wins); the others read it. The key
// then lives in etcd, which must be protected as Kubernetes protects Secrets there (TLS,
// authentication; docs/high-availability.md).
import { createPrivateKey, X509Certificate } from "node:crypto";
import { type CertifiedKey, createHubCa } from "@isthmus/pki";
import { isStoreError, type Store, StoreError } from "./store.js";

export const HUB_CA_KEY = "control-plane/hub-ca";

function decode(store: Store, value: unknown): CertifiedKey {
  const where = `${store.location}: entry "${HUB_CA_KEY}"`;
  const v = value as Partial<CertifiedKey> | null;
  if (typeof v !== "object" || v === null || typeof v.certPem !== "string")
    throw new StoreError(`${where}: certPem: must be a PEM string`, "corrupt");
  if (typeof v.keyPem !== "string")
    throw new StoreError(`${where}: keyPem: must be a PEM string`, "corrupt");
  try {
    const cert = new X509Certificate(v.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(v.keyPem)))
      throw new Error("keyPem does not match certPem");
  } catch (err) {
    throw new StoreError(`${where}: ${(err as Error).message}`, "corrupt", { cause: err });
  }
  return { certPem: v.certPem, keyPem: v.keyPem };
}

/** Reads the shared hub CA from the store, creating it when no replica has yet. */
export async function loadOrCreateStoreHubCa(store: Store): Promise<CertifiedKey> {
  const known = await store.get(HUB_CA_KEY);
  if (known !== undefined) return decode(store, known.value);
  const ca = await createHubCa();
  try {
    await store.txn([
      {
        op: "put",
        key: HUB_CA_KEY,
        value: { certPem: ca.certPem, keyPem: ca.keyPem },
        expectVersion: 0,
      },
    ]);
    return ca;
  } catch (err) {
    if (!isStoreError(err) || err.code !== "conflict") throw err;
    // Another replica created it first.
    const winner = await store.get(HUB_CA_KEY);
    if (winner === undefined) throw err;
    return decode(store, winner.value);
  }
}
