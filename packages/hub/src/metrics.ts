import { createServer, type Server } from "node:http";
import { parseCertificatesPem } from "@isthmus/pki";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { HUB_VERSION } from "./version.js";

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface HubMetricsOptions {
  /** Node's standard process metrics (`process_*`, `nodejs_*`, unprefixed as Prometheus'
   * client libraries name them); default true. Off for hubs that serve no /metrics (tests). */
  defaultMetrics?: boolean;
}

/** The hub's Prometheus metrics, on a registry of its own. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one declaration per metric, and the updaters that share them
export function createHubMetrics(options: HubMetricsOptions = {}) {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: "isthmus_build_info",
    help: "Always 1; the labels tell which build runs",
    labelNames: ["component", "version", "node"],
    registers: [registry],
  }).set({ component: "hub", version: HUB_VERSION, node: process.versions.node }, 1);
  const certificateExpiry = new Gauge({
    name: "isthmus_hub_certificate_expiry_timestamp_seconds",
    help: "notAfter of each certificate the hub holds (certificate: ca, server), Unix seconds",
    labelNames: ["certificate", "subject", "serial"],
    registers: [registry],
  });
  let clusters: () => Iterable<[id: string, connected: boolean]> = () => [];
  new Gauge({
    name: "isthmus_hub_agent_connected",
    help: "1 while the agent of a registered cluster has an open stream, 0 while it has none",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      // Read at scrape time: a deleted cluster's series goes with it.
      this.reset();
      for (const [cluster, connected] of clusters()) this.set({ cluster }, connected ? 1 : 0);
    },
  });
  let ready: () => boolean = () => false;
  new Gauge({
    name: "isthmus_hub_ready",
    help: "1 while the hub serves (gRPC health SERVING, /readyz 200), else 0",
    registers: [registry],
    collect() {
      this.set(ready() ? 1 : 0);
    },
  });
  const m = {
    registry,
    leader: new Gauge({
      name: "isthmus_hub_leader",
      help: "1 while this replica leads (always with the file store), else 0",
      registers: [registry],
    }),
    /** Where the scrape-time gauges read from: registered clusters and readiness. */
    observe(sources: {
      clusters: () => Iterable<[id: string, connected: boolean]>;
      ready: () => boolean;
    }): void {
      clusters = sources.clusters;
      ready = sources.ready;
    },
    /** Publishes the expiry of every certificate of a PEM bundle under the role `certificate`. */
    certificates(certificate: "ca" | "server", pem: string): void {
      for (const c of parseCertificatesPem(pem, certificate)) {
        const labels = { certificate, subject: c.subject, serial: c.serialNumber.toLowerCase() };
        certificateExpiry.set(labels, Math.floor(c.notAfter.getTime() / 1000));
      }
    },
    connectedAgents: new Gauge({
      name: "isthmus_hub_connected_agents",
      help: "Agents with an open stream",
      registers: [registry],
    }),
    catalogServices: new Gauge({
      name: "isthmus_hub_catalog_services",
      help: "Services in the catalog per cluster",
      labelNames: ["cluster"],
      registers: [registry],
    }),
    deltasSent: new Counter({
      name: "isthmus_hub_config_deltas_sent_total",
      help: "ConfigDeltas sent to agents",
      labelNames: ["cluster"],
      registers: [registry],
    }),
    nacks: new Counter({
      name: "isthmus_hub_nacks_total",
      help: "NACKs received",
      labelNames: ["cluster"],
      registers: [registry],
    }),
    debounce: new Histogram({
      name: "isthmus_hub_debounce_seconds",
      help: "Time from the first change to the delta being sent",
      buckets: latencyBuckets,
      registers: [registry],
    }),
    push: new Histogram({
      name: "isthmus_hub_push_seconds",
      help: "Time from a delta being sent to its ACK or NACK",
      buckets: latencyBuckets,
      registers: [registry],
    }),
    convergence: new Histogram({
      name: "isthmus_hub_convergence_seconds",
      help: "Time from a catalog change's origin in its cluster to the ACK of every affected cluster",
      buckets: latencyBuckets,
      registers: [registry],
    }),
    agentReportsRejected: new Counter({
      name: "isthmus_hub_agent_reports_rejected_total",
      help: "Agent messages refused (their stream ended, nothing of them applied), by reason: contract, trust-domain, catalog, engine, conflicts, objects (an ObjectsReport refused: the request fails, the stream stays), policy-source (a PolicySourceReport refused: nothing stored, the stream stays)",
      labelNames: ["cluster", "reason"],
      registers: [registry],
    }),
    refusedCalls: new Counter({
      name: "isthmus_hub_refused_calls_total",
      help: "Calls refused before their request was read, by reason",
      labelNames: ["reason"],
      registers: [registry],
    }),
    refusedConnections: new Counter({
      name: "isthmus_hub_refused_connections_total",
      help: "Connections closed on accept, by reason",
      labelNames: ["reason"],
      registers: [registry],
    }),
    watchers: new Gauge({
      name: "isthmus_hub_catalog_watchers",
      help: "Open WatchCatalog streams",
      registers: [registry],
    }),
    watchPending: new Gauge({
      name: "isthmus_hub_catalog_watch_pending_changes",
      help: "Catalog entries whose change waits to be sent, summed over all watchers",
      registers: [registry],
    }),
    watchCutoffs: new Counter({
      name: "isthmus_hub_catalog_watch_cutoffs_total",
      help: "Watchers ended because they fell behind, by reason",
      labelNames: ["reason"],
      registers: [registry],
    }),
  };
  return m;
}

export type HubMetrics = ReturnType<typeof createHubMetrics>;

/** Serves /metrics, /healthz and /readyz. */
export function serveHttp(
  metrics: HubMetrics,
  ready: () => { ready: boolean; detail: string },
): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const { ready: ok, detail } = ready();
      res
        .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
        .end(`${ok ? "ready" : "not ready"}: ${detail}\n`);
    } else if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404).end("not found\n");
    }
  });
}
