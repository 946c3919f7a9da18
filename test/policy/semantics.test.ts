import assert from "node:assert/strict";
import { type CatalogChange, createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import { type ConnectionPolicy, Decision } from "@isthmus/proto";
import { cluster, identity, policy, service } from "./fixtures.js";

/** Three clusters; payments/api in both prod clusters; web workloads in prod-eu and dev-eu. */
function scene(): CatalogChange[] {
  return [
    { kind: "cluster", cluster: cluster("prod-eu", { labels: { env: "prod", region: "eu" } }) },
    { kind: "cluster", cluster: cluster("prod-us", { labels: { env: "prod", region: "us" } }) },
    { kind: "cluster", cluster: cluster("dev-eu", { labels: { env: "dev", region: "eu" } }) },
    {
      kind: "service",
      clusterId: "prod-us",
      service: service("payments", "api", { ports: [8443, 9090] }),
    },
    {
      kind: "service",
      clusterId: "prod-eu",
      service: service("payments", "api", { ports: [8443, 9090] }),
    },
    { kind: "service", clusterId: "prod-eu", service: service("web", "frontend") },
    {
      kind: "service",
      clusterId: "prod-eu",
      service: service("web", "batch-ui", { serviceAccounts: ["batch"] }),
    },
    { kind: "identity", clusterId: "prod-eu", identity: identity("web", "frontend") },
    { kind: "identity", clusterId: "dev-eu", identity: identity("web", "frontend") },
    {
      kind: "identity",
      clusterId: "prod-eu",
      identity: identity("web", "batch", [{ app: "batch" }, { app: "frontend", role: "debug" }]),
    },
    { kind: "identity", clusterId: "prod-us", identity: identity("payments", "api") },
    { kind: "identity", clusterId: "prod-eu", identity: identity("payments", "api") },
  ];
}

function engineWith(
  policies: ConnectionPolicy[],
  defaults?: { sameCluster?: Decision; crossCluster?: Decision },
) {
  const e = createPolicyEngine(defaults === undefined ? {} : { defaults });
  e.setPolicies(policies);
  e.applyCatalog(scene());
  return e;
}

function decide(e: PolicyEngine, src: string, dst: string, port = 0): string {
  const [sc, sns, ssa] = src.split("/") as [string, string, string];
  const [dc, dns, dsvc] = dst.split("/") as [string, string, string];
  const r = e.explain(
    { clusterId: sc, namespace: sns, serviceAccount: ssa },
    { clusterId: dc, namespace: dns, service: dsvc, port },
  );
  const d = r.decision === Decision.ALLOW ? "ALLOW" : r.decision === Decision.DENY ? "DENY" : "?";
  return `${d} ${r.rule || `(${r.defaultReason})`}`;
}

const toPayments = { namespaces: ["payments"], services: ["api"] };

interface Case {
  name: string;
  policies: ConnectionPolicy[];
  defaults?: { sameCluster?: Decision; crossCluster?: Decision };
  checks: [src: string, dst: string, port: number, expected: string][];
}

const cases: Case[] = [
  {
    name: "no rules: same-cluster ALLOW, cross-cluster DENY",
    policies: [],
    checks: [
      ["prod-eu/web/frontend", "prod-eu/payments/api", 0, "ALLOW (same-cluster)"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "defaults are settings",
    policies: [],
    defaults: { sameCluster: Decision.DENY, crossCluster: Decision.ALLOW },
    checks: [
      ["prod-eu/web/frontend", "prod-eu/payments/api", 0, "DENY (same-cluster)"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW (cross-cluster)"],
    ],
  },
  {
    name: "lower priority first",
    policies: [
      policy("allow-web", 10, "ALLOW", [{ namespaces: ["web"] }], [toPayments]),
      policy("deny-web", 20, "DENY", [{ namespaces: ["web"] }], [toPayments]),
    ],
    checks: [["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW allow-web"]],
  },
  {
    name: "DENY before ALLOW by priority",
    policies: [
      policy("allow-web", 20, "ALLOW", [{ namespaces: ["web"] }], [toPayments]),
      policy("deny-web", 10, "DENY", [{ namespaces: ["web"] }], [toPayments]),
    ],
    checks: [["prod-eu/web/frontend", "prod-us/payments/api", 0, "DENY deny-web"]],
  },
  {
    name: "ties by name",
    policies: [
      policy("b-allow", 10, "ALLOW", [{ namespaces: ["web"] }], [toPayments]),
      policy("a-deny", 10, "DENY", [{ namespaces: ["web"] }], [toPayments]),
    ],
    checks: [["prod-eu/web/frontend", "prod-us/payments/api", 0, "DENY a-deny"]],
  },
  {
    name: "a DENY narrower than an earlier ALLOW never decides",
    policies: [
      policy("allow-all-web", 10, "ALLOW", [{ namespaces: ["web"] }], [toPayments]),
      policy("deny-dev", 20, "DENY", [{ clusters: ["dev-*"] }], [toPayments]),
    ],
    checks: [["dev-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW allow-all-web"]],
  },
  {
    name: "cluster globs",
    policies: [
      policy(
        "prod-only",
        10,
        "ALLOW",
        [{ clusters: ["prod-*"], namespaces: ["web"] }],
        [toPayments],
      ),
    ],
    checks: [
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW prod-only"],
      ["dev-eu/web/frontend", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "cluster labels on both sides",
    policies: [
      policy(
        "prod-to-us",
        10,
        "ALLOW",
        [{ clusterLabels: { env: "prod" }, namespaces: ["web"] }],
        [{ clusterLabels: { region: "us" }, namespaces: ["payments"] }],
      ),
    ],
    checks: [
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW prod-to-us"],
      ["dev-eu/web/frontend", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
      ["dev-eu/web/frontend", "prod-eu/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "service account globs and source services",
    policies: [
      policy(
        "by-sa",
        10,
        "ALLOW",
        [{ serviceAccounts: ["front*"], clusters: ["dev-eu"] }],
        [toPayments],
      ),
      policy("by-service", 20, "ALLOW", [{ services: ["batch-ui"] }], [toPayments]),
    ],
    checks: [
      ["dev-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW by-sa"],
      ["prod-eu/web/batch", "prod-us/payments/api", 0, "ALLOW by-service"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "workload labels: an ALLOW applies only to a service account it selects whole",
    policies: [
      policy("frontend-pods", 10, "ALLOW", [{ workloadLabels: { app: "frontend" } }], [toPayments]),
    ],
    checks: [
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW frontend-pods"],
      ["prod-eu/web/batch", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "workload labels: a DENY applies to a service account it splits",
    policies: [
      policy("no-debug", 10, "DENY", [{ workloadLabels: { role: "debug" } }], [toPayments]),
      policy("web", 20, "ALLOW", [{ namespaces: ["web"] }], [toPayments]),
    ],
    checks: [
      ["prod-eu/web/batch", "prod-us/payments/api", 0, "DENY no-debug"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "ALLOW web"],
    ],
  },
  {
    name: "ports: a rule for one port leaves the others to later rules and defaults",
    policies: [
      policy(
        "tls-only",
        10,
        "ALLOW",
        [{ namespaces: ["web"] }],
        [{ ...toPayments, ports: [8443] }],
      ),
    ],
    checks: [
      ["prod-eu/web/frontend", "prod-us/payments/api", 8443, "ALLOW tls-only"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 9090, "DENY (cross-cluster)"],
      ["prod-eu/web/frontend", "prod-us/payments/api", 0, "DENY (cross-cluster)"],
    ],
  },
  {
    name: "without a destination cluster: allowed when some backing cluster allows",
    policies: [
      policy(
        "to-us",
        10,
        "ALLOW",
        [{ namespaces: ["web"] }],
        [{ ...toPayments, clusters: ["prod-us"] }],
      ),
    ],
    checks: [
      ["dev-eu/web/frontend", "/payments/api", 0, "ALLOW to-us"],
      ["prod-eu/web/frontend", "/payments/api", 0, "ALLOW (same-cluster)"],
    ],
  },
];

describe("policy semantics", () => {
  for (const c of cases) {
    it(c.name, () => {
      const e = engineWith(c.policies, c.defaults);
      for (const [src, dst, port, expected] of c.checks) {
        assert.equal(decide(e, src, dst, port), expected, `${src} -> ${dst}:${port}`);
      }
    });
  }

  it("explain reports the principal, every backing cluster and a split service account", () => {
    const e = engineWith([
      policy("frontend-pods", 10, "ALLOW", [{ workloadLabels: { app: "frontend" } }], [toPayments]),
    ]);
    const r = e.explain(
      { clusterId: "prod-eu", namespace: "web", serviceAccount: "batch" },
      { namespace: "payments", service: "api" },
    );
    assert.equal(r.principal, "prod-eu.mesh/ns/web/sa/batch");
    assert.deepEqual(
      r.backends.map((b) => [b.clusterId, b.decision, b.rule]),
      [
        ["prod-eu", Decision.ALLOW, ""],
        ["prod-us", Decision.DENY, ""],
      ],
    );
    assert.equal(r.decision, Decision.ALLOW);
    assert.equal(r.defaultReason, "same-cluster");
    // prod-eu imports payments/api from prod-us for its frontend; batch's calls sent there fail.
    assert.deepEqual(
      r.warnings.map((w) => `${w.code}: ${w.message}`),
      [
        'split-service-account: rule "frontend-pods" selects some pods of service account prod-eu/web/batch but not all; policy is enforced per service account, so this ALLOW rule does not apply to it',
        "unreachable-backend: cluster prod-eu imports payments/api from cluster prod-us, where prod-eu.mesh/ns/web/sa/batch is denied (cross-cluster default); its calls balanced to prod-us fail",
      ],
    );
  });

  it("port-specific rules become port-specific access rules", () => {
    const e = engineWith([
      policy(
        "tls-only",
        10,
        "ALLOW",
        [{ clusters: ["dev-eu"], namespaces: ["web"] }],
        [{ ...toPayments, ports: [8443] }],
      ),
      policy(
        "no-local-debug",
        20,
        "DENY",
        [{ clusters: ["prod-us"], namespaces: ["payments"] }],
        [{ ...toPayments, ports: [9090] }],
      ),
    ]);
    const access = e.intents("prod-us").get("access/payments/api");
    assert.equal(access?.kind.case, "accessIntent");
    const v = access.kind.value;
    assert.deepEqual(
      v.allow.map((r) => [r.ports, r.principals]),
      [[[8443], ["dev-eu.mesh/ns/web/sa/frontend"]]],
    );
    assert.deepEqual(
      v.deny.map((r) => [r.ports, r.principals]),
      [[[9090], ["prod-us.mesh/ns/payments/sa/api"]]],
    );
    assert.equal(v.allowLocalTrustDomain, true);
  });

  it("a service moving between clusters keeps its callers' decisions", () => {
    const rules = [
      policy(
        "prod-web",
        10,
        "ALLOW",
        [{ clusterLabels: { env: "prod" }, namespaces: ["web"] }],
        [{ namespaces: ["payments"] }],
      ),
    ];
    const e = engineWith(rules);
    const before = decide(e, "prod-eu/web/frontend", "prod-us/payments/api");
    e.applyCatalog([
      { kind: "cluster", cluster: cluster("prod-ap", { labels: { env: "prod", region: "ap" } }) },
      { kind: "service-removed", clusterId: "prod-us", namespace: "payments", name: "api" },
      {
        kind: "service",
        clusterId: "prod-ap",
        service: service("payments", "api", { ports: [8443, 9090] }),
      },
    ]);
    assert.equal(before, "ALLOW prod-web");
    assert.equal(decide(e, "prod-eu/web/frontend", "prod-ap/payments/api"), "ALLOW prod-web");
    const held = [...e.intents("prod-eu").keys()].filter((n) =>
      n.startsWith("import/payments/api"),
    );
    assert.deepEqual(held, ["import/payments/api", "import/payments/api/prod-ap"]);
    assert.equal(e.intents("prod-us").has("export/payments/api"), false);
  });

  it("a workload moving between clusters keeps its decisions", () => {
    const rules = [
      policy(
        "prod-web",
        10,
        "ALLOW",
        [{ clusterLabels: { env: "prod" }, workloadLabels: { app: "frontend" } }],
        [toPayments],
      ),
    ];
    const e = engineWith(rules);
    e.applyCatalog([
      { kind: "cluster", cluster: cluster("prod-ap", { labels: { env: "prod", region: "ap" } }) },
      {
        kind: "identity-removed",
        clusterId: "prod-eu",
        namespace: "web",
        serviceAccount: "frontend",
      },
      { kind: "identity", clusterId: "prod-ap", identity: identity("web", "frontend") },
    ]);
    assert.equal(decide(e, "prod-ap/web/frontend", "prod-us/payments/api"), "ALLOW prod-web");
    const access = e.intents("prod-us").get("access/payments/api");
    assert.equal(access?.kind.case, "accessIntent");
    assert.deepEqual(access.kind.value.allow[0]?.principals, ["prod-ap.mesh/ns/web/sa/frontend"]);
  });

  it("explain names unknown clusters and services", () => {
    const e = engineWith([]);
    assert.throws(
      () =>
        e.explain(
          { clusterId: "nope", namespace: "web", serviceAccount: "x" },
          { namespace: "payments", service: "api" },
        ),
      { name: "PolicyError", code: "not-found", message: 'explain: unknown source cluster "nope"' },
    );
    assert.throws(
      () =>
        e.explain(
          { clusterId: "prod-eu", namespace: "web", serviceAccount: "x" },
          { clusterId: "dev-eu", namespace: "payments", service: "api" },
        ),
      {
        name: "PolicyError",
        code: "not-found",
        message: 'explain: unknown destination service payments/api in cluster "dev-eu"',
      },
    );
  });

  it("impact lists exactly the connections whose decision changes", () => {
    const e = engineWith([
      policy(
        "prod-web",
        10,
        "ALLOW",
        [{ clusters: ["prod-eu"], namespaces: ["web"] }],
        [toPayments],
      ),
    ]);
    const next = [
      policy(
        "prod-web",
        10,
        "ALLOW",
        [{ clusters: ["prod-eu"], namespaces: ["web"] }],
        [toPayments],
      ),
      policy(
        "dev-web",
        20,
        "ALLOW",
        [{ clusters: ["dev-eu"], serviceAccounts: ["frontend"] }],
        [{ ...toPayments, ports: [8443] }],
      ),
    ];
    const changes = e
      .impact(next)
      .map(
        (c) =>
          `${c.source?.clusterId}/${c.source?.namespace}/${c.source?.serviceAccount} -> ${c.destination?.clusterId}/${c.destination?.namespace}/${c.destination?.service}:${c.destination?.port} ${c.before}->${c.after} ${c.ruleBefore || "default"}->${c.ruleAfter || "default"}`,
      );
    assert.deepEqual(changes, [
      "dev-eu/web/frontend -> prod-eu/payments/api:8443 2->1 default->dev-web",
      "dev-eu/web/frontend -> prod-us/payments/api:8443 2->1 default->dev-web",
    ]);
    // A dry run changes nothing; applying it changes what impact said.
    assert.equal(
      decide(e, "dev-eu/web/frontend", "prod-us/payments/api", 8443),
      "DENY (cross-cluster)",
    );
    e.setPolicies(next);
    assert.equal(decide(e, "dev-eu/web/frontend", "prod-us/payments/api", 8443), "ALLOW dev-web");
    assert.deepEqual(e.impact(next), []);
    assert.deepEqual(
      e
        .impact([])
        .map(
          (c) =>
            `${c.source?.clusterId}/${c.source?.serviceAccount} -> ${c.destination?.clusterId}:${c.destination?.port}`,
        ),
      [
        "dev-eu/frontend -> prod-eu:8443",
        "dev-eu/frontend -> prod-us:8443",
        "prod-eu/batch -> prod-us:0",
        "prod-eu/frontend -> prod-us:0",
      ],
    );
  });

  it("says a decision is not enforced for a source whose pods run without Istio", () => {
    const e = engineWith([]);
    const outside = { ...identity("web", "legacy"), outsideMesh: true };
    e.applyCatalog([{ kind: "identity", clusterId: "prod-eu", identity: outside }]);
    const r = e.explain(
      { clusterId: "prod-eu", namespace: "web", serviceAccount: "legacy" },
      { clusterId: "prod-us", namespace: "payments", service: "api", port: 8443 },
    );
    const w = r.warnings.find((x) => x.code === "not-enforced");
    assert.match(w?.message ?? "", /prod-eu\/web\/legacy has pods without Istio/);
  });
});
