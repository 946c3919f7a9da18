import assert from "node:assert/strict";
import type { KubeObject } from "@isthmus/kubesim";
import {
  attack,
  authorize,
  clusterOf,
  connect,
  peerAuthentication,
  route,
} from "@isthmus/mesh-model";
import { istio, meshOf, type TestCluster } from "./scene.js";

const HOST = "b.payments-api.payments.svc.clusterset.local";
const frontend = { cluster: "a", namespace: "web", serviceAccount: "frontend" };
const payments = { cluster: "b", namespace: "payments", service: "payments-api", port: 8443 };

/** What the agents render for "a may call payments-api in b": an import in a, an export in b. */
function importInA(extra: Partial<Record<string, unknown>> = {}): KubeObject[] {
  return [
    istio("ServiceEntry", "payments", "import", {
      hosts: [HOST],
      location: "MESH_INTERNAL",
      resolution: "STATIC",
      ports: [{ number: 8443, name: "https", protocol: "HTTPS" }],
      endpoints: [
        {
          address: "192.0.2.2",
          ports: { https: 15443 },
          network: "network-b",
          labels: { "security.istio.io/tlsMode": "istio" },
        },
      ],
      ...extra,
    }),
    istio("DestinationRule", "payments", "import", {
      host: HOST,
      trafficPolicy: { tls: { mode: "ISTIO_MUTUAL" } },
    }),
  ];
}

const exportInB = istio("ServiceEntry", "payments", "export", {
  hosts: ["payments-api.payments.svc.clusterset.local", HOST],
  location: "MESH_INTERNAL",
  resolution: "STATIC",
  ports: [{ number: 8443, name: "https", protocol: "HTTPS" }],
  endpoints: [10, 11].map((i) => ({
    address: `10.2.0.${i}`,
    ports: { https: 8443 },
    labels: { "security.istio.io/tlsMode": "istio" },
  })),
});

const allowFrontend = istio("AuthorizationPolicy", "payments", "allow", {
  selector: { matchLabels: { app: "payments-api" } },
  action: "ALLOW",
  rules: [{ from: [{ source: { principals: ["a.local/ns/web/sa/frontend"] } }] }],
});

function mesh(a: Partial<TestCluster> = {}, b: Partial<TestCluster> = {}) {
  return meshOf(
    {
      id: "a",
      trustDomains: ["a.local", "b.local"],
      apps: [{ name: "frontend", namespace: "web" }],
      objects: importInA(),
      ...a,
    },
    {
      id: "b",
      trustDomains: ["a.local", "b.local"],
      apps: [{ name: "payments-api", namespace: "payments", port: 8443, portName: "https" }],
      objects: [exportInB, allowFrontend],
      ...b,
    },
  );
}

