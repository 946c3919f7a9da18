import assert from "node:assert/strict";
import { authorize, clusterOf, expandPrincipals, validateTrustDomain } from "@isthmus/mesh-model";
import { istio, meshOf } from "./scene.js";

describe("mesh model: trust domains", () => {
  it("Trust Domain Migration task: a principal of the old trust domain also matches the new one (aliases)", () => {
    assert.deepEqual(expandPrincipals(["old-td/ns/default/sa/curl"], ["new-td", "old-td"]), [
      "new-td/ns/default/sa/curl",
      "old-td/ns/default/sa/curl",
    ]);
    // cluster.local stands for the local trust domain and its aliases.
    assert.deepEqual(expandPrincipals(["cluster.local/ns/a/sa/b"], ["new-td"]), [
      "new-td/ns/a/sa/b",
    ]);
    // Foreign trust domains, prefixes and `*` trust domains stay as written.
    assert.deepEqual(
      expandPrincipals(["other/ns/a/sa/b", "new-td/*", "*/ns/a/sa/b"], ["new-td", "old-td"]),
      ["other/ns/a/sa/b", "new-td/*", "*/ns/a/sa/b"],
    );
  });

  it("Trust Domain Migration task: with the alias, a policy naming the old principal admits the workload of the new trust domain", () => {
    const policy = istio("AuthorizationPolicy", "foo", "p", {
      rules: [{ from: [{ source: { principals: ["old-td/ns/default/sa/curl"] } }] }],
    });
    const mesh = (aliases: string[]) =>
      meshOf({
        id: "c1",
        trustDomain: "new-td",
        apps: [{ name: "httpbin", namespace: "foo" }],
        objects: [
          policy,
          ...(aliases.length === 0
            ? []
            : [
                {
                  apiVersion: "v1",
                  kind: "ConfigMap",
                  metadata: { name: "istio", namespace: "istio-system" },
                  data: {
                    mesh: `trustDomain: new-td\ntrustDomainAliases: [${aliases.join(", ")}]\n`,
                  },
                },
              ]),
        ],
      });
    const target = { cluster: "c1", namespace: "foo", service: "httpbin", port: 8080 };
    const caller = { cluster: "c1", namespace: "default", serviceAccount: "curl" };
    assert.equal(authorize(mesh([]), caller, target).verdict, "DENY");
    assert.equal(authorize(mesh(["old-td"]), caller, target).verdict, "ALLOW");
  });

  it("istio/istio#26748 and #43536: a peer's trust domain must be local, an alias, or in caCertificates[].trustDomains", () => {
    const mesh = meshOf(
      { id: "a", trustDomain: "a.local", trustDomains: ["a.local", "b.local"] },
      { id: "b", trustDomain: "b.local" },
      {
        id: "c",
        trustDomain: "c.local",
        istiodEnv: [{ name: "PILOT_SKIP_VALIDATE_TRUST_DOMAIN", value: "true" }],
      },
    );
    assert.equal(validateTrustDomain(clusterOf(mesh, "a"), "a.local").accepted, true);
    assert.equal(validateTrustDomain(clusterOf(mesh, "a"), "b.local").accepted, true);
    assert.equal(validateTrustDomain(clusterOf(mesh, "a"), "x.local").accepted, false);
    const refused = validateTrustDomain(clusterOf(mesh, "b"), "a.local");
    assert.equal(refused.accepted, false);
    assert.match(
      refused.reason,
      /peer trust domain a.local different from local trust domain b.local/,
    );
    assert.equal(validateTrustDomain(clusterOf(mesh, "c"), "x.local").accepted, true);
  });
});
