// Policies as Kubernetes-style resources through the real `isthmus` command: one object
// shape for -o json|yaml that apply reads back, -f - / repeated -f / folders, every
// validation error with its path, --prune -l, warnings for selectors that match nothing,
// and batch explain.
import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Visibility } from "@isthmus/proto";
import { parse } from "yaml";
import { type CliRun, isolatedIsthmus, repoRoot } from "../helpers/cli.js";
import { eventually } from "../helpers/eventually.js";
import {
  ADMIN_TOKEN,
  admin,
  enrollAgent,
  type HubFixture,
  startHub,
  type TestAgent,
} from "../helpers/hub-fixture.js";

/** `isthmus <args>` with `input` on standard input, and no settings from this machine. */
const isthmus = (args: string[], input = ""): Promise<CliRun> => isolatedIsthmus(args, {}, input);

const doc = (name: string, spec: string, labels = "") =>
  `apiVersion: isthmus.dev/v1alpha1\nkind: ConnectionPolicy\nmetadata:\n  name: ${name}\n${labels}spec:\n${spec}`;

describe("isthmus policy as a resource", function () {
  // Each step starts the CLI (under tsx, from the sources): seconds each on a loaded machine.
  this.timeout(240_000);
  let f: HubFixture;
  let c: string[];
  let dir: string;
  const agents: TestAgent[] = [];
  before(async () => {
    f = await startHub();
    dir = join(f.dataDir, "cli");
    mkdirSync(dir);
    const config = join(dir, "cli.yaml");
    writeFileSync(
      config,
      `hub: ${f.address}\ntoken: ${ADMIN_TOKEN}\ncaFile: ${join(f.dataDir, "control-plane/ca-cert.pem")}\n`,
    );
    c = ["--config", config];
    const a = await enrollAgent(f, "prod-eu", { env: "prod" });
    const b = await enrollAgent(f, "prod-us", { env: "prod" });
    agents.push(a, b);
    await a.join(
      [],
      [{ namespace: "web", serviceAccount: "frontend", labelSets: [], podCount: 1 }],
    );
    await b.join(
      [
        {
          namespace: "payments",
          name: "payments-api",
          ports: [{ name: "https", port: 8443, protocol: "TCP" }],
          selector: { app: "payments" },
          visibility: Visibility.PRIVATE,
          readyEndpoints: 1,
          serviceAccounts: ["payments-api"],
          inMesh: true,
        },
      ],
      [{ namespace: "payments", serviceAccount: "payments-api", labelSets: [], podCount: 1 }],
    );
    await eventually(async () => {
      const cat = await f.admin.listCatalog({}, admin);
      assert.equal(cat.services.length, 1);
      assert.equal(cat.identities.length, 2);
    });
  });
  after(async () => {
    for (const a of agents) a.close();
    await f.close();
  });

  it("list -o yaml | apply -f - round-trips unchanged; one object shape, plain enum words", async () => {
    const applied = await isthmus(["policy", "apply", "-f", "examples/policies", ...c]);
    assert.equal(applied.code, 0, applied.stderr);
    // Recursive, sorted by path: baseline.yaml, payments/batch.json, payments/frontend.yaml.
    assert.deepEqual(
      [...applied.stdout.matchAll(/^policy (\S+) applied \(version \d+\)$/gm)].map((m) => m[1]),
      ["no-dev-to-prod", "batch-to-payments", "frontend-to-payments", "payments-to-ledger"],
    );
    const listed = await isthmus(["policy", "list", "-o", "yaml", ...c]);
    assert.equal(listed.code, 0, listed.stderr);
    const list = parse(listed.stdout) as {
      apiVersion: string;
      kind: string;
      items: { kind: string; metadata: { name: string }; spec: { action: string } }[];
    };
    assert.equal(list.kind, "List");
    assert.equal(list.apiVersion, "v1");
    assert.deepEqual(
      list.items.map((i) => [i.kind, i.metadata.name, i.spec.action]),
      [
        // Evaluation order: priority, then name.
        ["ConnectionPolicy", "no-dev-to-prod", "DENY"],
        ["ConnectionPolicy", "frontend-to-payments", "ALLOW"],
        ["ConnectionPolicy", "payments-to-ledger", "ALLOW"],
        ["ConnectionPolicy", "batch-to-payments", "ALLOW"],
      ],
    );
    const again = await isthmus(["policy", "apply", "-f", "-", ...c], listed.stdout);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((again.stdout.match(/^policy \S+ unchanged$/gm) ?? []).length, 4);
    const relisted = await isthmus(["policy", "list", "-o", "yaml", ...c]);
    assert.equal(relisted.stdout, listed.stdout, "versions and content unchanged");

    const [json, get, getJson, explain] = await Promise.all([
      isthmus(["policy", "list", "-o", "json", ...c]),
      isthmus(["policy", "get", "no-dev-to-prod", ...c]),
      isthmus(["policy", "get", "no-dev-to-prod", "-o", "json", ...c]),
      isthmus([
        "policy",
        "explain",
        "--from",
        "prod-eu/web/frontend",
        "--to",
        "/payments/payments-api",
        "-o",
        "json",
        ...c,
      ]),
    ]);
    assert.deepEqual(JSON.parse(json.stdout), list);
    assert.deepEqual(parse(get.stdout), JSON.parse(getJson.stdout));
    assert.deepEqual(JSON.parse(getJson.stdout), list.items[0]);
    // frontend-to-payments selects pods labelled app=frontend: prod-eu reports none.
    assert.equal(JSON.parse(explain.stdout).decision, "DENY");
    for (const out of [json, getJson, explain]) {
      assert.doesNotMatch(out.stdout, /ACTION_|DECISION_|VISIBILITY_/, out.stdout);
    }
    const [status, catalog] = await Promise.all([
      isthmus(["status", "-o", "json", ...c]),
      isthmus(["catalog", "list", "-o", "yaml", ...c]),
    ]);
    assert.match(catalog.stdout, /visibility: PRIVATE/);
    for (const out of [status, catalog]) assert.doesNotMatch(out.stdout, /[A-Z]+_[A-Z]+:?\s*$/m);
  });

  it("reports every problem of every file, one line each, exit 1; usage errors exit 2", async () => {
    const bad = join(dir, "bad");
    mkdirSync(join(bad, "nested"), { recursive: true });
    writeFileSync(
      join(bad, "one.yaml"),
      doc(
        "one",
        "  action: allow\n  from: [{ namespaces: [Web_Team] }]\n  to: [{ ports: [0], color: red }]\n",
      ),
    );
    writeFileSync(
      join(bad, "nested", "two.json"),
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "isthmus.dev/v1alpha1",
            kind: "ConnectionPolicy",
            metadata: { name: "ok" },
          },
        ],
      }),
    );
    writeFileSync(join(bad, "notes.txt"), "not read: not a policy file");
    const r = await isthmus(["policy", "apply", "-f", bad, ...c]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stderr.trimEnd().split("\n"), [
      `isthmus: ${bad}/nested/two.json: document 1, items[0], line 1: invalid policy "ok": spec: required`,
      `isthmus: ${bad}/one.yaml: document 1, line 6: invalid policy "one": spec.action: must be ALLOW or DENY, got string "allow"`,
      `isthmus: ${bad}/one.yaml: document 1, line 7: invalid policy "one": spec.from[0].namespaces[0]: "Web_Team" is neither a DNS-1123 label nor a glob`,
      `isthmus: ${bad}/one.yaml: document 1, line 8: invalid policy "one": spec.to[0].color: unknown field (expected one of clusters, clusterLabels, namespaces, services, ports)`,
      `isthmus: ${bad}/one.yaml: document 1, line 8: invalid policy "one": spec.to[0].ports[0]: must be a port number between 1 and 65535, got 0`,
    ]);
    assert.equal(r.stdout, "");

    const good = join(dir, "good.yaml");
    writeFileSync(
      good,
      doc("dup", "  action: DENY\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [1] }]\n"),
    );
    const [dup, missing, twoStdin, noFile] = await Promise.all([
      isthmus(["policy", "apply", "-f", good, "-f", "-", ...c], readFileSync(good, "utf8")),
      isthmus(["policy", "apply", "-f", join(dir, "nope.yaml"), ...c]),
      isthmus(["policy", "apply", "-f", "-", "-f", "-", ...c]),
      isthmus(["policy", "apply", ...c]),
    ]);
    assert.equal(dup.code, 1);
    assert.equal(
      dup.stderr,
      `isthmus: <stdin>: document 1, line 4: duplicate policy "dup": also defined in ${good}: document 1, line 4\n`,
    );
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^isthmus: .*nope\.yaml: ENOENT/);
    assert.equal(twoStdin.code, 2);
    assert.equal(twoStdin.stderr, "isthmus: -f -: standard input can be read once\n");
    assert.equal(noFile.code, 2);
    assert.equal(noFile.stderr, "isthmus: -f <file|folder|-> is required\n");
  });

  it("--prune -l deletes what left the folder, in one batch, shown first by --dry-run", async () => {
    const repo = join(dir, "repo");
    cpSync(join(repoRoot, "examples/policies"), repo, { recursive: true });
    // Applied by hand, without the label: prune never touches it.
    const manual = join(dir, "manual.yaml");
    writeFileSync(
      manual,
      doc("by-hand", "  action: DENY\n  from: [{ namespaces: [web] }]\n  to: [{ ports: [9] }]\n"),
    );
    const sel = ["-l", "app.kubernetes.io/managed-by=gitops"];
    assert.equal((await isthmus(["policy", "apply", "-f", manual, ...c])).code, 0);
    const first = await isthmus(["policy", "apply", "-f", repo, "--prune", ...sel, ...c]);
    assert.equal(first.code, 0, first.stderr);
    rmSync(join(repo, "payments"), { recursive: true });
    const dry = await isthmus([
      "policy",
      "apply",
      "-f",
      repo,
      "--prune",
      ...sel,
      "--dry-run",
      ...c,
    ]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      [...dry.stdout.matchAll(/^policy (\S+) would be pruned$/gm)].map((m) => m[1]),
      ["batch-to-payments", "frontend-to-payments", "payments-to-ledger"],
    );
    const names = async () =>
      (
        parse((await isthmus(["policy", "list", "-o", "yaml", ...c])).stdout) as {
          items: { metadata: { name: string } }[];
        }
      ).items
        .map((i) => i.metadata.name)
        .sort();
    assert.deepEqual(await names(), [
      "batch-to-payments",
      "by-hand",
      "frontend-to-payments",
      "no-dev-to-prod",
      "payments-to-ledger",
    ]);
    const pruned = await isthmus(["policy", "apply", "-f", repo, "--prune", ...sel, ...c]);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /^policy no-dev-to-prod unchanged$/m);
    assert.match(pruned.stdout, /^policy payments-to-ledger pruned$/m);
    assert.deepEqual(await names(), ["by-hand", "no-dev-to-prod"]);

    const [noSelector, badSelector, unlabeled] = await Promise.all([
      isthmus(["policy", "apply", "-f", repo, "--prune", ...c]),
      isthmus(["policy", "apply", "-f", repo, "--prune", "-l", "a in b", ...c]),
      isthmus(["policy", "apply", "-f", manual, ...sel, ...c]),
    ]);
    assert.equal(noSelector.code, 2);
    assert.equal(
      noSelector.stderr,
      "isthmus: --prune needs -l <selector>: the stored policies it may delete\n",
    );
    assert.equal(badSelector.code, 2);
    assert.match(badSelector.stderr, /^isthmus: -l: invalid label selector "a in b": cannot read/);
    assert.equal(unlabeled.code, 2);
    assert.match(unlabeled.stderr, /policy "by-hand" skipped: its labels do not match -l/);
    assert.match(unlabeled.stderr, /selects none of the policies given\n$/);
  });

  it("warns about every selector that matches nothing, on apply and --dry-run", async () => {
    const typo = join(dir, "typo.yaml");
    writeFileSync(
      typo,
      doc(
        "typos",
        "  action: ALLOW\n  from:\n    - clusters: [prod-euu, prod-eu]\n      clusterLabels: { env: staging }\n" +
          '  to:\n    - namespaces: [paymens, payments]\n      services: ["pay*", "zz*"]\n',
      ),
    );
    const expected = [
      'isthmus: warning: policy "typos": spec.from[0].clusters[1]: no cluster is named "prod-euu"',
      'isthmus: warning: policy "typos": spec.from[0].clusterLabels.env: no cluster has the label env=staging',
      'isthmus: warning: policy "typos": spec.to[0].namespaces[0]: no cluster reports a namespace "paymens"',
      'isthmus: warning: policy "typos": spec.to[0].services[1]: "zz*" matches no service a cluster reports',
    ];
    for (const extra of [["--dry-run"], []]) {
      const r = await isthmus(["policy", "apply", "-f", typo, ...extra, ...c]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stderr.trimEnd().split("\n"), expected);
    }
  });

  it("explains many connections in one call: pairs from a file, or a selector matrix", async () => {
    const pairs = join(dir, "pairs.yaml");
    writeFileSync(
      pairs,
      "- from: prod-eu/web/frontend\n  to: /payments/payments-api:8443\n" +
        "- from: prod-us/payments/payments-api\n  to: prod-us/payments/payments-api\n",
    );
    const table = await isthmus(["policy", "explain", "--pairs", pairs, ...c]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /prod-eu\/web\/frontend\s+\/payments\/payments-api:8443\s+DENY/);
    assert.match(
      table.stdout,
      /prod-us\/payments\/payments-api\s+prod-us\/payments\/payments-api\s+ALLOW\s+default \(same-cluster\)/,
    );

    const matrix = await isthmus([
      "policy",
      "explain",
      "--from-selector",
      "*/*/*",
      "--to-selector",
      "/payments/*",
      "-o",
      "json",
      ...c,
    ]);
    assert.equal(matrix.code, 0, matrix.stderr);
    const results = (
      JSON.parse(matrix.stdout) as {
        results: { source: { clusterId: string }; explanation: { decision: string } }[];
      }
    ).results;
    assert.deepEqual(
      results.map((r) => [r.source.clusterId, r.explanation.decision]),
      [
        ["prod-eu", "DENY"],
        ["prod-us", "ALLOW"],
      ],
    );

    const unknown = join(dir, "unknown.yaml");
    writeFileSync(unknown, JSON.stringify([{ from: "prod-eu/web/frontend", to: "/web/nothing" }]));
    const [missing, badPair, half, none] = await Promise.all([
      isthmus(["policy", "explain", "--pairs", unknown, ...c]),
      isthmus(["policy", "explain", "--pairs", "-", ...c], "- { from: a/b, to: x/y/z }\n"),
      isthmus(["policy", "explain", "--from", "prod-eu/web/frontend", ...c]),
      isthmus(["policy", "explain", ...c]),
    ]);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "isthmus: prod-eu/web/frontend -> /web/nothing: explain: unknown destination service web/nothing\n",
    );
    assert.match(missing.stdout, /error: explain: unknown destination/);
    assert.equal(badPair.code, 2);
    assert.equal(
      badPair.stderr,
      'isthmus: <stdin>: [0].from "a/b": expected <cluster>/<namespace>/<service-account>\n',
    );
    assert.equal(half.code, 2);
    assert.equal(half.stderr, "isthmus: --from and --to go together\n");
    assert.equal(none.code, 2);
  });
});
