// What the hub's services share: the hub's state (registry, engine, catalogs, delivery) and
// the operations over it, built by createHub (hub.ts). Each service takes only the part it
// uses (the narrowed types below), so that no service imports the hub that builds it.
import type { Logger } from "@isthmus/logging";
import type { CertifiedKey } from "@isthmus/pki";
import type { CatalogChange, Deltas, PolicyEngine } from "@isthmus/policy";
import type { CallContext, Conflict, Service, WorkloadIdentity } from "@isthmus/proto";
import type { HubConfig, Role } from "./config.js";
import type { Distributor } from "./distributor.js";
import type { Leadership } from "./leadership.js";
import type { HubMetrics } from "./metrics.js";
import type { ObjectRequests } from "./object-requests.js";
import type { Registry } from "./registry.js";

export type EngineWarning = ReturnType<PolicyEngine["warnings"]>[number];

/** What the hub holds of one cluster's catalog, beside the policy engine. */
export interface ClusterCatalog {
  services: Map<string, Service>;
  identities: Map<string, WorkloadIdentity>;
  revision: bigint;
  connected: boolean;
  lastSeen: number;
  staleUntil: number | undefined;
  agentVersion: string;
  mesh: ClusterFactsInput | undefined;
  warnings: { code: string; message: string }[];
  /** Foreign objects in conflict with Isthmus decisions, as the agent last reported them. */
  conflicts: Conflict[];
  /** Why the cluster's last PolicySourceReport was refused ("": none or accepted). */
  policySourceRefusal: string;
  graceTimer: NodeJS.Timeout | undefined;
}

export interface ClusterFactsInput {
  network: string;
  trustDomain: string;
  eastWestGateways: { address: string; port: number }[];
  locality: string;
}

/** Called on every change of a cluster's catalog entry (`service` undefined: removed). */
export type CatalogListener = (
  clusterId: string,
  service: Service | undefined,
  key: string,
) => void;

export interface HubContext {
  config: HubConfig;
  logger: Logger;
  registry: Registry;
  engine: PolicyEngine;
  distributor: Distributor;
  metrics: HubMetrics;
  hubCa: CertifiedKey;
  catalogs: Map<string, ClusterCatalog>;
  /** This replica's role; a hub without election always leads, in term 0. */
  leadership: Leadership;
  /** Active stream per cluster, to cut it when the cluster is deleted. */
  streams: Map<string, AbortController>;
  warmingUp(): boolean;
  systemVersion(): string;
  /** The engine's compilation warnings of a cluster, cached until the engine changes. */
  warnings(clusterId: string): readonly EngineWarning[];
  /** Applies catalog changes to the engine (after any queued ones) and schedules deliveries. */
  applyCatalog(changes: CatalogChange[], origin?: number): void;
  /**
   * Queues an agent's catalog changes: applied on the next turn of the event loop in one
   * engine batch with every update queued by then. `refused` is called if the engine refuses
   * them (nothing of them is applied then; the other updates of the batch are).
   */
  queueCatalog(
    changes: CatalogChange[],
    origin: number | undefined,
    refused: (err: unknown) => void,
  ): void;
  /** Whether agents' catalog updates wait to be compiled (no cluster is in sync then). */
  catalogPending(): boolean;
  /**
   * Schedules deliveries for engine deltas; `origins`: the times of the catalog changes they
   * come from, one convergence measurement each (waiting on every cluster of the deltas).
   */
  deliver(deltas: Deltas, origins?: readonly number[]): void;
  authorizeAdmin(ctx: CallContext, role: Role): void;
  verifyAgent(ctx: CallContext): string;
  catalogEvents: Set<CatalogListener>;
  clusterFacts(id: string): CatalogChange | undefined;
  now(): number;
  /** Agents asked for their clusters' live objects (`isthmus verify`). */
  objectRequests: ObjectRequests;
}

/** What checks of agents' reports use (agent-reports.ts). */
export type ReportContext = Pick<HubContext, "logger" | "registry" | "metrics">;

/** What enrollment and renewal use (agent-service.ts). */
export type EnrollContext = Pick<
  HubContext,
  "logger" | "registry" | "hubCa" | "now" | "verifyAgent"
>;

/** What an agent's Connect stream uses (agent-session.ts). */
export type SessionContext = ReportContext &
  Pick<
    HubContext,
    | "config"
    | "catalogs"
    | "streams"
    | "distributor"
    | "catalogEvents"
    | "verifyAgent"
    | "clusterFacts"
    | "applyCatalog"
    | "queueCatalog"
    | "now"
    | "objectRequests"
    | "engine"
    | "deliver"
    | "leadership"
  >;

/** What a catalog watcher uses (catalog-watch.ts). */
export type WatchContext = Pick<HubContext, "config" | "metrics" | "catalogs" | "catalogEvents">;

/** Every admin call checks the caller's token first. */
export type AdminAuth = Pick<HubContext, "authorizeAdmin">;

/** What the admin calls on clusters use (admin/clusters.ts). */
export type ClusterAdminContext = AdminAuth &
  Pick<
    HubContext,
    | "config"
    | "logger"
    | "registry"
    | "hubCa"
    | "catalogs"
    | "streams"
    | "distributor"
    | "metrics"
    | "catalogEvents"
    | "clusterFacts"
    | "applyCatalog"
    | "now"
    | "objectRequests"
  >;

/** What the admin calls on policies use (admin/policies.ts). */
export type PolicyAdminContext = AdminAuth &
  Pick<HubContext, "logger" | "registry" | "engine" | "deliver" | "catalogs">;

/** What status, explain and the catalog listings use (admin/status.ts, admin/catalog.ts). */
export type StatusContext = AdminAuth &
  WatchContext &
  Pick<
    HubContext,
    | "registry"
    | "engine"
    | "distributor"
    | "warnings"
    | "catalogPending"
    | "warmingUp"
    | "systemVersion"
  >;
