#!/usr/bin/env node
// Launcher: the packages ship TypeScript sources, run through tsx.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv);
