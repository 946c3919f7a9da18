// Label selectors of `policy apply --prune -l`, and the warnings apply gives for policy
// selectors that match nothing the hub knows.
import assert from "node:assert/strict";
import { parseLabelSelector, selectorWarnings } from "@isthmus/policy";
import { policy } from "./fixtures.js";

describe("label selectors", () => {
  const labels = { team: "pay", env: "prod", "app.kubernetes.io/managed-by": "gitops" };
  const cases: [string, boolean][] = [
    ["team=pay", true],
    ["team==pay", true],
    ["team!=pay", false],
    ["team=web", false],
    ["team in (web, pay)", true],
    ["team notin (web,pay)", false],
    ["tier notin (gold)", true],
    ["team", true],
    ["!team", false],
    ["!tier", true],
    ["app.kubernetes.io/managed-by=gitops,env in (prod)", true],
    ["app.kubernetes.io/managed-by=gitops, env=dev", false],
    ["team=", false],
  ];
  for (const [text, expected] of cases) {
    it(`${text} ${expected ? "matches" : "does not match"}`, () => {
      assert.equal(parseLabelSelector(text).matches(labels), expected);
    });
  }

  it("refuses what it cannot read, naming the term", () => {
    for (const [text, why] of [
      ["", "empty"],
      ["a=b,,c", "empty term"],
      ["a in b", 'cannot read "a in b"'],
      ["a=b c", 'cannot read "a=b c"'],
      ["Bad Key=x", 'cannot read "Bad Key=x"'],
      ["a=-x", 'invalid label value "-x"'],
      ["x/y/z", 'invalid label key "x/y/z"'],
    ]) {
      assert.throws(() => parseLabelSelector(text!), {
        name: "PolicyError",
        message: new RegExp(
          `^invalid label selector ${JSON.stringify(text)}: ${why!.replace(/[()]/g, "\\$&")}( \\(expected k=v, .*\\))?$`,
        ),
      });
    }
  });
});

describe("selector warnings", () => {
  it("names every selector value that matches nothing, with its document path", () => {
    const p = policy(
      "p",
      1,
      "ALLOW",
      [
        { clusters: ["prod-eu", "prod-euu", "dev-*"], clusterLabels: { env: "prod", zone: "b" } },
        { serviceAccounts: ["frontend", "ghost"], clusterLabels: { env: "prod", region: "us" } },
      ],
      [{ namespaces: ["pay*", "paymens"], services: ["api"] }],
    );
    const warnings = selectorWarnings([p], {
      clusters: [
        { id: "prod-eu", labels: { env: "prod", region: "eu" } },
        { id: "prod-us", labels: { env: "staging", region: "us" } },
      ],
      catalog: {
        namespaces: new Set(["payments", "web"]),
        services: new Set(["api"]),
        serviceAccounts: new Set(["frontend"]),
      },
    });
    assert.deepEqual(
      warnings.map((w) => `${w.policy}: ${w.path}: ${w.message}`),
      [
        'p: spec.from[0].clusters[1]: no cluster is named "prod-euu"',
        'p: spec.from[0].clusters[2]: "dev-*" matches no cluster',
        "p: spec.from[0].clusterLabels.zone: no cluster has the label zone=b",
        'p: spec.from[1].serviceAccounts[1]: no cluster reports a service account "ghost"',
        "p: spec.from[1].clusterLabels: no cluster has all the labels env=prod, region=us",
        'p: spec.to[0].namespaces[1]: no cluster reports a namespace "paymens"',
      ],
    );
    // No catalog yet: clusters and their labels only.
    assert.equal(
      selectorWarnings([p], { clusters: [{ id: "prod-eu", labels: { env: "prod" } }] }).length,
      4,
    );
  });
});
