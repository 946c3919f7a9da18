// The hub's data directory: the embedded store's state.json and the control-plane CA in
// control-plane/. What a crash or a hand edit can leave there is either repaired at start
// (temp files) or refused with the file named and what to do.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CertifiedKey, createHubCa } from "@isthmus/pki";
import { STATE_FILE, StoreError } from "./store.js";

const CA_DIR = "control-plane";
const CA_CERT = "ca-cert.pem";
const CA_KEY = "ca-key.pem";
/** Temp files of the store (`.state.json.<pid>.tmp`) and of a CA being created. */
const STALE_TEMP = new RegExp(`^(\\.${STATE_FILE.replace(".", "\\.")}|${CA_DIR})\\.[0-9]+\\.tmp$`);

const exists = (path: string) =>
  stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Prepares the data dir before the store opens: creates it, removes the temp files a crashed
 * hub left (one hub uses a data dir at a time, so every temp file at start is stale), and says
 * whether the embedded store may create a missing state.json: in a new data dir yes; in one
 * initialised before (it holds the hub CA) a missing state.json means every cluster and policy
 * is gone, so only with `init`. `init` never replaces an existing state.json.
 * Returns the names of the temp files it removed.
 */
export async function prepareDataDir(
  dataDir: string,
  options: { init: boolean; fileStore: boolean },
): Promise<{ createStore: boolean; removed: string[] }> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const removed: string[] = [];
  for (const name of await readdir(dataDir)) {
    if (!STALE_TEMP.test(name)) continue;
    await rm(join(dataDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  if (removed.length > 0) await syncDir(dataDir);
  if (!options.fileStore) return { createStore: false, removed };
  const stateFile = join(dataDir, STATE_FILE);
  const hasState = await exists(stateFile);
  if (options.init && hasState) {
    throw new StoreError(
      `${stateFile}: exists; --init only starts a data dir whose ${STATE_FILE} is missing ` +
        "(move the file away first to start with an empty store)",
      "conflict",
    );
  }
  if (!hasState && !options.init && (await exists(join(dataDir, CA_DIR)))) {
    throw new StoreError(
      `${stateFile}: missing, but ${dataDir} was initialised before (${CA_DIR}/ holds the hub CA): ` +
        "starting would lose every cluster and policy; restore the file from a backup, " +
        "or start the hub once with --init to begin with an empty store on purpose",
      "missing",
    );
  }
  return { createStore: !hasState, removed };
}

/** Reads the CA files; a half present or unreadable CA is an error naming the file. */
async function readHubCa(dir: string): Promise<CertifiedKey | undefined> {
  const certFile = join(dir, CA_CERT);
  const keyFile = join(dir, CA_KEY);
  const [certPem, keyPem] = await Promise.all(
    [certFile, keyFile].map((f) =>
      readFile(f, "utf8").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw new StoreError(`${f}: cannot read: ${err.message}`, "io", { cause: err });
      }),
    ),
  );
  if (certPem === undefined && keyPem === undefined) return undefined;
  const incomplete = (missing: string, present: string) =>
    new StoreError(
      `${missing}: missing while ${present} exists: the hub CA is incomplete; restore both ` +
        `files from a backup (agents trust this CA), or move ${dir} away to create a new CA ` +
        "(every agent must then enroll again)",
      "corrupt",
    );
  if (certPem === undefined) throw incomplete(certFile, keyFile);
  if (keyPem === undefined) throw incomplete(keyFile, certFile);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new StoreError(
      `${certFile}: not a PEM certificate: ${(err as Error).message}`,
      "corrupt",
    );
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem)))
      throw new Error(`does not match the certificate in ${certFile}`);
  } catch (err) {
    throw new StoreError(`${keyFile}: ${(err as Error).message}`, "corrupt");
  }
  return { certPem, keyPem };
}

async function writeSynced(file: string, content: string, mode: number): Promise<void> {
  await writeFile(file, content, { mode, flag: "wx" });
  const handle = await open(file, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The hub's control-plane CA from `<dataDir>/control-plane/`, created on first start. Both
 * files are written into a temp folder that is renamed into place once they are on disk, so
 * a crash leaves either no CA (and a temp folder that the next start removes) or a whole one.
 */
export async function loadOrCreateHubCa(dataDir: string): Promise<CertifiedKey> {
  const dir = join(dataDir, CA_DIR);
  const known = await readHubCa(dir);
  if (known !== undefined) return known;
  const ca = await createHubCa();
  const temp = join(dataDir, `${CA_DIR}.${process.pid}.tmp`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { mode: 0o700 });
  await writeSynced(join(temp, CA_KEY), ca.keyPem, 0o600);
  await writeSynced(join(temp, CA_CERT), ca.certPem, 0o644);
  await syncDir(temp);
  // rename replaces an empty control-plane/ (left by an older hub that crashed before writing).
  try {
    await rename(temp, dir);
  } catch (err) {
    throw new StoreError(
      `${dir}: holds files but no hub CA; move it away to create a new CA`,
      "corrupt",
      { cause: err },
    );
  }
  await syncDir(dataDir);
  return ca;
}
