import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  benchSeed,
  createRandom,
  DEFAULT_SEED,
  type Figure,
  formatNumber,
  formatTable,
  listBenchModules,
  median,
  parseRunArgs,
  percentile,
  type Row,
  ratio,
  SEED_ENV,
  summarize,
  timeEach,
} from "../../bench/harness.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BENCH_DIR = join(ROOT, "bench");

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bench/run.ts the way `npm run bench` does, in a child process. */
function runBench(args: readonly string[], timeout = 120_000): Promise<Outcome> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(BENCH_DIR, "run.ts"), ...args],
      { cwd: ROOT, timeout },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

interface JsonReport {
  commit: string;
  loadAverage: { start: number; end: number };
  seed: number;
  smoke: boolean;
  rows: Row[];
  failures: { benchmark: string; error: string }[];
}

describe("bench harness: statistics", () => {
  it("median is the middle sample, or the mean of the two middle ones", () => {
    assert.equal(median([7]), 7);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([10, 10, 1, 1000]), 10);
  });

  it("percentile is by nearest rank", () => {
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile(hundred, 100), 100);
    assert.equal(percentile(hundred, 1), 1);
    const ten = [5, 1, 9, 2, 8, 3, 7, 4, 6, 10];
    // rank ceil(0.99 * 10) = 10: with few samples p99 is the maximum
    assert.equal(percentile(ten, 99), 10);
    assert.equal(percentile(ten, 50), 5);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
  });

  it("does not reorder the caller's samples", () => {
    const samples = [3, 1, 2];
    median(samples);
    percentile(samples, 99);
    assert.deepEqual(samples, [3, 1, 2]);
  });

  it("refuses empty samples, non-finite samples and percentiles out of range", () => {
    assert.throws(() => median([]), /median: no samples/);
    assert.throws(() => percentile([], 99), /p99: no samples/);
    assert.throws(() => median([1, Number.NaN]), /sample 1 is NaN/);
    assert.throws(() => percentile([1], 0), /p must be in \(0, 100\]/);
    assert.throws(() => percentile([1], 101), /p must be in \(0, 100\]/);
  });

  it("ratio divides, and has no value against a zero reference", () => {
    assert.equal(ratio(6, 2), 3);
    assert.equal(ratio(1, 4), 0.25);
    assert.equal(ratio(5, 0), undefined);
  });
});

describe("bench harness: summarize", () => {
  const figures: Figure[] = [
    { name: "slow", unit: "µs", samples: [30, 10, 20], reference: "fast" },
    { name: "fast", unit: "µs", samples: [5, 4, 6, 5] },
  ];

  it("gives each figure its median, p99, sample count and ratio to its reference", () => {
    assert.deepEqual(summarize("demo", figures), [
      {
        benchmark: "demo",
        figure: "slow",
        unit: "µs",
        n: 3,
        median: 20,
        p99: 30,
        reference: "fast",
        ratio: 4,
      },
      { benchmark: "demo", figure: "fast", unit: "µs", n: 4, median: 5, p99: 6 },
    ]);
  });

  it("names the figure when a reference is missing, in another unit, or a name repeats", () => {
    assert.throws(
      () => summarize("demo", [{ name: "a", unit: "µs", samples: [1], reference: "b" }]),
      /demo: figure "a": reference "b" not found/,
    );
    assert.throws(
      () =>
        summarize("demo", [
          { name: "a", unit: "µs", samples: [1], reference: "b" },
          { name: "b", unit: "ms", samples: [1] },
        ]),
      /demo: figure "a" \(µs\): reference "b" is in ms/,
    );
    assert.throws(
      () =>
        summarize("demo", [
          { name: "a", unit: "µs", samples: [1] },
          { name: "a", unit: "µs", samples: [2] },
        ]),
      /demo: figure "a" appears twice/,
    );
    assert.throws(
      () => summarize("demo", [{ name: "a", unit: "µs", samples: [] }]),
      /demo: figure "a": median: no samples/,
    );
  });
});

