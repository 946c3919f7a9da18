// Runs the real `isthmus` command as a child process, as a user would.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
/** The launcher `npx isthmus` runs. */
export const isthmusBin = fileURLToPath(
  new URL("../../packages/cli/bin/isthmus.js", import.meta.url),
);

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `isthmus <args>` in the repository root; `env` entries override the process's. */
export async function runIsthmus(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliRun> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [isthmusBin, ...args], {
      cwd: repoRoot,
      // Never the machine's own CLI config (a test names its file with --config or env).
      env: { ...process.env, ISTHMUS_CONFIG: "", ISTHMUS_CONTEXT: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
