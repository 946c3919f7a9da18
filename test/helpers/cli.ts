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

/** Runs `isthmus <args>` in the repository root; `env` entries override the process's;
 * `input`, when given, is its standard input (which is then closed). */
export async function runIsthmus(
  args: readonly string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<CliRun> {
  const running = execFileAsync(process.execPath, [isthmusBin, ...args], {
    cwd: repoRoot,
    // Never the machine's own CLI config (a test names its file with --config or env).
    env: { ...process.env, ISTHMUS_CONFIG: "", ISTHMUS_CONTEXT: "", ...env },
  });
  if (input !== undefined) running.child.stdin?.end(input);
  try {
    const { stdout, stderr } = await running;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Blanks every connection setting the CLI reads from the environment, and hides the
 * user's config folder, so that a run uses only what the test passes. */
const NO_LOCAL_SETTINGS = {
  ISTHMUS_HUB: "",
  ISTHMUS_TOKEN: "",
  ISTHMUS_CA: "",
  XDG_CONFIG_HOME: "/nonexistent",
};

/** `runIsthmus` with none of this machine's connection settings: the test passes its hub,
 * token and CA as flags, a config file or `env`. */
export const isolatedIsthmus = (
  args: readonly string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<CliRun> => runIsthmus(args, { ...NO_LOCAL_SETTINGS, ...env }, input);
