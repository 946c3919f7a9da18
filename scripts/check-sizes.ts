// Fails when a source file is longer than LIMIT lines without saying why at its top, on a
// line `// Long file: <reason>` among its first lines: a file should hold one job, and a
// reader should learn from its first lines why it holds more. Function length is Biome's
// rule (complexity/noExcessiveLinesPerFunction in biome.json, with a biome-ignore comment and
// its reason for an exception). Run by `npm run lint`; Node runs this file as it is (type
// stripping), so it imports nothing but Node's own modules.
//   node scripts/check-sizes.ts [--list]     --list prints every file over the limit
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const LIMIT = 400;
/** How many first lines may hold the reason (after a license or a generated-file header). */
const HEAD_LINES = 8;
const REASON = /^\/\/ Long file: \S/;
const ROOTS = ["packages", "bench", "scripts", "tools"];
const SKIPPED_DIRS = new Set(["node_modules", "dist", "gen", "testdata", ".tmp"]);

const root = join(import.meta.dirname, "..");

function* sourceFiles(dir: string): Generator<string> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) yield* sourceFiles(path);
    } else if (/\.(ts|tsx|mts)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) {
      yield path;
    }
  }
}

const list = process.argv.includes("--list");
const failures: string[] = [];
for (const top of ROOTS) {
  for (const file of sourceFiles(join(root, top))) {
    const name = relative(root, file);
    const lines = readFileSync(file, "utf8").split("\n");
    const count = lines.at(-1) === "" ? lines.length - 1 : lines.length;
    if (count <= LIMIT) continue;
    const reasoned = lines.slice(0, HEAD_LINES).some((line) => REASON.test(line));
    if (list) console.log(`${count}\t${name}${reasoned ? "\t(reason given)" : ""}`);
    if (!reasoned) {
      failures.push(
        `${name}: ${count} lines (limit ${LIMIT}): split it by job, or say why on a "// Long file: …" line at its top`,
      );
    }
  }
}
for (const failure of failures) console.error(`check-sizes: ${failure}`);
process.exitCode = failures.length > 0 ? 1 : 0;
