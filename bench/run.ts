// `npm run bench [-- [--smoke] [--json file] [--seed n] [name...]]`: runs every benchmark
// module of bench/ (or the named ones), each in its own child process so that memory figures
// are per benchmark and one crash does not stop the others, then prints one table.
import { execFileSync, fork } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { availableParallelism, cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  type BenchModule,
  type Figure,
  formatTable,
  IMAGE_ENV,
  listBenchModules,
  parseRunArgs,
  type Row,
  type RunArgs,
  SEED_ENV,
  summarize,
} from "./harness.js";

const RUN_PATH = fileURLToPath(import.meta.url);
const BENCH_DIR = dirname(RUN_PATH);

/** The checked-out commit, with "-dirty" when the work tree has changes; "unknown" without git. */
function gitCommit(): string {
  const git = (...args: string[]) =>
    execFileSync("git", args, {
      cwd: BENCH_DIR,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  try {
    const commit = git("rev-parse", "--short", "HEAD").trim();
    return git("status", "--porcelain").trim() === "" ? commit : `${commit}-dirty`;
  } catch {
    return "unknown";
  }
}

/** What a child sends its parent over the IPC channel. */
type ChildReport =
  | { ok: true; figures: Figure[]; peakRssMiB: number }
  | { ok: false; error: string };

function isChildReport(value: unknown): value is ChildReport {
  return typeof value === "object" && value !== null && "ok" in value;
}

async function runChild(dir: string, name: string, smoke: boolean): Promise<void> {
  const send = (report: ChildReport) =>
    new Promise<void>((done) => process.send!(report, undefined, {}, () => done()));
  let report: ChildReport;
  try {
    const file = join(dir, `${name}.ts`);
    const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    if (typeof mod.default !== "function") {
      throw new Error(`${file} does not export a default function`);
    }
    const figures = await (mod.default as BenchModule)({ smoke });
    report = { ok: true, figures, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  } catch (err) {
    report = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  await send(report);
  // A benchmark may leave sockets or timers behind; the figures are sent, so stop here.
  process.exit(report.ok ? 0 : 1);
}

/** Runs one module in a child process; resolves with its rows or the reason it failed. */
function runInChild(
  dir: string,
  name: string,
  args: RunArgs,
): Promise<{ rows: Row[] } | { error: string }> {
  return new Promise((done) => {
    // The seed travels in the environment, where the module's createRandom() reads it.
    const childArgs = ["--child", name, "--dir", dir];
    if (args.smoke) childArgs.push("--smoke");
    const child = fork(RUN_PATH, childArgs, {
      execArgv: ["--expose-gc", "--import", import.meta.resolve("tsx")],
      env: { ...process.env, ...IMAGE_ENV, [SEED_ENV]: String(args.seed) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let report: ChildReport | undefined;
    child.on("message", (message) => {
      if (isChildReport(message)) report = message;
    });
    child.on("error", (err) => done({ error: `could not start: ${err.message}` }));
    child.on("exit", (code, signal) => {
      if (report === undefined) {
        done({ error: `child exited (${signal ?? `code ${code}`}) without reporting figures` });
      } else if (!report.ok) {
        done({ error: report.error });
      } else {
        try {
          const rows = summarize(name, report.figures);
          rows.push(
            ...summarize(name, [
              { name: "peak RSS (process)", unit: "MiB", samples: [report.peakRssMiB] },
            ]),
          );
          done({ rows });
        } catch (err) {
          done({ error: (err as Error).message });
        }
      }
    });
  });
}

async function main(argv: readonly string[]): Promise<number> {
  let args: RunArgs;
  try {
    args = parseRunArgs(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 2;
  }
  const dir = resolve(args.dir ?? BENCH_DIR);
  if (args.child !== undefined) {
    if (process.send === undefined) {
      process.stderr.write(
        `bench: --child is how bench/run.ts runs a module; use npm run bench -- ${args.child}\n`,
      );
      return 2;
    }
    await runChild(dir, args.child, args.smoke);
    return 0;
  }
  const available = await listBenchModules(dir);
  const unknown = args.names.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: no benchmark ${unknown.map((n) => `"${n}"`).join(", ")} in ${dir} ` +
        `(there are: ${available.join(", ") || "none"})\n`,
    );
    return 2;
  }
  const names = args.names.length > 0 ? args.names : available;
  const startedAt = new Date().toISOString();
  // The machine is shared: a figure means little without the load it was measured under.
  const loadAtStart = loadavg()[0] ?? 0;
  const rows: Row[] = [];
  const failures: { benchmark: string; error: string }[] = [];
  for (const name of names) {
    process.stderr.write(`bench: running ${name}${args.smoke ? " (smoke)" : ""}\n`);
    const result = await runInChild(dir, name, args);
    if ("error" in result) {
      failures.push({ benchmark: name, error: result.error });
      process.stderr.write(`bench: ${name} failed: ${result.error}\n`);
    } else {
      rows.push(...result.rows);
    }
  }
  process.stdout.write(`${formatTable(rows)}\n`);
  if (args.json !== undefined) {
    const report = {
      startedAt,
      seed: args.seed,
      smoke: args.smoke,
      commit: gitCommit(),
      node: process.version,
      cpus: availableParallelism(),
      loadAverage: { start: loadAtStart, end: loadavg()[0] ?? 0 },
      cpuModel: cpus()[0]?.model ?? "unknown",
      rows,
      failures,
    };
    await writeFile(args.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  if (failures.length > 0) {
    process.stderr.write(
      `bench: ${failures.length} of ${names.length} failed: ${failures.map((f) => f.benchmark).join(", ")}\n`,
    );
    return 1;
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
