import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, lstat, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Runs openssl and returns stdout+stderr; rejects with openssl's output on failure. */
export async function openssl(args: readonly string[], cwd?: string): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(
      "openssl",
      [...args],
      cwd === undefined ? {} : { cwd },
    );
    return stdout + stderr;
  } catch (reason) {
    const failure = reason as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `openssl ${args.join(" ")} failed: ${failure.stderr ?? ""}${failure.stdout ?? ""}${failure.message}`,
    );
  }
}

/** A fresh temporary folder under the OS temp dir; removed by `cleanup`. */
export async function tempFolder(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `isthmus-pki-${prefix}-`));
}

export async function cleanup(...folders: string[]): Promise<void> {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
}

/** Copies a folder tree (timestamps preserved) into a new temporary folder. */
export async function copyFolder(source: string, prefix: string): Promise<string> {
  const target = await tempFolder(prefix);
  await cp(source, target, { recursive: true, preserveTimestamps: true });
  return target;
}

/** Every entry below `folder` with its kind, mode, mtime and content hash. */
export async function snapshot(folder: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  async function walk(dir: string, prefix: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const info = await lstat(path);
      const key = `${prefix}${name}`;
      if (info.isDirectory()) {
        result[key] = `dir mode=${(info.mode & 0o777).toString(8)} mtime=${info.mtimeMs}`;
        await walk(path, `${key}/`);
      } else {
        const hash = createHash("sha256")
          .update(await readFile(path))
          .digest("hex");
        result[key] =
          `file mode=${(info.mode & 0o777).toString(8)} mtime=${info.mtimeMs} sha256=${hash}`;
      }
    }
  }
  await walk(folder, "");
  return result;
}
