import assert from "node:assert/strict";
import type { KubeObject } from "@isthmus/kubesim";
import { authorize, type Caller } from "@isthmus/mesh-model";
import { istio, meshOf } from "./scene.js";

// One cluster with Istio's default trust domain, as in the docs' examples: httpbin (v1) in foo
// and in bar, callers curl (namespace default) and dev/tester.
function verdict(
  policies: KubeObject[],
  caller: Partial<Caller> = {},
  where = { namespace: "foo", port: 8080 },
) {
  const mesh = meshOf({
    id: "c1",
    trustDomain: "cluster.local",
    apps: [
      { name: "httpbin", namespace: "foo" },
      { name: "httpbin", namespace: "bar" },
      { name: "curl", namespace: "default" },
    ],
    objects: policies,
  });
  const r = authorize(
    mesh,
    { cluster: "c1", namespace: "default", serviceAccount: "curl", ...caller },
    { cluster: "c1", namespace: where.namespace, service: "httpbin", port: where.port },
  );
  return `${r.verdict} ${r.by}`;
}

const ap = (
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
) => istio("AuthorizationPolicy", ns, name, spec, annotations);

describe("mesh model: AuthorizationPolicy", () => {
  it("AuthorizationPolicy reference: no policy applies, the request is allowed", () => {
    assert.equal(verdict([]), "ALLOW default");
  });

  it("AuthorizationPolicy reference: allow-nothing example (ALLOW without rules matches nothing)", () => {
    const allowNothing = ap("foo", "allow-nothing", {});
    assert.equal(verdict([allowNothing]), "DENY default");
    assert.match(verdict([allowNothing], {}, { namespace: "bar", port: 8080 }), /^ALLOW/);
    // `rules: []` is the same as no rules.
    assert.match(verdict([ap("foo", "x", { action: "ALLOW", rules: [] })]), /^DENY /);
  });

  it("AuthorizationPolicy reference: deny-all example (DENY with rules: [{}])", () => {
    assert.match(verdict([ap("foo", "deny-all", { action: "DENY", rules: [{}] })]), /^DENY /);
    // A DENY policy without rules never matches.
    assert.match(verdict([ap("foo", "deny-none", { action: "DENY" })]), /^ALLOW/);
  });

  it("AuthorizationPolicy reference: allow-all example, and DENY is evaluated before ALLOW", () => {
    const allowAll = ap("foo", "allow-all", { action: "ALLOW", rules: [{}] });
    assert.match(verdict([allowAll]), /^ALLOW /);
    assert.match(
      verdict([allowAll, ap("foo", "deny-all", { action: "DENY", rules: [{}] })]),
      /^DENY /,
    );
  });

  it("AuthorizationPolicy reference: sources are ORed, fields inside one source ANDed", () => {
    const policy = ap("foo", "httpbin", {
      selector: { matchLabels: { app: "httpbin", version: "v1" } },
      action: "ALLOW",
      rules: [
        {
          from: [
            { source: { principals: ["cluster.local/ns/default/sa/curl"] } },
            { source: { namespaces: ["dev"] } },
          ],
        },
      ],
    });
    assert.match(verdict([policy]), /^ALLOW/);
    assert.match(verdict([policy], { namespace: "dev", serviceAccount: "tester" }), /^ALLOW/);
    assert.match(verdict([policy], { namespace: "prod", serviceAccount: "tester" }), /^DENY/);
    const both = ap("foo", "both", {
      rules: [
        {
          from: [
            { source: { principals: ["cluster.local/ns/default/sa/curl"], namespaces: ["dev"] } },
          ],
        },
      ],
    });
    assert.match(verdict([both]), /^DENY/);
  });

  it("AuthorizationPolicy reference: from, to and when are ANDed within a rule; rules are ORed", () => {
    const policy = ap("foo", "p", {
      rules: [
        {
          from: [{ source: { namespaces: ["default"] } }],
          to: [{ operation: { ports: ["9090"] } }],
        },
        {
          from: [{ source: { namespaces: ["dev"] } }],
          when: [{ key: "destination.port", values: ["8080"] }],
        },
      ],
    });
    assert.match(verdict([policy]), /^DENY/);
    assert.match(verdict([policy], { namespace: "dev" }), /^ALLOW/);
  });

  it("AuthorizationPolicy reference: selector applies a policy to the workloads it matches only", () => {
    const policy = ap("bar", "httpbin-v2", {
      selector: { matchLabels: { app: "httpbin", version: "v2" } },
    });
    assert.match(verdict([policy], {}, { namespace: "bar", port: 8080 }), /^ALLOW/);
    const v1 = ap("bar", "httpbin-v1", {
      selector: { matchLabels: { app: "httpbin", version: "v1" } },
    });
    assert.match(verdict([v1], {}, { namespace: "bar", port: 8080 }), /^DENY/);
  });

  it("AuthorizationPolicy reference: a root namespace policy applies to every namespace, with its selector in all of them", () => {
    const meshWide = ap("istio-system", "mesh-deny", { action: "DENY", rules: [{}] });
    assert.match(verdict([meshWide]), /^DENY/);
    assert.match(verdict([meshWide], {}, { namespace: "bar", port: 8080 }), /^DENY/);
    const v1Only = ap("istio-system", "v1", {
      selector: { matchLabels: { version: "v1" } },
      action: "DENY",
      rules: [{}],
    });
    assert.match(verdict([v1Only], {}, { namespace: "bar", port: 8080 }), /^DENY/);
    // A policy of another (non-root) namespace does not apply.
    assert.match(verdict([ap("bar", "deny", { action: "DENY", rules: [{}] })]), /^ALLOW/);
  });

  it("AuthorizationPolicy reference: principals, namespaces and ports with exact, prefix, suffix and * values", () => {
    const allow = (source: Record<string, unknown>) =>
      ap("foo", "p", { rules: [{ from: [{ source }] }] });
    assert.match(verdict([allow({ principals: ["cluster.local/ns/default/*"] })]), /^ALLOW/);
    assert.match(verdict([allow({ principals: ["*/sa/curl"] })]), /^ALLOW/);
    assert.match(verdict([allow({ principals: ["*"] })]), /^ALLOW/);
    assert.match(verdict([allow({ principals: ["cluster.local/ns/default/sa/cur"] })]), /^DENY/);
    assert.match(verdict([allow({ namespaces: ["def*"] })]), /^ALLOW/);
    assert.match(verdict([allow({ namespaces: ["*ult"] })]), /^ALLOW/);
    assert.match(verdict([allow({ notNamespaces: ["default"] })]), /^DENY/);
    assert.match(verdict([allow({ notPrincipals: ["*/sa/curl"] })]), /^DENY/);
    const ports = (operation: Record<string, unknown>) =>
      ap("foo", "p", { rules: [{ to: [{ operation }] }] });
    assert.match(verdict([ports({ ports: ["8080"] })]), /^ALLOW/);
    assert.match(verdict([ports({ ports: ["9090"] })]), /^DENY/);
    assert.match(verdict([ports({ notPorts: ["8080"] })]), /^DENY/);
  });

  it("Authorization Policy concept, dependency on mutual TLS: principal rules never match plaintext, notPrincipals do", () => {
    const requirePrincipal = ap("foo", "p", {
      rules: [{ from: [{ source: { principals: ["*"] } }] }],
    });
    assert.match(verdict([requirePrincipal], { plaintext: true }), /^DENY/);
    const denyPlaintext = ap("foo", "d", {
      action: "DENY",
      rules: [{ from: [{ source: { notPrincipals: ["*"] } }] }],
    });
    assert.match(verdict([denyPlaintext], { plaintext: true }), /^DENY/);
    assert.match(verdict([denyPlaintext]), /^ALLOW/);
    const byNamespace = ap("foo", "n", {
      rules: [{ from: [{ source: { namespaces: ["default"] } }] }],
    });
    assert.match(verdict([byNamespace], { plaintext: true }), /^DENY/);
  });

  it("AuthorizationPolicy reference: the istio.io/dry-run annotation makes a policy not enforced", () => {
    const dryRun = ap(
      "foo",
      "deny-all",
      { action: "DENY", rules: [{}] },
      { "istio.io/dry-run": "true" },
    );
    assert.match(verdict([dryRun]), /^ALLOW/);
  });

  it("AuthorizationPolicy reference: AUDIT has no effect on the verdict; CUSTOM is reported as not modelled", () => {
    assert.match(verdict([ap("foo", "audit", { action: "AUDIT", rules: [{}] })]), /^ALLOW/);
    assert.match(
      verdict([ap("foo", "ext", { action: "CUSTOM", provider: { name: "opa" }, rules: [{}] })]),
      /^UNKNOWN/,
    );
  });

  it("AuthorizationPolicy reference: targetRefs bind a policy to gateways and waypoints, not to sidecars", () => {
    const p = ap("foo", "waypoint", {
      targetRefs: [{ kind: "Service", group: "", name: "httpbin" }],
      action: "DENY",
      rules: [{}],
    });
    assert.match(verdict([p]), /^ALLOW/);
  });

  it("AuthorizationPolicy reference: conditions and HTTP fields the model does not evaluate are UNKNOWN, not guessed", () => {
    const jwt = ap("foo", "jwt", {
      rules: [
        { when: [{ key: "request.auth.claims[iss]", values: ["https://accounts.google.com"] }] },
      ],
    });
    assert.match(verdict([jwt]), /^UNKNOWN/);
    const post = ap("foo", "post", {
      action: "DENY",
      rules: [
        {
          from: [{ source: { namespaces: ["default"] } }],
          to: [{ operation: { methods: ["POST"] } }],
        },
      ],
    });
    assert.match(verdict([post]), /^UNKNOWN/);
    // A rule that cannot match for a known reason stays decided.
    const other = ap("foo", "post2", {
      action: "DENY",
      rules: [
        { from: [{ source: { namespaces: ["dev"] } }], to: [{ operation: { methods: ["POST"] } }] },
      ],
    });
    assert.match(verdict([other]), /^ALLOW/);
    assert.match(
      verdict([
        ap("foo", "ns", { rules: [{ when: [{ key: "source.namespace", values: ["default"] }] }] }),
      ]),
      /^ALLOW/,
    );
  });
});
