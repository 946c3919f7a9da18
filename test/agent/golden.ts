import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const testdata = join(dirname(fileURLToPath(import.meta.url)), "testdata");

/** Compares `actual` with testdata/<name>; UPDATE_GOLDEN=1 rewrites the file instead. */
export function expectGolden(name: string, actual: string): void {
  const path = join(testdata, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, "utf8");
  } catch {
    assert.fail(`golden file ${path} is missing; run with UPDATE_GOLDEN=1 to create it`);
  }
  assert.equal(actual, expected, `output differs from ${path} (UPDATE_GOLDEN=1 refreshes it)`);
}
