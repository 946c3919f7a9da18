export { statusTable } from "./commands/status.js";
export { jsonPath } from "./jsonpath.js";
export { createProgram, EXIT_ERROR, EXIT_USAGE, main } from "./main.js";
