import assert from "node:assert/strict";
import {
  CONTENT_HASH_ANNOTATION,
  contentHash,
  escapeIntentName,
  INTENT_LABEL,
  MANAGED_BY_LABEL,
  objectName,
  type RenderResult,
  renderIntent,
} from "@isthmus/agent";
import { stringify } from "yaml";
import {
  facts,
  importIntents,
  importPayments,
  intent,
  paymentsEndpoints,
  paymentsPorts,
  renderImportIntents,
} from "./fixtures.js";
import { expectGolden } from "./golden.js";
import { validateIstio } from "./istio-schemas.js";

function golden(name: string, result: RenderResult): void {
  for (const o of result.objects) validateIstio(o);
  const doc = { objects: result.objects, errors: result.errors };
  expectGolden(
    `render/${name}.yaml`,
    stringify(doc, { sortMapEntries: false, aliasDuplicateObjects: false }),
  );
}

const local = facts({ "payments/payments-api": paymentsEndpoints });

describe("agent rendering", () => {
  it("renders an import with local and remote backends", () => {
    const r = renderImportIntents(importPayments, local);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.objects.map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`),
      [
        "ServiceEntry payments/isthmus-import-payments-api",
        `ServiceEntry payments/${objectName("import", "payments-api", "prod-eu")}`,
        "DestinationRule payments/isthmus-import-payments-api",
        `ServiceEntry payments/${objectName("import", "payments-api", "prod-us")}`,
        `ServiceEntry payments/${objectName("import", "payments-api", "prod-asia")}`,
      ],
    );
    assert.deepEqual(
      r.objects.map((o) => o.metadata.annotations?.["isthmus.dev/intent-name"]),
      [
        ...Array(3).fill("import/payments/payments-api"),
        "import/payments/payments-api/prod-us",
        "import/payments/payments-api/prod-asia",
      ],
      "each backend's per-cluster host belongs to the backend's intent",
    );
    const perCluster = r.objects[3]!.spec as { hosts: string[]; endpoints: { address: string }[] };
    assert.deepEqual(perCluster.hosts, ["prod-us.payments-api.payments.svc.clusterset.local"]);
    assert.deepEqual(
      perCluster.endpoints.map((e) => e.address),
      ["203.0.113.20", "203.0.113.21"],
    );
    const se = r.objects[0]!.spec as { hosts: string[]; endpoints: { address: string }[] };
    assert.deepEqual(se.hosts, ["payments-api.payments.svc.clusterset.local"]);
    assert.deepEqual(
      se.endpoints.map((e) => e.address),
      ["10.0.0.11", "10.0.0.12", "gw.asia.example", "203.0.113.20", "203.0.113.21"],
    );
    const own = r.objects[1]!.spec as { hosts: string[]; endpoints: { address: string }[] };
    assert.deepEqual(own.hosts, ["prod-eu.payments-api.payments.svc.clusterset.local"]);
    assert.deepEqual(
      own.endpoints.map((e) => e.address),
      ["10.0.0.11", "10.0.0.12"],
    );
    golden("import-local-and-remote", r);
  });

  it("renders an import without local backend and without the local cluster as backend", () => {
    const i = importIntents(
      "7",
      {
        namespace: "shop",
        service: "cart",
        ports: [{ port: 6379, name: "" }],
        localBackend: false,
      },
      [
        {
          clusterId: "prod-eu",
          network: "net-eu",
          gateways: [{ address: "198.51.100.1", port: 15443 }],
        },
        {
          clusterId: "prod-us",
          network: "net-us",
          gateways: [{ address: "198.51.100.9", port: 15443 }],
        },
      ],
    );
    const r = renderImportIntents(i, local);
    assert.equal(
      r.objects.length,
      3,
      "the local cluster listed as backend is not imported from itself",
    );
    golden("import-remote-only", r);
  });

  it("renders nothing for a backend that is this cluster and refuses one without backend", () => {
    const [, own] = importIntents("1", { namespace: "shop", service: "cart", ports: [] }, [
      { clusterId: "prod-eu", gateways: [{ address: "198.51.100.1", port: 15443 }] },
    ]);
    assert.deepEqual(renderIntent(own!, local), {
      intentName: "import/shop/cart/prod-eu",
      intentVersion: "1-prod-eu",
      objects: [],
      errors: [],
    });
    const empty = intent({
      name: "import/shop/cart/prod-us",
      version: "1",
      kind: { case: "importBackendIntent", value: { namespace: "shop", service: "cart" } },
    });
    assert.match(renderIntent(empty, local).errors[0]!.message, /has no backend/);
  });

  it("renders an export for the clusterset and the per-cluster host", () => {
    const i = intent({
      name: "export/payments/payments-api",
      version: "e1",
      kind: {
        case: "exportIntent",
        value: {
          namespace: "payments",
          service: "payments-api",
          ports: paymentsPorts,
          importingClusters: ["prod-us"],
        },
      },
    });
    const r = renderIntent(i, local);
    assert.deepEqual((r.objects[0]!.spec as { hosts: string[] }).hosts, [
      "payments-api.payments.svc.clusterset.local",
      "prod-eu.payments-api.payments.svc.clusterset.local",
    ]);
    golden("export", r);
  });

  it("renders an export of a service with no ready pods as an entry without endpoints", () => {
    const i = intent({
      name: "export/shop/cart",
      version: "1",
      kind: {
        case: "exportIntent",
        value: { namespace: "shop", service: "cart", ports: [{ name: "tcp", port: 6379 }] },
      },
    });
    const r = renderIntent(i, local);
    assert.deepEqual((r.objects[0]!.spec as { endpoints: unknown[] }).endpoints, []);
    for (const o of r.objects) validateIstio(o);
  });

  it("renders access as ALLOW and DENY authorization policies", () => {
    const i = intent({
      name: "access/payments/payments-api",
      version: "a1",
      kind: {
        case: "accessIntent",
        value: {
          namespace: "payments",
          service: "payments-api",
          selector: { app: "payments-api", tier: "backend" },
          allow: [
            {
              principals: [
                "prod-us.example/ns/web/sa/frontend",
                "prod-us.example/ns/web/sa/checkout",
              ],
            },
            { principals: ["prod-asia.example/ns/ops/sa/prober"], ports: [9100, 80] },
          ],
          deny: [{ principals: ["shared.example/ns/web/sa/frontend"] }],
          allowLocalTrustDomain: true,
        },
      },
    });
    const r = renderIntent(i, local);
    assert.deepEqual(r.errors, []);
    const allow = r.objects[0]!.spec as { action: string; rules: unknown[] };
    assert.equal(allow.action, "ALLOW");
    assert.deepEqual(allow.rules.at(-1), {
      from: [{ source: { principals: ["prod-eu.example/*"] } }],
    });
    assert.equal((r.objects[1]!.spec as { action: string }).action, "DENY");
    golden("access", r);
  });

  it("renders an ALLOW policy without rules (deny everyone) when nobody is allowed", () => {
    const i = intent({
      name: "access/a/b",
      version: "1",
      kind: {
        case: "accessIntent",
        value: { namespace: "a", service: "b", selector: { app: "b" } },
      },
    });
    const r = renderIntent(i, local);
    assert.equal(r.objects.length, 1);
    assert.deepEqual((r.objects[0]!.spec as { rules: unknown[] }).rules, []);
    validateIstio(r.objects[0]!);
  });

  it("renders the default DENY of other trust domains for a service nobody remote may call", () => {
    const unnamed = (service: string) =>
      intent({
        name: `access/payments/${service}`,
        version: "1",
        kind: {
          case: "accessIntent",
          value: {
            namespace: "payments",
            service,
            selector: { app: service },
            allowLocalTrustDomain: true,
          },
        },
      });
    const r = renderIntent(unnamed("payments-api"), local);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.objects.map((o) => `${o.kind} ${o.metadata.name}`),
      ["AuthorizationPolicy isthmus-deny-payments-api"],
      "no ALLOW policy: local callers, plaintext ones included, keep access",
    );
    const spec = r.objects[0]!.spec as { action: string; rules: unknown[] };
    assert.equal(spec.action, "DENY");
    assert.deepEqual(spec.rules, [
      {
        from: [{ source: { principals: ["*"], notPrincipals: ["prod-eu.example/*"] } }],
        to: [{ operation: { ports: ["8080", "9091", "9100"] } }],
      },
    ]);
    validateIstio(r.objects[0]!);
    // Pod ports not known (a named target port without EndpointSlice): every port is denied.
    const guessed = facts({
      "payments/payments-api": { ...paymentsEndpoints, podPortsKnown: false },
    });
    const g = renderIntent(unnamed("payments-api"), guessed).objects[0]!.spec as {
      rules: Record<string, unknown>[];
    };
    assert.equal(g.rules[0]!.to, undefined);
  });

  it("refuses principals with wildcards or characters no identity has", () => {
    for (const principal of [
      "*",
      "*/ns/web/sa/*",
      "prod.local/ns/web/sa/*",
      "prod.local/ns/*/sa/frontend",
      "prod.local/ns/web/sa/../../x\u0000",
      "prod.local/ns/web/sa/front\nend",
      "prod.local/ns/Web/sa/frontend",
    ]) {
      const i = intent({
        name: "access/a/b",
        version: "1",
        kind: {
          case: "accessIntent",
          value: {
            namespace: "a",
            service: "b",
            selector: { app: "b" },
            allow: [{ principals: ["prod.local/ns/web/sa/frontend", principal] }],
            allowLocalTrustDomain: true,
          },
        },
      });
      const r = renderIntent(i, local);
      assert.match(r.errors[0]!.message, /allow\[0\]: principal .* refusing to write it/);
      // Fail closed: no ALLOW policy, the default DENY of other trust domains instead.
      assert.deepEqual(
        r.objects.map((o) => `${o.metadata.name} ${(o.spec as { action: string }).action}`),
        ["isthmus-deny-b DENY"],
        principal,
      );
    }
  });

  it("refuses policies that would match every workload or every caller", () => {
    const i = intent({
      name: "access/a/b",
      version: "1",
      kind: {
        case: "accessIntent",
        value: {
          namespace: "a",
          service: "b",
          selector: {},
          allow: [{ principals: ["x/ns/a/sa/b"] }],
        },
      },
    });
    const r = renderIntent(i, local);
    assert.equal(r.objects.length, 0);
    assert.equal(r.errors[0]?.object, "AuthorizationPolicy a/isthmus-allow-b");
    assert.match(r.errors[0]!.message, /empty selector/);

    const j = intent({
      name: "access/a/b",
      version: "1",
      kind: {
        case: "accessIntent",
        value: {
          namespace: "a",
          service: "b",
          selector: { app: "b" },
          allow: [{ principals: ["x/ns/a/sa/b"] }],
          deny: [{ principals: [] }],
        },
      },
    });
    const s = renderIntent(j, local);
    assert.equal(s.objects.length, 1, "the valid ALLOW policy is still rendered");
    assert.equal(s.errors[0]?.object, "AuthorizationPolicy a/isthmus-deny-b");
    assert.match(s.errors[0]!.message, /deny\[0\] has no principals/);
  });

  it("reports intents without kind or with invalid names", () => {
    assert.match(
      renderIntent(intent({ name: "x", version: "1" }), local).errors[0]!.message,
      /no kind/,
    );
    const bad = intent({
      name: "import/Bad/x",
      version: "1",
      kind: { case: "importIntent", value: { namespace: "Bad_NS", service: "x" } },
    });
    assert.match(
      renderIntent(bad, local).errors[0]!.message,
      /namespace "Bad_NS" is not a DNS-1123 label/,
    );
  });

  it("labels, annotates and hashes every object deterministically", () => {
    const a = renderImportIntents(importPayments, local);
    const b = renderImportIntents(
      importPayments,
      facts({
        "payments/payments-api": { ...paymentsEndpoints, addresses: ["10.0.0.11", "10.0.0.12"] },
      }),
    );
    assert.deepEqual(a, b, "endpoint order in the cache does not matter");
    for (const o of a.objects.slice(0, 3)) {
      assert.equal(o.metadata.labels?.[MANAGED_BY_LABEL], "isthmus");
      assert.equal(o.metadata.labels?.[INTENT_LABEL], "import.payments.payments-api");
      assert.equal(o.metadata.annotations?.["isthmus.dev/intent-version"], "v1-abc");
      assert.equal(o.metadata.annotations?.[CONTENT_HASH_ANNOTATION], contentHash(o));
    }
    const churned = renderImportIntents(
      importPayments,
      facts({ "payments/payments-api": { ...paymentsEndpoints, addresses: ["10.0.0.13"] } }),
    );
    assert.notEqual(
      churned.objects[0]!.metadata.annotations?.[CONTENT_HASH_ANNOTATION],
      a.objects[0]!.metadata.annotations?.[CONTENT_HASH_ANNOTATION],
    );
    assert.equal(
      churned.objects[2]!.metadata.annotations?.[CONTENT_HASH_ANNOTATION],
      a.objects[2]!.metadata.annotations?.[CONTENT_HASH_ANNOTATION],
      "the DestinationRule does not depend on endpoints",
    );
  });

  it("keeps names and label values within Kubernetes limits", () => {
    const long = "s".repeat(63);
    const name = objectName("import", long);
    assert.ok(name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name), name);
    assert.notEqual(objectName("import", "a", "b-c"), objectName("import", "a-b", "c"));
    const label = escapeIntentName(`import/${"n".repeat(63)}/${long}`);
    assert.ok(
      label.length <= 63 && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(label),
      label,
    );
    const i = importIntents(
      "1",
      { namespace: "n".repeat(63), service: long, ports: [{ name: "http", port: 80 }] },
      [{ clusterId: "c".repeat(63), gateways: [{ address: "192.0.2.1", port: 15443 }] }],
    );
    const r = renderImportIntents(i, local);
    assert.equal(r.objects.length, 3);
    for (const o of r.objects) {
      validateIstio(o);
      assert.ok(o.metadata.name.length <= 63, o.metadata.name);
    }
  });
});
