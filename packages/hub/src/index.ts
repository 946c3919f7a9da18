export {
  type AdminToken,
  ConfigError,
  defaultHubConfig,
  type HubConfig,
  loadHubConfigFile,
  type Role,
  resolveHubConfig,
} from "./config.js";
export { createDistributor, type Distributor, type DistributorOptions } from "./distributor.js";
export { createGrpcServerMetrics } from "./grpc-metrics.js";
export type { HubHealth } from "./health.js";
export { type CreateHubOptions, createHub, HUB_VERSION, type Hub } from "./hub.js";
export { createHubMetrics, type HubMetrics, type HubMetricsOptions } from "./metrics.js";
export { openFileStore, type Store, type StoreEntry, StoreError, type TxnOp } from "./store.js";
