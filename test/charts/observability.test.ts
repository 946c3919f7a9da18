// The hub chart's Grafana dashboard and PrometheusRule (issue 22): the dashboard is JSON that
// Grafana loads, both render, every expression parses as PromQL, and every metric it selects
// is one the hub or the agent registers (names collected from their registries at run time), so that a renamed
// metric cannot leave a panel empty or an alert silent. And the metrics themselves follow
// Prometheus' naming: counters and only counters end in _total, in base units.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AGENT_VERSION, createAgentMetrics } from "@isthmus/agent";
import { createGrpcServerMetrics, createHubMetrics } from "@isthmus/hub";
import { parser } from "@prometheus-io/lezer-promql";
import type { Registry } from "prom-client";
import { CHARTS_DIR } from "./chart.js";
import { ensureRenderer, type K8sObject, renderChart } from "./render.js";

const HUB = join(CHARTS_DIR, "isthmus-hub");
const VALUES = join(CHARTS_DIR, "../test/charts/testdata/values/hub-production.yaml");

interface Metric {
  name: string;
  type: string;
}

/** Every metric of the hub's and one agent's registries, as the processes register them. */
async function registeredMetrics(): Promise<Metric[]> {
  const hub = createHubMetrics({ defaultMetrics: true });
  createGrpcServerMetrics(hub.registry);
  const agent = createAgentMetrics("c1", { version: AGENT_VERSION, certificates: () => [] });
  const of = async (r: Registry) =>
    (await r.getMetricsAsJSON()).map((m) => ({ name: m.name, type: String(m.type) }));
  return [...(await of(hub.registry)), ...(await of(agent.registry))];
}

/** The series names a metric exposes: a histogram's _bucket, _sum and _count, and so on. */
function seriesNames(metrics: readonly Metric[]): Set<string> {
  const names = new Set<string>();
  for (const { name, type } of metrics) {
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    else if (type === "summary") for (const s of ["", "_sum", "_count"]) names.add(name + s);
    else names.add(name);
  }
  return names;
}

/**
 * The metric names a PromQL expression reads, from Prometheus' own PromQL grammar
 * (@prometheus-io/lezer-promql, the parser of Prometheus' web UI): the names of its vector
 * selectors. Grafana's interval variables are replaced by a duration first; an expression that
 * does not parse throws, naming where.
 */
function metricNamesOf(expr: string): string[] {
  const promql = expr.replace(/\$__(rate_)?interval\b/g, "5m");
  const names = new Set<string>();
  parser.parse(promql).iterate({
    enter(node) {
      if (node.type.isError)
        throw new Error(`not PromQL at ${node.from}: ${promql.slice(node.from, node.from + 30)}`);
      if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector")
        names.add(promql.slice(node.from, node.to));
    },
  });
  return [...names];
}

interface Dashboard {
  uid: string;
  panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; type: string; query?: { query: string } }[] };
}

function dashboardExpressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of d.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of d.templating.list) {
    const m = /^label_values\(([^,]+),/.exec(v.query?.query ?? "");
    if (m !== null) out.push({ where: `variable ${v.name}`, expr: m[1]! });
  }
  return out;
}