describe("mesh model: routing and connections", () => {
  it("multi-network docs: an import ServiceEntry reaches the remote pods through the east-west gateway (AUTO_PASSTHROUGH)", () => {
    const r = connect(mesh(), frontend, payments);
    assert.equal(r.outcome, "ALLOW", r.reason);
    assert.ok(
      r.objects.includes("b: Gateway istio-system/cross-network-gateway"),
      r.objects.join("\n"),
    );
    const pods = route(mesh(), frontend, HOST, 8443).arrivals.map(
      (x) => `${x.cluster.id}/${x.pod.name}:${x.port}`,
    );
    assert.deepEqual(pods.sort(), ["b/payments-api-0:8443", "b/payments-api-1:8443"]);
  });

  it("ServiceEntry reference: without the import the caller's sidecar does not know the host", () => {
    const r = connect(mesh({ objects: [] }), frontend, payments);
    assert.equal(r.outcome, "UNROUTABLE");
  });

  it("ServiceEntry reference: exportTo '.' hides the entry from other namespaces", () => {
    const r = connect(mesh({ objects: importInA({ exportTo: ["."] }) }), frontend, payments);
    assert.equal(r.outcome, "UNROUTABLE");
  });

  it("Sidecar reference: egress hosts limit what the caller's sidecar knows", () => {
    const only = (hosts: string[]) => istio("Sidecar", "web", "default", { egress: [{ hosts }] });
    assert.equal(
      connect(mesh({ objects: [...importInA(), only(["./*"])] }), frontend, payments).outcome,
      "UNROUTABLE",
    );
    assert.equal(
      connect(mesh({ objects: [...importInA(), only(["payments/*"])] }), frontend, payments)
        .outcome,
      "ALLOW",
    );
  });

  it("Gateway AUTO_PASSTHROUGH: the SNI host must be known in the destination cluster", () => {
    const r = connect(mesh({}, { objects: [allowFrontend] }), frontend, payments);
    assert.equal(r.outcome, "UNROUTABLE");
    assert.match(r.reason, /not known in cluster b/);
  });

  it("DestinationRule reference: DISABLE sends plaintext, which the SNI-routing gateway cannot carry", () => {
    const plain = importInA();
    plain[1] = istio("DestinationRule", "payments", "import", {
      host: HOST,
      trafficPolicy: { tls: { mode: "DISABLE" } },
    });
    assert.equal(connect(mesh({ objects: plain }), frontend, payments).outcome, "UNROUTABLE");
  });

  it("ServiceEntry reference: subjectAltNames that do not name the server fail the client's TLS check", () => {
    const sans = importInA({ subjectAltNames: ["spiffe://a.local/ns/payments/sa/payments-api"] });
    const r = connect(mesh({ objects: sans }), frontend, payments);
    assert.equal(r.outcome, "TLS_FAILED");
    assert.match(r.reason, /spiffe:\/\/b.local\/ns\/payments\/sa\/payments-api/);
  });

  it("istio/istio#26748: without the caller's trust domain in caCertificates the destination refuses the peer", () => {
    const r = connect(mesh({}, { trustDomains: ["b.local"] }), frontend, payments);
    assert.equal(r.outcome, "TLS_FAILED");
    assert.equal(r.stage, "trust-domain");
    const skip = mesh(
      {},
      {
        trustDomains: [],
        istiodEnv: [{ name: "PILOT_SKIP_VALIDATE_TRUST_DOMAIN", value: "true" }],
      },
    );
    assert.equal(connect(skip, frontend, payments).outcome, "ALLOW");
  });

  it("AuthorizationPolicy at the destination: another caller is denied, and the attacker view needs no import", () => {
    const other = { cluster: "a", namespace: "web", serviceAccount: "batch" };
    assert.equal(connect(mesh(), other, payments).outcome, "DENY");
    // No AuthorizationPolicy in b: a caller without any import still gets in through the gateway.
    const open = mesh({ objects: [] }, { objects: [exportInB] });
    assert.equal(connect(open, other, payments).outcome, "UNROUTABLE");
    assert.equal(attack(open, other, payments).outcome, "ALLOW");
    assert.equal(attack(mesh(), other, payments).outcome, "DENY");
  });

  it("ServiceEntry reference: an import without endpoints (no gateway address) routes nowhere", () => {
    const r = connect(mesh({ objects: importInA({ endpoints: [] }) }), frontend, payments);
    assert.equal(r.outcome, "UNROUTABLE");
    assert.match(r.reason, /ServiceEntry payments\/import has no endpoints/);
  });

  it("Authorization Policy concept: a caller without sidecar sends plaintext, which principal rules refuse", () => {
    const m = meshOf({
      id: "a",
      apps: [
        { name: "api", namespace: "web", serviceAccount: "api" },
        { name: "legacy", namespace: "old" },
      ],
      objects: [
        {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "old", labels: {} },
        },
        istio("AuthorizationPolicy", "web", "api", {
          selector: { matchLabels: { app: "api" } },
          rules: [{ from: [{ source: { principals: ["a.local/*"] } }] }],
        }),
      ],
    });
    const legacy = { cluster: "a", namespace: "old", serviceAccount: "legacy" };
    const api = { cluster: "a", namespace: "web", service: "api", port: 8080 };
    const r = connect(m, legacy, api);
    assert.equal(r.outcome, "DENY");
    assert.match(r.reason, /plaintext peer/);
    assert.equal(
      authorize(m, legacy, { cluster: "a", namespace: "web", pod: "api-0", port: 8080 }).verdict,
      "ALLOW",
    );
  });

  it("same cluster: a caller reaches its own cluster's Service by its svc.cluster.local name", () => {
    const m = meshOf({
      id: "a",
      apps: [
        { name: "frontend", namespace: "web" },
        { name: "api", namespace: "web", serviceAccount: "api" },
      ],
    });
    assert.equal(
      connect(m, frontend, { cluster: "a", namespace: "web", service: "api", port: 8080 }).outcome,
      "ALLOW",
    );
  });
});

describe("mesh model: PeerAuthentication", () => {
  const pa = (
    ns: string,
    name: string,
    spec: Record<string, unknown>,
    created = "2026-01-01T00:00:00Z",
  ) => {
    const o = istio("PeerAuthentication", ns, name, spec);
    o.metadata!.creationTimestamp = created;
    return o;
  };
  const modeOf = (objects: KubeObject[], port = 8080) => {
    const m = meshOf({ id: "a", apps: [{ name: "api", namespace: "foo" }], objects });
    const c = clusterOf(m, "a");
    const pod = c.pods.find((p) => p.name === "api-0")!;
    return peerAuthentication(c, pod, port).mode;
  };

  it("PeerAuthentication reference: default PERMISSIVE; mesh-wide STRICT in the root namespace", () => {
    assert.equal(modeOf([]), "PERMISSIVE");
    assert.equal(modeOf([pa("istio-system", "default", { mtls: { mode: "STRICT" } })]), "STRICT");
  });

  it("PeerAuthentication reference: namespace policy overrides the mesh, UNSET inherits", () => {
    const meshStrict = pa("istio-system", "default", { mtls: { mode: "STRICT" } });
    assert.equal(
      modeOf([meshStrict, pa("foo", "default", { mtls: { mode: "PERMISSIVE" } })]),
      "PERMISSIVE",
    );
    assert.equal(modeOf([meshStrict, pa("foo", "default", { mtls: { mode: "UNSET" } })]), "STRICT");
  });

  it("PeerAuthentication reference: workload policy with portLevelMtls (finance example: DISABLE on one port)", () => {
    const workload = pa("foo", "api", {
      selector: { matchLabels: { app: "api" } },
      mtls: { mode: "STRICT" },
      portLevelMtls: { 8080: { mode: "DISABLE" } },
    });
    assert.equal(modeOf([workload]), "DISABLE");
    assert.equal(modeOf([workload], 9090), "STRICT");
    // portLevelMtls of a policy without selector is not honoured.
    assert.equal(
      modeOf([
        pa("foo", "ns", { mtls: { mode: "STRICT" }, portLevelMtls: { 8080: { mode: "DISABLE" } } }),
      ]),
      "STRICT",
    );
  });

  it("PeerAuthentication reference: of two namespace policies the oldest wins", () => {
    const older = pa("foo", "b", { mtls: { mode: "STRICT" } }, "2026-01-01T00:00:00Z");
    const newer = pa("foo", "a", { mtls: { mode: "DISABLE" } }, "2026-02-01T00:00:00Z");
    assert.equal(modeOf([newer, older]), "STRICT");
  });
});