describe("bench harness: table", () => {
  it("formats numbers to at most 4 significant digits", () => {
    assert.equal(formatNumber(0), "0");
    assert.equal(formatNumber(123456.7), "123457");
    assert.equal(formatNumber(1174.2), "1174");
    assert.equal(formatNumber(332.94), "332.9");
    assert.equal(formatNumber(3.525533), "3.526");
    assert.equal(formatNumber(0.0123456), "0.01235");
    assert.equal(formatNumber(0.00001234), "1.23e-5");
    assert.equal(formatNumber(2), "2");
  });

  it("aligns the columns: text to the left, numbers to the right", () => {
    const rows = summarize("floor", [
      { name: "grpc", unit: "µs", samples: [1200, 1100, 1300], reference: "http" },
      { name: "http", unit: "µs", samples: [300, 40] },
    ]);
    assert.equal(
      formatTable(rows),
      [
        "benchmark  figure  n  median   p99  unit  ratio",
        "---------  ------  -  ------  ----  ----  ------------",
        "floor      grpc    3    1200  1300  µs    7.059 × http",
        "floor      http    2     170   300  µs",
      ].join("\n"),
    );
  });

  it("prints the header alone for no rows", () => {
    assert.match(formatTable([]), /^benchmark {2}figure {2}n {2}median {2}p99 {2}unit {2}ratio\n/);
  });
});

