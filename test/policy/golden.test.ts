import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { type CatalogChange, createPolicyEngine, type PolicyEngine } from "@isthmus/policy";
import type { ConnectionPolicy } from "@isthmus/proto";
import { Visibility } from "@isthmus/proto";
import { stringify } from "yaml";
import { cluster, identity, policy, service } from "./fixtures.js";

const TESTDATA = fileURLToPath(new URL("./testdata/", import.meta.url));

/** Every cluster's intents (content without type names) and warnings, as YAML. */
function render(e: PolicyEngine): string {
  const out: Record<string, unknown> = {};
  for (const c of e.catalog.clusterIds()) {
    const intents: Record<string, unknown> = {};
    for (const [name, i] of [...e.intents(c)].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      intents[name] = { version: i.version, [i.kind.case!]: i.kind.value };
    }
    out[c] = { intents, warnings: e.warnings(c).map((w) => `${w.code}: ${w.message}`) };
  }
  const plain = JSON.parse(JSON.stringify(out, (k, v) => (k === "$typeName" ? undefined : v)));
  return stringify(plain, { lineWidth: 0 });
}

async function golden(name: string, actual: string): Promise<void> {
  const path = `${TESTDATA}${name}.golden.yaml`;
  if (process.env.UPDATE_GOLDEN === "1") {
    await writeFile(path, actual);
    return;
  }
  const expected = await readFile(path, "utf8").catch(() => {
    throw new Error(`missing ${path}: run with UPDATE_GOLDEN=1 and review it`);
  });
  assert.equal(
    actual,
    expected,
    `${name}: intents differ from ${path} (UPDATE_GOLDEN=1 refreshes it)`,
  );
}

function catalog(trustDomains: Record<string, string>): CatalogChange[] {
  return [
    {
      kind: "cluster",
      cluster: cluster("prod-eu", {
        labels: { env: "prod", region: "eu" },
        trustDomain: trustDomains["prod-eu"]!,
        locality: "eu-west/eu-west-1a",
      }),
    },
    {
      kind: "cluster",
      cluster: cluster("prod-us", {
        labels: { env: "prod", region: "us" },
        trustDomain: trustDomains["prod-us"]!,
        locality: "us-east/us-east-1b",
      }),
    },
    {
      kind: "cluster",
      cluster: cluster("dev-eu", {
        labels: { env: "dev", region: "eu" },
        trustDomain: trustDomains["dev-eu"]!,
        locality: "eu-west/eu-west-1c",
      }),
    },
    // payments/api: private, backed by both prod clusters.
    {
      kind: "service",
      clusterId: "prod-eu",
      service: service("payments", "api", { ports: [8443, 9090], readyEndpoints: 3 }),
    },
    {
      kind: "service",
      clusterId: "prod-us",
      service: service("payments", "api", { ports: [8443, 9090], readyEndpoints: 5 }),
    },
    // web/frontend: public, in prod-eu and dev-eu.
    {
      kind: "service",
      clusterId: "prod-eu",
      service: service("web", "frontend", { visibility: Visibility.PUBLIC }),
    },
    {
      kind: "service",
      clusterId: "dev-eu",
      service: service("web", "frontend", { visibility: Visibility.PUBLIC }),
    },
    // shop/catalog: private, prod-us only.
    {
      kind: "service",
      clusterId: "prod-us",
      service: service("shop", "catalog", { ports: [8080, 8081] }),
    },
    // legacy/billing: outside the mesh.
    {
      kind: "service",
      clusterId: "prod-us",
      service: service("legacy", "billing", { inMesh: false }),
    },
    { kind: "identity", clusterId: "prod-eu", identity: identity("web", "frontend") },
    { kind: "identity", clusterId: "dev-eu", identity: identity("web", "frontend") },
    { kind: "identity", clusterId: "prod-eu", identity: identity("payments", "api") },
    { kind: "identity", clusterId: "prod-us", identity: identity("payments", "api") },
    { kind: "identity", clusterId: "prod-us", identity: identity("shop", "catalog") },
    { kind: "identity", clusterId: "prod-us", identity: identity("web", "frontend") },
  ];
}

const rules: ConnectionPolicy[] = [
  policy(
    "dev-never-pays",
    10,
    "DENY",
    [{ clusterLabels: { env: "dev" } }],
    [{ namespaces: ["payments"] }],
  ),
  policy(
    "frontend-to-payments",
    100,
    "ALLOW",
    [{ namespaces: ["web"], workloadLabels: { app: "frontend" } }],
    [{ namespaces: ["payments"], services: ["api"], ports: [8443] }],
  ),
  policy(
    "web-reads-catalog",
    200,
    "ALLOW",
    [{ namespaces: ["web"] }],
    [{ namespaces: ["shop"], ports: [8080] }],
  ),
  policy(
    "payments-to-billing",
    300,
    "ALLOW",
    [{ namespaces: ["payments"] }],
    [{ namespaces: ["legacy"] }],
  ),
];

describe("policy compiler goldens", () => {
  it("three clusters, one trust domain each", async () => {
    const e = createPolicyEngine();
    e.setPolicies(rules);
    e.applyCatalog(
      catalog({ "prod-eu": "prod-eu.mesh", "prod-us": "prod-us.mesh", "dev-eu": "dev-eu.mesh" }),
    );
    await golden("per-cluster-trust-domains", render(e));
  });

  it("three clusters, prod clusters sharing a trust domain", async () => {
    const e = createPolicyEngine();
    e.setPolicies([
      ...rules,
      // prod-us's frontend may not call payments: its principal is prod-eu's too.
      policy(
        "us-frontend-stays-out",
        50,
        "DENY",
        [{ clusters: ["prod-us"], namespaces: ["web"] }],
        [{ namespaces: ["payments"] }],
      ),
    ]);
    e.applyCatalog(
      catalog({ "prod-eu": "cluster.local", "prod-us": "cluster.local", "dev-eu": "dev-eu.mesh" }),
    );
    await golden("shared-trust-domain", render(e));
  });
});