describe("chart isthmus-hub: dashboard and alerts", function () {
  this.timeout(60_000);
  let series: Set<string>;
  let metrics: Metric[];
  let rendered: K8sObject[];
  const file = readFileSync(join(HUB, "dashboards/isthmus.json"), "utf8");

  before(async () => {
    metrics = await registeredMetrics();
    series = seriesNames(metrics);
    ensureRenderer();
    rendered = renderChart(HUB, [VALUES]).objects;
  });

  it("finds the metric names of an expression, and nothing else", () => {
    assert.deepEqual(
      metricNamesOf(
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(a_seconds_bucket{grpc_type="unary", x=~"$cluster"}[$__rate_interval]))) > 1e3',
      ),
      ["a_seconds_bucket"],
    );
    assert.deepEqual(
      metricNamesOf(
        "(b_total - time()) < 14 * 86400 or absent(c) unless on (cluster) group_left d offset 5m",
      ),
      ["b_total", "c", "d"],
    );
    assert.throws(() => metricNamesOf("sum(rate(x[5m])"), /^Error: not PromQL at/);
  });

  it("the dashboard is Grafana JSON: a uid, unique panel ids, an expression in every target", () => {
    const d = JSON.parse(file) as Dashboard;
    assert.equal(d.uid, "isthmus-overview");
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "unique panel ids");
    for (const p of d.panels.filter((x) => x.type !== "row")) {
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has targets`);
      for (const t of p.targets!) assert.ok(t.expr.trim() !== "", `panel "${p.title}"`);
    }
    assert.deepEqual(
      d.templating.list.map((v) => v.name),
      ["datasource", "cluster", "job"],
    );
  });

  it("every metric the dashboard reads is registered by the hub or the agent", () => {
    const d = JSON.parse(file) as Dashboard;
    const read = new Set<string>();
    for (const { where, expr } of dashboardExpressions(d)) {
      const names = metricNamesOf(expr);
      assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
      for (const n of names) {
        assert.ok(series.has(n), `${where}: ${n} is not a registered metric (${expr})`);
        read.add(n);
      }
    }
    // What an operator looks at first is on it.
    for (const n of [
      "isthmus_hub_agent_connected",
      "isthmus_hub_convergence_seconds_bucket",
      "isthmus_hub_nacks_total",
      "isthmus_hub_grpc_server_handled_total",
      "isthmus_hub_certificate_expiry_timestamp_seconds",
      "isthmus_agent_certificate_expiry_timestamp_seconds",
      "process_resident_memory_bytes",
    ])
      assert.ok(read.has(n), `the dashboard shows ${n}`);
  });

  it("ships the dashboard file as it is in a ConfigMap with the sidecar's label", () => {
    const map = rendered.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-dashboard"),
    );
    assert.ok(map, "dashboard ConfigMap rendered");
    assert.equal(map.metadata.labels?.grafana_dashboard, "1");
    assert.deepEqual((map.metadata as { annotations?: Record<string, string> }).annotations, {
      grafana_folder: "Isthmus",
    });
    const data = map.data as Record<string, string>;
    assert.deepEqual(JSON.parse(data["isthmus.json"]!), JSON.parse(file));
  });

  it("every alert reads registered metrics, and the issue's alerts are there", () => {
    const rule = rendered.find((o) => o.kind === "PrometheusRule");
    assert.ok(rule, "PrometheusRule rendered");
    assert.equal(rule.metadata.labels?.release, "kube-prometheus-stack");
    const groups = (rule.spec as { groups: { name: string; rules: Record<string, unknown>[] }[] })
      .groups;
    const rules = groups.flatMap((g) => g.rules);
    for (const r of rules) {
      const expr = String(r.expr);
      const names = metricNamesOf(expr);
      assert.ok(names.length > 0, `${r.alert}: no metric in ${expr}`);
      for (const n of names) assert.ok(series.has(n), `${r.alert}: ${n} is not registered`);
      const annotations = r.annotations as Record<string, string>;
      assert.ok(annotations.summary && annotations.description, `${r.alert}: annotations`);
      // Prometheus' own templates reach Prometheus; Helm's were all rendered.
      assert.doesNotMatch(JSON.stringify(r), /\$r\.|\.Values/);
    }
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        "IsthmusHubNotReady",
        "IsthmusAgentDisconnected",
        "IsthmusNacks",
        "IsthmusConvergenceSlow",
        "IsthmusCertificateExpiringSoon",
        "IsthmusAgentClientCertificateExpiring",
        "IsthmusAgentInformerUnhealthy",
        "IsthmusCertificateUnreadable",
      ],
    );
    const expiring = rules.find((r) => r.alert === "IsthmusCertificateExpiringSoon")!;
    assert.match(String(expiring.expr), /< 14 \* 86400/);
    assert.match(
      (expiring.annotations as Record<string, string>).summary!,
      /\{\{ \$labels\.certificate \}\}/,
    );
  });

  it("probes with gRPC on the plaintext health port when probes.grpc is set", () => {
    const objects = renderChart(HUB, [
      join(CHARTS_DIR, "../test/charts/testdata/values/hub-grpc-probes.yaml"),
    ]).objects;
    const pod = objects.find((o) => o.kind === "Deployment")!.spec as {
      template: { spec: { containers: Record<string, unknown>[] } };
    };
    const c = pod.template.spec.containers[0]!;
    assert.deepEqual((c.livenessProbe as { grpc: unknown }).grpc, { port: 8081 });
    assert.deepEqual((c.readinessProbe as { grpc: unknown }).grpc, { port: 8081 });
    assert.deepEqual(
      (c.ports as { name: string; containerPort: number }[]).map((p) => p.name),
      ["grpc", "metrics", "grpc-health"],
    );
    const hubYaml = (objects.find((o) => o.kind === "ConfigMap")!.data as Record<string, string>)[
      "hub.yaml"
    ]!;
    assert.match(hubYaml, /^grpcHealthListen: "0\.0\.0\.0:8081"$/m);
  });

  it("names metrics as Prometheus does: counters and only counters end in _total, base units", () => {
    const own = metrics.filter((m) => m.name.startsWith("isthmus_"));
    assert.ok(own.length > 30, `${own.length} metrics`);
    for (const { name, type } of own) {
      assert.equal(name.endsWith("_total"), type === "counter", `${name} (${type})`);
      assert.doesNotMatch(name, /_(ms|milliseconds|minutes|hours|days|kb|mb|kib|mib)(_|$)/, name);
      if (type === "histogram") assert.match(name, /_(seconds|bytes)$/, name);
    }
    // Standard process metrics, unprefixed, on both.
    for (const n of ["process_cpu_seconds_total", "nodejs_heap_size_used_bytes"])
      assert.equal(metrics.filter((m) => m.name === n).length, 2, `${n} on hub and agent`);
    assert.equal(metrics.filter((m) => m.name === "isthmus_build_info").length, 2);
  });
});
