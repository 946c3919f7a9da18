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
export { type CreateHubOptions, createHub, HUB_VERSION, type Hub } from "./hub.js";
export {
  type LeaderInfo,
  type Leadership,
  type LeadershipOptions,
  type LeadershipView,
  soleLeadership,
  startLeadership,
} from "./leadership.js";
export { openFileStore, type Store, type StoreEntry, StoreError, type TxnOp } from "./store.js";
