// The policy engine's decisions against what Istio would enforce with the objects the agents
// render, over seeded random scenes (issue 16). ISTHMUS_MODEL_SEEDS raises the seed count.
import assert from "node:assert/strict";
import { describeMismatch, MismatchClasses, runSeed } from "./differential.js";

const SEEDS = Number(process.env.ISTHMUS_MODEL_SEEDS ?? 2000);
/** ISTHMUS_MODEL_VERBOSE=1 prints every mismatch, not only each class's first. */
const VERBOSE = process.env.ISTHMUS_MODEL_VERBOSE === "1";

describe("mesh model: the engine's decisions hold in Istio (differential, seeded)", () => {
  it(`over ${SEEDS} random scenes: no decided DENY that Istio allows, no decided ALLOW that fails`, function () {
    this.timeout(Math.max(180_000, SEEDS * 100));
    const classes = new MismatchClasses();
    let skipped = 0;
    let compared = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const run = runSeed(seed);
      skipped += run.skipped;
      compared += run.compared;
      classes.add(run.mismatches);
      if (VERBOSE)
        for (const m of run.mismatches) process.stdout.write(`      ${describeMismatch(m)}\n`);
    }
    process.stdout.write(
      `      ${SEEDS} seeds: ${compared} pairs compared, ${skipped} skipped (the engine marks them not enforced), ${classes.total} mismatches in ${classes.byClass.size} classes\n`,
    );
    assert.equal(classes.total, 0, `mismatches by class:\n${classes.report()}`);
  });
});
