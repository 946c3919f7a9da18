import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, link, lstat, mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { describeSystemError, PkiError } from "./errors.js";

/** A file to create: private keys get mode 0600, certificates 0644. */
export interface NewFile {
  name: string;
  contents: string;
  mode: 0o600 | 0o644;
}

/**
 * Creates `files` in `dir`, never replacing an existing file. Each file is written to a
 * temporary name, fsynced, then hard-linked to its final name (link fails if the name
 * exists, unlike rename) and the folder is fsynced, so a crash never leaves a half-written
 * file under a final name. On failure, the files this call created are removed again.
 */
export async function writeNewFiles(dir: string, files: readonly NewFile[]): Promise<string[]> {
  const suffix = randomBytes(6).toString("hex");
  const temporaries: string[] = [];
  const created: string[] = [];
  try {
    for (const file of files) {
      const temporary = join(dir, `.${file.name}.${suffix}.tmp`);
      await writeSynced(temporary, file.contents, file.mode, join(dir, file.name));
      temporaries.push(temporary);
    }
    for (const [index, file] of files.entries()) {
      const target = join(dir, file.name);
      try {
        await link(temporaries[index]!, target);
      } catch (reason) {
        const code = describeSystemError(reason);
        throw new PkiError(
          code === "EEXIST"
            ? `${target}: appeared while the set was being written; nothing was replaced`
            : `${target}: cannot create (${code})`,
          code === "EEXIST" ? "file-exists" : "not-writable",
          { cause: reason },
        );
      }
      created.push(target);
    }
    await syncFolder(dir);
    return created;
  } catch (reason) {
    await Promise.all(created.map((file) => unlink(file).catch(() => undefined)));
    throw reason;
  } finally {
    await Promise.all(temporaries.map((file) => unlink(file).catch(() => undefined)));
    await syncFolder(dir).catch(() => undefined);
  }
}

async function writeSynced(path: string, contents: string, mode: number, target: string) {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "wx", mode);
    await handle.writeFile(contents, "utf8");
    await handle.chmod(mode); // exact mode whatever the umask
    await handle.sync();
  } catch (reason) {
    throw new PkiError(`${target}: cannot write (${describeSystemError(reason)})`, "not-writable", {
      cause: reason,
    });
  } finally {
    await handle?.close();
  }
}

async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Which of `names` exist in `dir` (any kind of entry counts as present). */
export async function listPresent(
  dir: string,
  names: readonly string[],
): Promise<{ present: string[]; missing: string[] }> {
  const present: string[] = [];
  const missing: string[] = [];
  for (const name of names) {
    try {
      await lstat(join(dir, name));
      present.push(name);
    } catch (reason) {
      const code = describeSystemError(reason);
      if (code === "ENOENT") {
        missing.push(name);
      } else if (code === "ENOTDIR") {
        throw new PkiError(`${dir}: not a folder`, "unreadable", { cause: reason });
      } else {
        throw new PkiError(`${join(dir, name)}: cannot read (${code})`, "unreadable", {
          cause: reason,
        });
      }
    }
  }
  return { present, missing };
}

/** Reads a text file; errors name the file. */
export async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (reason) {
    throw new PkiError(`${path}: cannot read (${describeSystemError(reason)})`, "unreadable", {
      cause: reason,
    });
  }
}

/**
 * Makes sure `dir` exists (created with mode 0700: it holds private keys) and is writable.
 * Called before any key is generated so that a bad folder fails fast.
 */
export async function prepareFolder(dir: string): Promise<void> {
  let isFolder: boolean | null;
  try {
    isFolder = (await stat(dir)).isDirectory();
  } catch (reason) {
    if (describeSystemError(reason) !== "ENOENT") {
      throw new PkiError(`${dir}: cannot read (${describeSystemError(reason)})`, "unreadable", {
        cause: reason,
      });
    }
    isFolder = null;
  }
  if (isFolder === false) {
    throw new PkiError(`${dir}: not a folder`, "not-writable");
  }
  if (isFolder === null) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (reason) {
      throw new PkiError(
        `${dir}: cannot create folder (${describeSystemError(reason)})`,
        "not-writable",
        { cause: reason },
      );
    }
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (reason) {
    throw new PkiError(
      `${dir}: folder is not writable (${describeSystemError(reason)})`,
      "not-writable",
      { cause: reason },
    );
  }
}