describe("bench harness: seed and arguments", () => {
  it("draws the same sequence from the same seed, another from another seed", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const c = createRandom(43);
    const first = Array.from({ length: 5 }, () => a());
    assert.deepEqual(
      Array.from({ length: 5 }, () => b()),
      first,
    );
    assert.notDeepEqual(
      Array.from({ length: 5 }, () => c()),
      first,
    );
    for (const x of first) assert.ok(x >= 0 && x < 1, `${x} is in [0, 1)`);
  });

  it("takes the seed from the environment run.ts sets, else the default", () => {
    assert.equal(benchSeed({}), DEFAULT_SEED);
    assert.equal(benchSeed({ [SEED_ENV]: "7" }), 7);
    assert.throws(
      () => benchSeed({ [SEED_ENV]: "x" }),
      /ISTHMUS_BENCH_SEED: "x" is not an integer/,
    );
  });

  it("parses names and options, and names a bad argument", () => {
    assert.deepEqual(parseRunArgs([]), { names: [], smoke: false, seed: DEFAULT_SEED });
    assert.deepEqual(parseRunArgs(["policy", "kubesim", "--smoke", "--json", "out.json"]), {
      names: ["policy", "kubesim"],
      smoke: true,
      seed: DEFAULT_SEED,
      json: "out.json",
    });
    assert.equal(parseRunArgs(["--seed", "9"]).seed, 9);
    assert.throws(() => parseRunArgs(["--seed", "1.5"]), /--seed: "1.5" is not an integer/);
    assert.throws(() => parseRunArgs(["bench/floor.ts"]), /benchmark "bench\/floor.ts"/);
    assert.throws(() => parseRunArgs(["--fast"]), /--fast/);
  });

  it("lists the modules of a folder, leaving out the harness and scratch files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "bench-list-"));
    try {
      for (const f of [
        "run.ts",
        "harness.ts",
        "b.ts",
        "a.ts",
        "types.d.ts",
        "README.md",
        ".try.ts",
        "Scratch.ts",
      ])
        await writeFile(join(dir, f), "");
      await mkdir(join(dir, "results.ts"));
      assert.deepEqual(await listBenchModules(dir), ["a", "b"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("timeEach calls warm-up plus timed rounds and keeps one sample per timed round", async () => {
    let calls = 0;
    const samples = await timeEach(5, 3, async () => {
      calls += 1;
    });
    assert.equal(calls, 8);
    assert.equal(samples.length, 5);
    for (const s of samples) assert.ok(Number.isFinite(s) && s >= 0);
  });
});

describe("bench modules", () => {
  it("every module in bench/ exports a default function", async () => {
    const names = await listBenchModules(BENCH_DIR);
    assert.ok(names.includes("floor"), `floor among ${names.join(", ")}`);
    for (const name of names) {
      const mod = (await import(pathToFileURL(join(BENCH_DIR, `${name}.ts`)).href)) as {
        default?: unknown;
      };
      assert.equal(typeof mod.default, "function", `bench/${name}.ts exports default function`);
    }
  });
});

describe("bench/run.ts", function () {
  this.timeout(120_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-run-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("--smoke floor prints the table and writes the same rows as JSON", async () => {
    const json = join(dir, "floor.json");
    const { code, stdout, stderr } = await runBench(["--smoke", "--json", json, "floor"]);
    assert.equal(code, 0, stderr);
    const report = JSON.parse(await readFile(json, "utf8")) as JsonReport;
    assert.equal(report.smoke, true);
    assert.equal(report.seed, DEFAULT_SEED);
    assert.match(report.commit, /^([0-9a-f]{7,}(-dirty)?|unknown)$/);
    assert.ok(report.loadAverage.start >= 0 && report.loadAverage.end >= 0);
    assert.deepEqual(report.failures, []);
    assert.deepEqual(
      report.rows.map((r) => [r.benchmark, r.figure, r.unit, r.n]),
      [
        ["floor", "grpc unary round trip", "µs", 50],
        ["floor", "grpc unary round trip, TLS", "µs", 50],
        ["floor", "grpc stream ping-pong", "µs", 50],
        ["floor", "http round trip", "µs", 50],
        ["floor", "peak RSS (process)", "MiB", 1],
      ],
    );
    const [grpc, tls, stream, http, rss] = report.rows as [Row, Row, Row, Row, Row];
    assert.equal(grpc.reference, "http round trip");
    assert.equal(grpc.ratio, grpc.median / http.median);
    for (const r of [tls, stream]) {
      assert.equal(r.reference, "grpc unary round trip");
      assert.equal(r.ratio, r.median / grpc.median);
    }
    for (const r of report.rows) assert.ok(r.median > 0 && r.p99 >= r.median, r.figure);
    assert.ok(rss.median > 10, `peak RSS ${rss.median} MiB is a process's, not zero`);
    assert.equal(stdout, `${formatTable(report.rows)}\n`);
  });

  it("--smoke runs every module in bench/ without a failure, each with figures", async function () {
    // The smoke workload of every benchmark: a change that breaks one fails here, not in
    // the next measurement run (about 60 s on 2 cores alone; over 280 s at a load average
    // of 25, as seen in CI on the shared machine).
    this.timeout(480_000);
    const json = join(dir, "all.json");
    const { code, stderr } = await runBench(["--smoke", "--json", json], 460_000);
    const report = JSON.parse(await readFile(json, "utf8")) as JsonReport;
    assert.deepEqual(report.failures, [], stderr);
    assert.equal(code, 0, stderr);
    for (const name of await listBenchModules(BENCH_DIR)) {
      const figures = report.rows.filter(
        (r) => r.benchmark === name && r.figure !== "peak RSS (process)",
      );
      assert.ok(figures.length > 0, `bench/${name}.ts reported no figures`);
    }
  });

  it("keeps going when a benchmark crashes, reports it and exits 1", async () => {
    const mods = join(dir, "mods");
    await mkdir(mods);
    await writeFile(join(mods, "package.json"), '{ "type": "module" }\n');
    await writeFile(
      join(mods, "boom.ts"),
      'export default async function run() { throw new Error("boom at work"); }\n',
    );
    await writeFile(join(mods, "nodefault.ts"), "export const run = 1;\n");
    await writeFile(
      join(mods, "gone.ts"),
      "export default async function run() { process.exit(3); }\n",
    );
    await writeFile(
      join(mods, "seeded.ts"),
      [
        "export default async function run({ smoke }: { smoke: boolean }) {",
        "  const seed = Number(process.env.ISTHMUS_BENCH_SEED);",
        '  return [{ name: "seed", unit: "n", samples: [seed, smoke ? 1 : 0] }];',
        "}",
        "",
      ].join("\n"),
    );
    const json = join(dir, "mods.json");
    const { code, stdout, stderr } = await runBench(["--dir", mods, "--seed", "7", "--json", json]);
    assert.equal(code, 1);
    assert.match(stderr, /bench: boom failed: Error: boom at work/);
    assert.match(stderr, /bench: gone failed: child exited \(code 3\) without reporting figures/);
    assert.match(
      stderr,
      /bench: nodefault failed: Error: \S+nodefault\.ts does not export a default function/,
    );
    assert.match(stderr, /bench: 3 of 4 failed: boom, gone, nodefault/);
    const report = JSON.parse(await readFile(json, "utf8")) as JsonReport;
    assert.deepEqual(
      report.failures.map((f) => f.benchmark),
      ["boom", "gone", "nodefault"],
    );
    const seeded = report.rows.find((r) => r.benchmark === "seeded" && r.figure === "seed");
    // samples [7, 0]: the seed reached the child, and this was not a smoke run
    assert.equal(seeded?.median, 3.5);
    assert.equal(seeded?.p99, 7);
    assert.match(stdout, /^seeded +seed +2 +3\.5 +7 +n$/m);
  });

  it("refuses --child outside a run (it is how run.ts starts a module)", async () => {
    const { code, stderr } = await runBench(["--child", "floor", "--smoke"]);
    assert.equal(code, 2);
    assert.match(stderr, /--child is how bench\/run\.ts runs a module; use npm run bench -- floor/);
  });

  it("refuses a benchmark name that does not exist, listing those that do", async () => {
    const { code, stderr } = await runBench(["--smoke", "no-such-bench"]);
    assert.equal(code, 2);
    assert.match(stderr, /bench: no benchmark "no-such-bench" in .*bench \(there are: .*floor/);
  });
});
