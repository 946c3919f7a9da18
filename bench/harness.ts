// The benchmark harness: the shape of a benchmark module, the statistics every figure is
// summarised with, the seeded random source workloads draw from, and the result table.
// `bench/run.ts` runs the modules; everything here is pure and unit tested, except the
// import below, which makes the processes the benchmarks start run the sources too.
import "../scripts/source-conditions.js";
import { readdir } from "node:fs/promises";
import { parseArgs } from "node:util";

/** One measured figure: every sample of one quantity, in one unit. */
export interface Figure {
  /** What was measured, unique within its module, e.g. "grpc unary round trip". */
  name: string;
  /** Unit of every sample, e.g. "µs", "ms", "ops/s", "MiB". */
  unit: string;
  /** The samples, in measurement order (at least one). */
  samples: number[];
  /** Another figure of the same module, measured in the same run: the table shows
   * ratio = this figure's median / that figure's median. */
  reference?: string;
}

/** Options the harness passes to a benchmark module. */
export interface BenchOptions {
  /** Run the tiny workload (used by tests): checks that the benchmark works, not how fast. */
  smoke: boolean;
}

/** What `bench/<name>.ts` exports as `default`. */
export type BenchModule = (options: BenchOptions) => Promise<Figure[]>;

/** One row of the result table (and of the `--json` file). */
export interface Row {
  benchmark: string;
  figure: string;
  unit: string;
  /** Number of samples. */
  n: number;
  median: number;
  p99: number;
  /** The reference figure's name, when the figure has one. */
  reference?: string;
  /** median / the reference figure's median. */
  ratio?: number;
}

/** Files in the bench folder that are not benchmark modules. */
const NOT_MODULES = new Set(["run.ts", "harness.ts"]);

/** What a benchmark module's name looks like: `bench/<name>.ts`. */
const MODULE_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** The benchmark modules in `dir`: every `<name>.ts` with a lowercase name but the harness
 * itself (so scratch files such as `.try.ts` are not run), sorted by name. */
export async function listBenchModules(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !NOT_MODULES.has(e.name))
    .map((e) => e.name.slice(0, -".ts".length))
    .filter((name) => MODULE_NAME.test(name))
    .sort();
}

function sortedCopy(samples: readonly number[], what: string): number[] {
  if (samples.length === 0) throw new Error(`${what}: no samples`);
  for (const [i, v] of samples.entries()) {
    if (!Number.isFinite(v)) throw new Error(`${what}: sample ${i} is ${v}, not a finite number`);
  }
  return [...samples].sort((a, b) => a - b);
}

/** The median: the middle sample, or the mean of the two middle samples of an even count. */
export function median(samples: readonly number[]): number {
  const s = sortedCopy(samples, "median");
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile by nearest rank: the smallest sample with at least p% of the samples
 * at or below it (p in (0, 100]). */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new Error(`percentile: p must be in (0, 100], got ${p}`);
  const s = sortedCopy(samples, `p${p}`);
  const rank = Math.ceil((p / 100) * s.length);
  return s[rank - 1]!;
}

/** value / reference; undefined when the reference is zero (no meaningful ratio). */
export function ratio(value: number, reference: number): number | undefined {
  return reference === 0 ? undefined : value / reference;
}

/** Summarises the figures of one benchmark module into table rows. Fails, naming the figure,
 * on a figure without samples, a duplicate name, or a reference to a missing figure or to
 * one in another unit. */
export function summarize(benchmark: string, figures: readonly Figure[]): Row[] {
  const byName = new Map<string, Figure>();
  for (const f of figures) {
    if (byName.has(f.name)) throw new Error(`${benchmark}: figure "${f.name}" appears twice`);
    byName.set(f.name, f);
  }
  const medians = new Map<string, number>();
  const medianOf = (f: Figure): number => {
    let m = medians.get(f.name);
    if (m === undefined) {
      try {
        m = median(f.samples);
      } catch (err) {
        throw new Error(`${benchmark}: figure "${f.name}": ${(err as Error).message}`);
      }
      medians.set(f.name, m);
    }
    return m;
  };
  return figures.map((f) => {
    const row: Row = {
      benchmark,
      figure: f.name,
      unit: f.unit,
      n: f.samples.length,
      median: medianOf(f),
      p99: percentile(f.samples, 99),
    };
    if (f.reference !== undefined) {
      const ref = byName.get(f.reference);
      if (ref === undefined) {
        throw new Error(`${benchmark}: figure "${f.name}": reference "${f.reference}" not found`);
      }
      if (ref.unit !== f.unit) {
        throw new Error(
          `${benchmark}: figure "${f.name}" (${f.unit}): reference "${f.reference}" is in ${ref.unit}`,
        );
      }
      row.reference = f.reference;
      const r = ratio(row.median, medianOf(ref));
      if (r !== undefined) row.ratio = r;
    }
    return row;
  });
}

