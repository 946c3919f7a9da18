#!/usr/bin/env node
// Launcher: runs the compiled dist/ through the package's own "./main" export. Under the
// "@isthmus/source" condition (tests, benchmarks: see test/setup.ts) that export is the
// TypeScript source, which the tsx loader given alongside runs.
const { main } = await import("@isthmus/cli/main");
process.exitCode = await main(process.argv);
