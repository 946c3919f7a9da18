export * from "./catalog.js";
export * from "./errors.js";
export * from "./random.js";