/** A number in at most 4 significant digits, without exponent for everyday magnitudes. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs === 0) return "0";
  if (abs < 0.001) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

const HEADER = ["benchmark", "figure", "n", "median", "p99", "unit", "ratio"] as const;

/** The result table, columns aligned; ratio reads "2.31 × <reference>". */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.benchmark,
    r.figure,
    String(r.n),
    formatNumber(r.median),
    formatNumber(r.p99),
    r.unit,
    r.ratio === undefined ? "" : `${formatNumber(r.ratio)} × ${r.reference}`,
  ]);
  const all = [[...HEADER], ...cells];
  const widths = HEADER.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  // Text columns left-aligned, numbers right-aligned.
  const numeric = new Set([2, 3, 4]);
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(all[0]!), rule, ...cells.map(line)].join("\n");
}

/** The seed workloads use unless `--seed` says otherwise. */
export const DEFAULT_SEED = 20261125;

/**
 * The environment the image (docker/Dockerfile) gives the hub and the agent, which every
 * benchmark module runs with, so that its figures are those of the processes as deployed.
 * A fixed glibc mmap threshold: with the default, freeing a large block (a big gRPC message,
 * a compile's buffers) raises the threshold, later large blocks come from the heap arenas
 * and the memory stays with the process after it is freed (about 0.5 KB of RSS per catalog
 * service at 100k services, bench/README.md "memory").
 */
export const IMAGE_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: "131072" };

/** The environment variable through which `bench/run.ts` hands the seed to a module. */
export const SEED_ENV = "ISTHMUS_BENCH_SEED";

/** The run's seed, as set by `bench/run.ts` (the default when run otherwise). */
export function benchSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[SEED_ENV];
  if (raw === undefined || raw === "") return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) throw new Error(`${SEED_ENV}: "${raw}" is not an integer`);
  return seed;
}

/** A seeded pseudo-random source in [0, 1) (mulberry32): the same seed draws the same
 * workload on every machine. */
export function createRandom(seed: number = benchSeed()): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Times `fn` `count` times in sequence after `warmup` untimed calls; samples in µs. */
export async function timeEach(
  count: number,
  warmup: number,
  fn: () => Promise<unknown>,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  return samples;
}

/** What `bench/run.ts` was asked to do. */
export interface RunArgs {
  /** Modules to run; empty: every module in `dir`. */
  names: string[];
  smoke: boolean;
  /** Where to write the rows as JSON. */
  json?: string;
  seed: number;
  /** Folder holding the modules (default: the folder of run.ts). */
  dir?: string;
  /** Internal: run this one module in this process and report to the parent. */
  child?: string;
}

/** Parses `bench/run.ts` arguments; throws a usage error naming the bad argument. */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      smoke: { type: "boolean", default: false },
      json: { type: "string" },
      seed: { type: "string" },
      dir: { type: "string" },
      child: { type: "string" },
    },
  });
  let seed = DEFAULT_SEED;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (values.seed.trim() === "" || !Number.isSafeInteger(seed)) {
      throw new Error(`--seed: "${values.seed}" is not an integer`);
    }
  }
  for (const name of positionals) {
    if (!MODULE_NAME.test(name)) {
      throw new Error(`benchmark "${name}": expected a module name like "floor" (no path, no .ts)`);
    }
  }
  const args: RunArgs = { names: positionals, smoke: values.smoke, seed };
  if (values.json !== undefined) args.json = values.json;
  if (values.dir !== undefined) args.dir = values.dir;
  if (values.child !== undefined) args.child = values.child;
  return args;
}
