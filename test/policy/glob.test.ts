import assert from "node:assert/strict";
import {
  compileGlob,
  createPolicyEngine,
  MAX_GLOB_LENGTH,
  MAX_GLOB_WILDCARDS,
  validatePolicies,
} from "@isthmus/policy";
import { Decision } from "@isthmus/proto";
import { cluster, identity, policy, service } from "./fixtures.js";

/** `*a*a…*a*b`: fifteen `*a` and a `*b`, the pattern of issue 17. */
const ATTACK = `${"*a".repeat(15)}*b`;

describe("policy globs", () => {
  const cases: [string, string, boolean][] = [
    ["*", "", true],
    ["*", "anything.at-all", true],
    ["prod-*", "prod-eu", true],
    ["prod-*", "prod-", true],
    ["prod-*", "dev-eu", false],
    ["*-eu", "prod-eu", true],
    ["*-eu", "prod-us", false],
    ["c[12]", "c1", true],
    ["c[12]", "c3", false],
    ["c[1-3]x", "c2x", true],
    ["c[!1-3]x", "c2x", false],
    ["c[^1-3]x", "c4x", true],
    ["?b", "ab", true],
    ["?b", "b", false],
    ["a*b*c", "axxbyyc", true],
    ["a*b*c", "axxbyycd", false],
    ["a*b*c", "abcabc", true],
    ["{web,api}-*", "api-v1", true],
    ["{web,api}-*", "db-v1", false],
    ["x{a,b{c,d}}", "xbd", true],
    ["x{a,b{c,d}}", "xb", false],
    ["!dev", "prod", true],
    ["!dev", "dev", false],
    ["!dev-*", "dev-eu", false],
    ["front*", "frontend", true],
    ["*.example", "a.b.example", true],
  ];
  for (const [pattern, name, want] of cases) {
    it(`${pattern} ${want ? "matches" : "does not match"} "${name}"`, () => {
      assert.equal(compileGlob(pattern).test(name), want);
    });
  }

  it("matches *a x15 + *b on 63-character names in at most (63+1) x (tokens+1) steps", () => {
    const glob = compileGlob(ATTACK);
    const tokens = ATTACK.length;
    for (const name of ["a".repeat(63), `${"a".repeat(62)}c`, `${"ab".repeat(31)}a`]) {
      const steps = { count: 0 };
      assert.equal(glob.test(name, steps), false, name);
      assert.ok(steps.count <= (name.length + 1) * (tokens + 1), `${steps.count} steps`);
    }
    const hit = { count: 0 };
    assert.equal(glob.test(`${"a".repeat(62)}b`, hit), true);
    assert.ok(hit.count <= 64 * (tokens + 1), `${hit.count} steps`);
  });

  it("compiles a policy with that glob against 63-character cluster ids", () => {
    // Before the own matcher this compile ran picomatch's regular expression against every
    // cluster id: over 40 s for one 36-character id, growing about 3.4 times per 2 characters.
    const ids = ["a".repeat(63), `${"a".repeat(62)}b`, `${"ab".repeat(31)}a`];
    const e = createPolicyEngine({});
    e.setPolicies([
      policy("globbed", 10, "ALLOW", [{ clusters: [ATTACK] }], [{ namespaces: ["payments"] }]),
    ]);
    e.applyCatalog([
      ...ids.map((id) => ({ kind: "cluster" as const, cluster: cluster(id) })),
      { kind: "cluster", cluster: cluster("dst") },
      { kind: "service", clusterId: "dst", service: service("payments", "api") },
      ...ids.map((id) => ({
        kind: "identity" as const,
        clusterId: id,
        identity: identity("web", "frontend"),
      })),
    ]);
    const decide = (clusterId: string) =>
      e.explain(
        { clusterId, namespace: "web", serviceAccount: "frontend" },
        { clusterId: "dst", namespace: "payments", service: "api", port: 0 },
      ).decision;
    assert.equal(decide(ids[0]!), Decision.DENY);
    assert.equal(decide(ids[1]!), Decision.ALLOW);
    assert.equal(decide(ids[2]!), Decision.DENY);
  });

  it("refuses an over-long glob, naming the field", () => {
    const long = `${"a".repeat(MAX_GLOB_LENGTH)}*`;
    const p = policy("long", 1, "ALLOW", [{ namespaces: ["web"] }], [{ services: [long] }]);
    assert.throws(() => validatePolicies([p]), {
      code: "invalid-policy",
      message: new RegExp(
        `^invalid policy "long": to\\[0\\]\\.services\\[0\\]: invalid glob "a{61}"\\.\\.\\.: ${MAX_GLOB_LENGTH + 1} characters, at most ${MAX_GLOB_LENGTH}$`,
      ),
    });
  });

  it("refuses a glob with too many wildcards, naming the field", () => {
    const many = "*a".repeat(MAX_GLOB_WILDCARDS + 1);
    const p = policy("stars", 1, "ALLOW", [{ clusters: [many] }], [{ namespaces: ["db"] }]);
    assert.throws(() => validatePolicies([p]), {
      message: `invalid policy "stars": from[0].clusters[0]: invalid glob "${many}": ${MAX_GLOB_WILDCARDS + 1} wildcards (* and ?), at most ${MAX_GLOB_WILDCARDS}`,
    });
  });

  it("refuses syntax it does not support, saying what it supports", () => {
    const bad: [string, string][] = [
      ["+(a|b)", '"+" is not supported (globs use * ? [...] {a,b} and a leading !)'],
      ["a{b", 'unclosed "{"'],
      ["a[b", 'unclosed "["'],
      ["{1..9}", "brace ranges ({a..b}) are not supported"],
      ["[[:alpha:]]", "character classes ([:alpha:]) are not supported"],
      ["{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}", "braces expand to more than 32 alternatives"],
    ];
    for (const [glob, why] of bad) {
      const p = policy("x", 1, "ALLOW", [{ namespaces: [glob] }], [{ namespaces: ["db"] }]);
      assert.throws(() => validatePolicies([p]), {
        message: `invalid policy "x": from[0].namespaces[0]: invalid glob ${JSON.stringify(glob)}: ${why}`,
      });
    }
  });
});
