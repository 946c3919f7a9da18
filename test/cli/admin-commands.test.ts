import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { isolatedIsthmus as isthmus } from "../helpers/cli.js";
import { ADMIN_TOKEN, type HubFixture, startHub } from "../helpers/hub-fixture.js";

const policyYaml = `apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: frontend-to-payments }
spec:
  priority: 100
  action: ALLOW
  from:
    - clusters: [prod-eu]
      namespaces: [web]
  to:
    - namespaces: [payments]
      services: [payments-api]
      ports: [8443]
`;

describe("isthmus CLI against a running hub", function () {
  this.timeout(120_000);
  let f: HubFixture;
  let config: string;
  before(async () => {
    f = await startHub();
    config = join(f.dataDir, "cli.yaml");
    writeFileSync(
      config,
      `hub: ${f.address}\ntoken: ${ADMIN_TOKEN}\ncaFile: ${join(f.dataDir, "control-plane/ca-cert.pem")}\n`,
    );
    writeFileSync(join(f.dataDir, "policy.yaml"), policyYaml);
  });
  after(async () => {
    await f.close();
  });

  it("creates clusters, applies and reads policies, shows status and catalog in every format", async () => {
    const c = ["--config", config];
    const created = await isthmus([
      "cluster",
      "create",
      "prod-eu",
      "-l",
      "env=prod",
      ...c,
      "-o",
      "json",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const createdJson = JSON.parse(created.stdout) as {
      bootstrapToken: string;
      cluster: { labels: Record<string, string> };
    };
    assert.equal(createdJson.cluster.labels.env, "prod");
    assert.ok(createdJson.bootstrapToken.length >= 32);

    const applied = await isthmus(["policy", "apply", "-f", join(f.dataDir, "policy.yaml"), ...c]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^policy frontend-to-payments applied \(version \d+\)$/m);

    const [list, listJson, get, status, statusYaml, catalog, clusters] = await Promise.all([
      isthmus(["policy", "list", ...c]),
      isthmus(["policy", "list", ...c, "-o", "json"]),
      isthmus(["policy", "get", "frontend-to-payments", ...c]),
      isthmus(["status", ...c]),
      isthmus(["status", ...c, "-o", "yaml"]),
      isthmus(["catalog", "list", ...c, "-o", "yaml"]),
      isthmus(["cluster", "list", ...c]),
    ]);
    for (const r of [list, listJson, get, status, statusYaml, catalog, clusters])
      assert.equal(r.code, 0, r.stderr);
    assert.match(list.stdout, /^frontend-to-payments {3}100 {8}ALLOW {4}1 {6}1 {4}\d+$/m);
    assert.deepEqual(
      (JSON.parse(listJson.stdout) as { items: { metadata: { name: string } }[] }).items.map(
        (p) => p.metadata.name,
      ),
      ["frontend-to-payments"],
    );
    assert.deepEqual(
      (parse(get.stdout) as { spec: { to: { ports: number[] }[] } }).spec.to[0]?.ports,
      [8443],
    );
    assert.match(status.stdout, /^hub 0\.1\.0 {2}system version \d+ {2}policies 1$/m);
    assert.match(status.stdout, /^prod-eu {3}no {10}no {8}<never> /m);
    assert.equal((parse(statusYaml.stdout) as { policyCount: number }).policyCount, 1);
    assert.deepEqual(parse(catalog.stdout), {});
    assert.match(clusters.stdout, /^prod-eu {3}env=prod {3}no /m);
  });

  it("prints one clear line and exits non-zero on bad input", async () => {
    const c = ["--config", config];
    const [badFlag, noHub, unreachable, badToken, missingFile, notFound, badRef] =
      await Promise.all([
        isthmus(["policy", "list", "--bogus", ...c]),
        isthmus(["status"]),
        isthmus(["status", "--hub", "localhost:1", "--token", "x".repeat(20), "--insecure"]),
        isthmus(["status", ...c, "--token", "wrong-token-wrong-token"]),
        isthmus(["policy", "apply", "-f", "/nonexistent/p.yaml", ...c]),
        isthmus(["cluster", "get", "nope", ...c]),
        isthmus(["policy", "explain", "--from", "a/b", "--to", "x/y/z", ...c]),
      ]);
    assert.equal(badFlag.code, 2);
    assert.equal(badFlag.stderr, "isthmus: unknown option '--bogus'\n");
    assert.equal(noHub.code, 2);
    assert.equal(
      noHub.stderr,
      "isthmus: no hub address: give --hub host:port, ISTHMUS_HUB, or a context with a hub in the config file (isthmus config set-context)\n",
    );
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^isthmus: cannot reach the hub at localhost:1: /);
    assert.equal(badToken.code, 1);
    assert.equal(badToken.stderr, "isthmus: unauthenticated: unknown bearer token\n");
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /^isthmus: \/nonexistent\/p\.yaml: ENOENT/);
    assert.equal(notFound.code, 1);
    assert.equal(notFound.stderr, 'isthmus: not found: cluster "nope" not found\n');
    assert.equal(badRef.code, 2);
    assert.equal(
      badRef.stderr,
      'isthmus: --from "a/b": expected <cluster>/<namespace>/<service-account>\n',
    );
    for (const r of [badFlag, noHub, unreachable, badToken, missingFile, notFound, badRef]) {
      assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, new RegExp(ADMIN_TOKEN));
    }
  });
});
