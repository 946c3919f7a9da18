import { readFileSync } from "node:fs";

/** The CLI's version: its package's. */
export const { version: CLI_VERSION } = JSON.parse(
  readFileSync(new URL("../package.json", import.meta.url), "utf8"),
) as { version: string };
