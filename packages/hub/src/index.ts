export {
  type AdminToken,
  ConfigError,
  defaultHubConfig,
  type EtcdConfig,
  type HubConfig,
  loadHubConfigFile,
  type Role,
  resolveHubConfig,
} from "./config.js";
export { createDistributor, type Distributor, type DistributorOptions } from "./distributor.js";
export { createGrpcServerMetrics } from "./grpc-metrics.js";
export type { HubHealth } from "./health.js";
export { type CreateHubOptions, createHub, HUB_VERSION, type Hub } from "./hub.js";
export {
  type LeaderInfo,
  type Leadership,
  type LeadershipOptions,
  type LeadershipView,
  soleLeadership,
  startLeadership,
} from "./leadership.js";
export { createHubMetrics, type HubMetrics, type HubMetricsOptions } from "./metrics.js";
export {
  type ClusterRecord,
  openRegistry,
  type Registry,
  type RegistryChange,
  type RegistryOptions,
} from "./registry.js";
export {
  isStoreError,
  openFileStore,
  type Store,
  type StoreBatch,
  type StoreEntry,
  StoreError,
  type StoreErrorCode,
  type StoreEvent,
  type StoreSnapshot,
  type StoreWatch,
  type TxnOp,
} from "./store.js";
export { etcdStoreOptions, openConfiguredEtcdStore } from "./store-config.js";
export {
  createEtcdClient,
  DEFAULT_ETCD_PREFIX,
  type EtcdStore,
  type EtcdStoreOptions,
  openEtcdStore,
} from "./store-etcd.js";
