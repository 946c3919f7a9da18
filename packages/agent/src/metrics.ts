import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { type CertificateSources, certificateExpiryGauge } from "./cert-expiry.js";
import type { InformerStatus } from "./discovery/informer.js";
import type { SessionState } from "./session.js";

/** The agent's Prometheus metrics, on their own registry (several agents share a process in the sandbox). */
export interface AgentMetrics {
  readonly registry: Registry;
  informer(status: InformerStatus): void;
  write(op: "apply" | "delete" | "noop" | "error"): void;
  session(state: SessionState): void;
  catalogSent(full: boolean, entries: number): void;
  configApplied(ok: boolean): void;
  driftRepaired(kind: string): void;
}

export interface AgentMetricsOptions {
  /** Node's standard process metrics, unprefixed (`process_*`, `nodejs_*`); default true. */
  defaultMetrics?: boolean;
  version: string;
  /** The certificates whose expiry is exported, read at every scrape. */
  certificates?: CertificateSources;
}

export function createAgentMetrics(clusterId: string, options: AgentMetricsOptions): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ cluster: clusterId });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "isthmus_build_info",
    help: "Always 1; the labels tell which build runs",
    labelNames: ["component", "version", "node"],
    registers: [registry],
  }).set({ component: "agent", version: options.version, node: process.versions.node }, 1);
  if (options.certificates !== undefined) certificateExpiryGauge(registry, options.certificates);
  const informerHealthy = new Gauge({
    name: "isthmus_agent_informer_healthy",
    help: "1 when the informer is listed and watching, 0 while it fails and restarts",
    labelNames: ["informer"],
    registers: [registry],
  });
  const informerSynced = new Gauge({
    name: "isthmus_agent_informer_synced",
    help: "1 once the informer listed at least once",
    labelNames: ["informer"],
    registers: [registry],
  });
  const informerRestarts = new Counter({
    name: "isthmus_agent_informer_restarts_total",
    help: "List/watch restarts after errors",
    labelNames: ["informer"],
    registers: [registry],
  });
  // The informers report their running count of restarts; the counter adds what is new.
  const restartsSeen = new Map<string, number>();
  const writes = new Counter({
    name: "isthmus_agent_object_writes_total",
    help: "Istio object reconciliations by outcome (apply, delete, noop, error)",
    labelNames: ["op"],
    registers: [registry],
  });
  const connected = new Gauge({
    name: "isthmus_agent_hub_connected",
    help: "1 while a hub session is established",
    registers: [registry],
  });
  const catalog = new Counter({
    name: "isthmus_agent_catalog_updates_total",
    help: "Catalog updates sent to the hub",
    labelNames: ["kind"],
    registers: [registry],
  });
  const catalogEntries = new Counter({
    name: "isthmus_agent_catalog_entries_sent_total",
    help: "Catalog entries (upserts and removals) sent to the hub",
    registers: [registry],
  });
  const deltas = new Counter({
    name: "isthmus_agent_config_deltas_total",
    help: "ConfigDeltas applied, by answer (ack, nack)",
    labelNames: ["result"],
    registers: [registry],
  });
  const driftRepairs = new Counter({
    name: "isthmus_agent_drift_repairs_total",
    help: "Owned Istio objects restored after someone else changed or deleted them, by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  return {
    registry,
    informer(s) {
      informerHealthy.set({ informer: s.name }, s.healthy ? 1 : 0);
      informerSynced.set({ informer: s.name }, s.synced ? 1 : 0);
      const added = s.restarts - (restartsSeen.get(s.name) ?? 0);
      restartsSeen.set(s.name, s.restarts);
      // Created at 0 so that rate() sees the first restart of an informer.
      informerRestarts.inc({ informer: s.name }, Math.max(0, added));
    },
    write: (op) => writes.inc({ op }),
    session: (state) => connected.set(state === "connected" ? 1 : 0),
    catalogSent(full, entries) {
      catalog.inc({ kind: full ? "full" : "delta" });
      catalogEntries.inc(entries);
    },
    configApplied: (ok) => deltas.inc({ result: ok ? "ack" : "nack" }),
    driftRepaired: (kind) => driftRepairs.inc({ kind }),
  };
}
