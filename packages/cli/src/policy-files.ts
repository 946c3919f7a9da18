// The inputs of `policy apply -f`, as kubectl reads them: files, `-` (standard input), and
// folders, read recursively (*.yaml, *.yml, *.json, sorted by path). Every problem of every
// input is reported (one line each), not only the first.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  type LocatedPolicy,
  problemsError,
  readPolicyText,
  type TextProblem,
} from "@isthmus/policy";
import { UsageError } from "./connection.js";

const POLICY_FILE = /\.(ya?ml|json)$/;

/** The files of a folder and its subfolders that may hold policies, sorted by path. */
function folderFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  )) {
    const path = join(dir, entry.name);
    // Hidden entries (.git, editors' files) are skipped, unlike kubectl -R: a Git
    // checkout's .git folder holds no policies and can be large.
    if (entry.name.startsWith(".")) continue;
    if (entry.isDirectory()) out.push(...folderFiles(path));
    else if (POLICY_FILE.test(entry.name)) out.push(path);
  }
  return out;
}

/** Reads standard input to its end (`-f -`). */
function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch (err) {
    throw new UsageError(`-: cannot read standard input: ${(err as Error).message}`);
  }
}

/** The texts behind the -f arguments, each with the name messages use. */
export function readInputs(paths: readonly string[]): [name: string, text: string][] {
  if (paths.filter((p) => p === "-").length > 1)
    throw new UsageError("-f -: standard input can be read once");
  return paths.flatMap((path): [string, string][] => {
    if (path === "-") return [["<stdin>", readStdin()]];
    let files: string[];
    try {
      files = statSync(path).isDirectory() ? folderFiles(path) : [path];
    } catch (err) {
      throw new UsageError(`${path}: ${(err as Error).message}`);
    }
    if (files.length === 0) throw new UsageError(`${path}: no .yaml, .yml or .json files`);
    return files.map((file) => {
      try {
        return [file, readFileSync(file, "utf8")];
      } catch (err) {
        throw new UsageError(`${file}: ${(err as Error).message}`);
      }
    });
  });
}

/**
 * Reads the policies of every -f argument. Throws a PolicyError listing every problem
 * (one line each, naming file, document, line and field), duplicates across files included.
 */
export function readPolicyFiles(paths: readonly string[]): LocatedPolicy[] {
  const policies: LocatedPolicy[] = [];
  const problems: TextProblem[] = [];
  const seen = new Map<string, string>();
  for (const [name, text] of readInputs(paths)) {
    const read = readPolicyText(text, name);
    problems.push(...read.problems);
    for (const p of read.policies) {
      const prev = seen.get(p.policy.name);
      if (prev !== undefined) {
        problems.push({
          message: `${p.where}: duplicate policy ${JSON.stringify(p.policy.name)}: also defined in ${prev}`,
          code: "duplicate-policy",
        });
        continue;
      }
      seen.set(p.policy.name, p.where);
      policies.push(p);
    }
  }
  if (problems.length > 0) throw problemsError(problems);
  return policies;
}
