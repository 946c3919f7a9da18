export * from "./catalog.js";
export * from "./catalog-keys.js";
export * from "./catalog-types.js";
export * from "./errors.js";
export * from "./random.js";
