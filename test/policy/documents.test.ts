import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  createPolicyEngine,
  freezePolicy,
  parsePolicyYaml,
  policyListObject,
  policyToYaml,
  readPolicyText,
  sortPolicies,
  validatePolicies,
} from "@isthmus/policy";
import { Action, ConnectionPolicySchema } from "@isthmus/proto";
import { cluster, identity, policy, service } from "./fixtures.js";

const good = `apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: frontend-to-payments }
spec:
  priority: 100
  action: ALLOW
  description: web may pay
  from:
    - clusters: [prod-eu, prod-*, prod-eu]
      namespaces: [web]
      workloadLabels: { app: frontend }
  to:
    - namespaces: [payments]
      services: [payments-api]
      ports: [8443, 443]
---
# an empty document is skipped
---
apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata:
  name: no-dev
  annotations: { owner: platform }
spec:
  action: DENY
  from: [{ clusterLabels: { env: dev } }]
  to: [{ clusters: ["*"] }]
`;

function header(spec: string, name = "x"): string {
  return `apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: { name: ${name} }\nspec:\n${spec}`;
}

const ok = `  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ namespaces: [payments] }]\n`;

describe("policy documents", () => {
  it("parses multi-document YAML into normalized policies", () => {
    const [a, b, ...rest] = parsePolicyYaml(good, "rules.yaml");
    assert.equal(rest.length, 0);
    assert.equal(a?.name, "frontend-to-payments");
    assert.equal(a.priority, 100);
    assert.equal(a.action, Action.ALLOW);
    assert.equal(a.description, "web may pay");
    assert.deepEqual(a.from[0]?.clusters, ["prod-*", "prod-eu"]);
    assert.deepEqual(a.from[0]?.workloadLabels, { app: "frontend" });
    assert.deepEqual(a.to[0]?.ports, [443, 8443]);
    assert.equal(b?.name, "no-dev");
    assert.equal(b.priority, 0);
    assert.equal(b.action, Action.DENY);
    assert.deepEqual(b.from[0]?.clusterLabels, { env: "dev" });
  });

  it("writes a policy back as a document that parses to the same policy", () => {
    for (const p of parsePolicyYaml(good, "rules.yaml")) {
      const text = policyToYaml(p);
      assert.match(text, /^apiVersion: isthmus.dev\/v1alpha1\nkind: ConnectionPolicy\n/);
      assert.deepEqual(parsePolicyYaml(text, "out.yaml"), [p]);
    }
    const withVersion = create(ConnectionPolicySchema, {
      ...parsePolicyYaml(good, "rules.yaml")[1]!,
      resourceVersion: "7",
    });
    assert.match(
      policyToYaml(withVersion),
      /metadata:\n {2}name: no-dev\n {2}resourceVersion: "7"\n/,
    );
    assert.equal(parsePolicyYaml(policyToYaml(withVersion), "out.yaml")[0]?.resourceVersion, "7");
  });

  const bad: [string, string, string, string][] = [
    [
      "invalid YAML",
      "a: [",
      "invalid-yaml",
      "rules.yaml: document 1, line 1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
    [
      "a list, not a mapping",
      "- a\n- b\n",
      "invalid-document",
      "rules.yaml: document 1, line 1: invalid policy document: must be a mapping, got a list",
    ],
    [
      "wrong apiVersion",
      "apiVersion: v1\nkind: ConnectionPolicy\n",
      "invalid-document",
      'rules.yaml: document 1, line 1: invalid policy document: apiVersion: must be "isthmus.dev/v1alpha1", got string "v1"',
    ],
    [
      "wrong kind",
      "apiVersion: isthmus.dev/v1alpha1\nkind: Policy\n",
      "invalid-document",
      'rules.yaml: document 1, line 2: invalid policy document: kind: must be "ConnectionPolicy", got string "Policy"',
    ],
    [
      "no name",
      "apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata: {}\nspec: {}\n",
      "invalid-document",
      [
        "rules.yaml: document 1, line 3: invalid policy document: metadata.name: required",
        "rules.yaml: document 1, line 4: invalid policy document: spec.action: required (ALLOW or DENY)",
        "rules.yaml: document 1, line 4: invalid policy document: spec.from: at least one source selector is required",
        "rules.yaml: document 1, line 4: invalid policy document: spec.to: at least one destination selector is required",
      ].join("\n"),
    ],
    [
      "a typo in a field",
      header(`  action: ALLOW\n  form: []\n${ok.split("\n").slice(1).join("\n")}`),
      "invalid-document",
      'rules.yaml: document 1, line 6: invalid policy "x": spec.form: unknown field (expected one of priority, action, description, from, to)',
    ],
    [
      "a lowercase action",
      header(`  action: allow\n${ok.split("\n").slice(1).join("\n")}`),
      "invalid-document",
      'rules.yaml: document 1, line 5: invalid policy "x": spec.action: must be ALLOW or DENY, got string "allow"',
    ],
    [
      "no action",
      header(`  from: []\n`),
      "invalid-document",
      [
        'rules.yaml: document 1, line 5: invalid policy "x": spec.action: required (ALLOW or DENY)',
        'rules.yaml: document 1, line 5: invalid policy "x": spec.from: at least one source selector is required',
        'rules.yaml: document 1, line 5: invalid policy "x": spec.to: at least one destination selector is required',
      ].join("\n"),
    ],
    [
      "a bad glob",
      header(
        `  action: ALLOW\n  from:\n    - namespaces: [web]\n    - clusters: ["["]\n  to: [{ namespaces: [payments] }]\n`,
      ),
      "invalid-policy",
      'rules.yaml: document 1, line 8: invalid policy "x": spec.from[1].clusters[0]: invalid glob "[": unclosed "["',
    ],
    [
      "an uppercase name",
      header(ok, "Frontend"),
      "invalid-policy",
      `rules.yaml: document 1, line 3: invalid policy "Frontend": metadata.name: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')`,
    ],
    [
      "an empty source selector",
      header(`  action: ALLOW\n  from: [{}]\n  to: [{ namespaces: [payments] }]\n`),
      "invalid-policy",
      'rules.yaml: document 1, line 6: invalid policy "x": spec.from[0]: empty selector; to select every source write clusters: ["*"]',
    ],
    [
      "no destination",
      header(`  action: ALLOW\n  from: [{ namespaces: [web] }]\n`),
      "invalid-policy",
      'rules.yaml: document 1, line 5: invalid policy "x": spec.to: at least one destination selector is required',
    ],
    [
      "port 0",
      header(`  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [80, 0] }]\n`),
      "invalid-policy",
      'rules.yaml: document 1, line 7: invalid policy "x": spec.to[0].ports[1]: must be a port number between 1 and 65535, got 0',
    ],
    [
      "a port as text",
      header(`  action: ALLOW\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [http] }]\n`),
      "invalid-document",
      'rules.yaml: document 1, line 7: invalid policy "x": spec.to[0].ports[0]: must be a port number, got string "http"',
    ],
    [
      "a numeric label value",
      header(
        `  action: ALLOW\n  from: [{ workloadLabels: { version: 2 } }]\n  to: [{ namespaces: [payments] }]\n`,
      ),
      "invalid-document",
      'rules.yaml: document 1, line 6: invalid policy "x": spec.from[0].workloadLabels.version: must be a string, got number 2 (quote it: "2")',
    ],
    [
      "an invalid namespace",
      header(
        `  action: ALLOW\n  from: [{ namespaces: [Web_Team] }]\n  to: [{ namespaces: [payments] }]\n`,
      ),
      "invalid-policy",
      'rules.yaml: document 1, line 6: invalid policy "x": spec.from[0].namespaces[0]: "Web_Team" is neither a DNS-1123 label nor a glob',
    ],
    [
      "a duplicate name",
      `${header(ok)}---\n${header(ok)}`,
      "duplicate-policy",
      'rules.yaml: document 2, line 11: duplicate policy "x": also defined in document 1',
    ],
  ];
  for (const [what, text, code, message] of bad) {
    it(`rejects ${what}`, () => {
      assert.throws(() => parsePolicyYaml(text, "rules.yaml"), {
        name: "PolicyError",
        code,
        message,
      });
    });
  }

  it("reports every problem of every document, each with its path and line", () => {
    const text = `${header(
      `  action: ALLOW\n  from:\n    - namespaces: [web, Bad_Ns]\n      clusters: prod\n    - {}\n  to: [{ ports: [0, http] }]\n`,
    )}---
apiVersion: v1
kind: List
items:
  - apiVersion: isthmus.dev/v1alpha1
    kind: ConnectionPolicy
    metadata: { name: ok }
    spec: { action: ALLOW, from: [{ namespaces: [web] }], to: [{ namespaces: [db] }] }
  - apiVersion: isthmus.dev/v1alpha1
    kind: ConnectionPolicy
    metadata: { name: y, labels: { team: 7 } }
    spec: { action: DENY, from: [{ namespaces: [a] }], to: [{ namespaces: ["["] }] }
`;
    const read = readPolicyText(text, "rules.yaml");
    assert.deepEqual(
      read.problems.map((p) => p.message),
      [
        'rules.yaml: document 1, line 7: invalid policy "x": spec.from[0].namespaces[1]: "Bad_Ns" is neither a DNS-1123 label nor a glob',
        'rules.yaml: document 1, line 8: invalid policy "x": spec.from[0].clusters: must be a list of strings, got string "prod"',
        'rules.yaml: document 1, line 9: invalid policy "x": spec.from[1]: empty selector; to select every source write clusters: ["*"]',
        'rules.yaml: document 1, line 10: invalid policy "x": spec.to[0].ports[1]: must be a port number, got string "http"',
        'rules.yaml: document 1, line 10: invalid policy "x": spec.to[0].ports[0]: must be a port number between 1 and 65535, got 0',
        'rules.yaml: document 2, items[1], line 21: invalid policy "y": metadata.labels.team: must be a string, got number 7 (quote it: "7")',
        'rules.yaml: document 2, items[1], line 22: invalid policy "y": spec.to[0].namespaces[0]: invalid glob "[": unclosed "["',
      ],
    );
    assert.deepEqual(
      read.policies.map((p) => [p.policy.name, p.where]),
      [["ok", "rules.yaml: document 2, items[0], line 17"]],
    );
  });

  it("reads a List and writes labels back", () => {
    const [p] = parsePolicyYaml(
      `apiVersion: v1\nkind: List\nitems:\n- apiVersion: isthmus.dev/v1alpha1\n  kind: ConnectionPolicy\n  metadata: { name: a, labels: { team: pay, app.kubernetes.io/managed-by: git } }\n  spec: { action: DENY, from: [{ namespaces: [a] }], to: [{ namespaces: [b] }] }\n`,
      "list.yaml",
    );
    assert.deepEqual(p?.labels, { "app.kubernetes.io/managed-by": "git", team: "pay" });
    const list = policyListObject([p!]);
    assert.equal(list.kind, "List");
    assert.deepEqual(parsePolicyYaml(JSON.stringify(list), "list.json"), [p]);
    assert.throws(
      () => parsePolicyYaml("apiVersion: isthmus.dev/v1alpha1\nkind: List\nitems: {}\n", "l.yaml"),
      {
        message:
          /^l.yaml: document 1, line 1: invalid list: apiVersion: must be "v1" for kind List$/,
      },
    );
  });

  it("validates policies in proto form with field paths", () => {
    const p = policy("x", 1, "ALLOW", [{ clusters: ["a{b"] }], [{ namespaces: ["payments"] }]);
    assert.throws(() => validatePolicies([p]), {
      code: "invalid-policy",
      message: 'invalid policy "x": from[0].clusters[0]: invalid glob "a{b": unclosed "{"',
    });
    const unset = create(ConnectionPolicySchema, {
      name: "y",
      from: [{ namespaces: ["web"] }],
      to: [{ namespaces: ["db"] }],
    });
    assert.throws(() => validatePolicies([unset]), {
      message: 'invalid policy "y": action: must be ALLOW or DENY',
    });
    const q = policy("x", 2, "DENY", [{ namespaces: ["web"] }], [{ namespaces: ["payments"] }]);
    assert.throws(() => validatePolicies([q, q]), {
      code: "duplicate-policy",
      message: 'duplicate policy "x": policies[0] and policies[1] have the same name',
    });
  });

  it("knows a policy given again unchanged, frozen or not, and sees one changed in place", () => {
    const e = createPolicyEngine();
    e.applyCatalog([
      { kind: "cluster", cluster: cluster("a") },
      { kind: "cluster", cluster: cluster("b") },
      { kind: "service", clusterId: "b", service: service("payments", "api") },
      { kind: "service", clusterId: "b", service: service("shop", "cart") },
      { kind: "identity", clusterId: "a", identity: identity("web", "frontend") },
    ]);
    const importsOfA = () => [...e.intents("a").keys()].filter((n) => n.split("/").length === 3);
    // Frozen: kept as given; the same object again is unchanged without a comparison.
    const frozen = freezePolicy(
      policy("web", 10, "ALLOW", [{ namespaces: ["web"] }], [{ namespaces: ["payments"] }]),
    );
    assert.throws(() => {
      (frozen.to[0]!.namespaces as string[]).push("shop");
    }, TypeError);
    e.setPolicies([frozen]);
    assert.deepEqual(importsOfA(), ["import/payments/api"]);
    assert.equal(e.setPolicies([frozen]).size, 0);
    // Not frozen: copied, so a change made in place after setPolicies is seen.
    const open = policy("web", 10, "ALLOW", [{ namespaces: ["web"] }], [{ namespaces: ["shop"] }]);
    e.setPolicies([open]);
    assert.deepEqual(importsOfA(), ["import/shop/cart"]);
    assert.equal(e.setPolicies([open]).size, 0);
    open.to[0]!.namespaces = ["payments"];
    assert.ok(e.setPolicies([open]).size > 0);
    assert.deepEqual(importsOfA(), ["import/payments/api"]);
  });

  it("sorts by priority, then name", () => {
    const ps = [
      policy("b", 10, "ALLOW", [{ namespaces: ["a"] }], [{ namespaces: ["a"] }]),
      policy("c", 5, "ALLOW", [{ namespaces: ["a"] }], [{ namespaces: ["a"] }]),
      policy("a", 10, "ALLOW", [{ namespaces: ["a"] }], [{ namespaces: ["a"] }]),
    ];
    assert.deepEqual(
      sortPolicies(ps).map((p) => p.name),
      ["c", "a", "b"],
    );
  });

  it("a bad policy in a batch rejects the batch and changes nothing", () => {
    const e = createPolicyEngine();
    const first = [
      policy("web", 10, "ALLOW", [{ namespaces: ["web"] }], [{ namespaces: ["payments"] }]),
    ];
    e.setPolicies(first);
    e.applyCatalog([
      { kind: "cluster", cluster: cluster("a") },
      { kind: "cluster", cluster: cluster("b") },
      { kind: "service", clusterId: "b", service: service("payments", "api") },
      { kind: "identity", clusterId: "a", identity: identity("web", "frontend") },
    ]);
    const before = [...e.intents("b")].map(([n, i]) => `${n}@${i.version}`);
    const batch = [
      policy("deny-web", 5, "DENY", [{ namespaces: ["web"] }], [{ namespaces: ["payments"] }]),
      policy("broken", 20, "ALLOW", [{ namespaces: ["web"] }], [{ ports: [70000] }]),
    ];
    assert.throws(() => e.setPolicies(batch), {
      code: "invalid-policy",
      message:
        'invalid policy "broken": to[0].ports[0]: must be a port number between 1 and 65535, got 70000',
    });
    assert.throws(() => e.impact(batch), { code: "invalid-policy" });
    // Two policies of one name, installed or new: rejected, naming both indexes.
    const deny = batch[0]!;
    assert.throws(() => e.setPolicies([first[0]!, deny, first[0]!]), {
      code: "duplicate-policy",
      message: 'duplicate policy "web": policies[0] and policies[2] have the same name',
    });
    assert.throws(() => e.setPolicies([deny, first[0]!, deny]), {
      code: "duplicate-policy",
      message: 'duplicate policy "deny-web": policies[0] and policies[2] have the same name',
    });
    assert.deepEqual(
      e.policies().map((p) => p.name),
      ["web"],
    );
    assert.deepEqual(
      [...e.intents("b")].map(([n, i]) => `${n}@${i.version}`),
      before,
    );
    assert.deepEqual(
      before.map((b) => b.split("@")[0]),
      ["default-access", "export/payments/api", "access/payments/api"],
    );
    // A rejected set leaves nothing behind: the same names are accepted once each.
    e.setPolicies([first[0]!, deny]);
    assert.deepEqual(
      e.policies().map((p) => p.name),
      ["deny-web", "web"],
    );
  });
});
