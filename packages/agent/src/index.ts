export * from "./discovery/cache.js";
export * from "./discovery/catalog.js";
export * from "./discovery/informer.js";
export * from "./discovery/mesh.js";
export * from "./kube/client.js";
export * from "./kube/resources.js";
export * from "./render/index.js";
