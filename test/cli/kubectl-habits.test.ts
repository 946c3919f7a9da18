// The CLI as a kubectl user expects it: help everywhere, one-line usage errors, version,
// completion, contexts, global flags before or after the command, tables and -o formats,
// --watch. Run as child processes (test/helpers/cli.ts) against a hub on loopback.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { createProgram, main } from "@isthmus/cli";
import { parse } from "yaml";
import { type CliRun, isolatedIsthmus as isthmus, isthmusBin, repoRoot } from "../helpers/cli.js";
import { ADMIN_TOKEN, admin, type HubFixture, startHub } from "../helpers/hub-fixture.js";

function assertUsage(run: CliRun, message: string | RegExp): void {
  assert.equal(run.code, 2, run.stderr);
  assert.equal(run.stdout, "");
  assert.equal(run.stderr.split("\n").length, 2, `one line: ${run.stderr}`);
  if (typeof message === "string") assert.equal(run.stderr, `isthmus: ${message}\n`);
  else assert.match(run.stderr, message);
}

type Command = Awaited<ReturnType<typeof createProgram>>;

function commandPaths(command: Command, path: string[] = []): string[][] {
  return command.commands.flatMap((c) => [
    [...path, c.name()],
    ...commandPaths(c, [...path, c.name()]),
  ]);
}

describe("isthmus as a kubectl user expects it", function () {
  this.timeout(180_000);
  let f: HubFixture;
  let caFile: string;
  let config: string;
  before(async () => {
    f = await startHub();
    caFile = join(f.dataDir, "control-plane/ca-cert.pem");
    config = join(f.dataDir, "cli.yaml");
    await f.admin.createCluster({ cluster: { id: "prod-eu", labels: { env: "prod" } } }, admin);
  });
  after(async () => {
    await f.close();
  });

  it("answers --help on every command, the agent's included", async () => {
    const paths = commandPaths(await createProgram());
    assert.ok(paths.length > 25, `${paths.length} commands`);
    const write = process.stdout.write;
    try {
      for (const path of paths) {
        let out = "";
        process.stdout.write = ((chunk: string) => {
          out += chunk;
          return true;
        }) as typeof process.stdout.write;
        const code = await main(["node", "isthmus", ...path, "--help"]);
        process.stdout.write = write;
        assert.equal(code, 0, path.join(" "));
        assert.match(out, new RegExp(`^Usage: isthmus ${path.join(" ")}\\b`), path.join(" "));
      }
    } finally {
      process.stdout.write = write;
    }
    // The agent, as a process: its own flags, with their environment variables.
    const agent = await isthmus(["agent", "--help"]);
    assert.equal(agent.code, 0, agent.stderr);
    assert.match(agent.stdout, /--cluster-id <value> +this cluster's id at the hub/);
    assert.match(agent.stdout, /ISTHMUS_HUB_CA_FILE/);
  });

  it("reports every usage error on one line with exit code 2", async () => {
    const runs = await Promise.all([
      isthmus([]),
      isthmus(["cluster"]),
      isthmus(["cluster", "bogus"]),
      isthmus(["stauts"]),
      isthmus(["agent", "--bogus"]),
      isthmus(["agent", "--hub", "h:1"]),
      isthmus(["status", "-o", "xml"]),
      isthmus(["--context", "x", "certs", "-c", "/tmp/x"]),
      isthmus(["completion", "tcsh"]),
    ]);
    assertUsage(runs[0]!, "missing command (see 'isthmus --help' for the list)");
    assertUsage(
      runs[1]!,
      "missing command for 'isthmus cluster' (one of create, list, get, delete, rotate-token; see 'isthmus cluster --help')",
    );
    assertUsage(
      runs[2]!,
      "unknown command 'bogus' for 'isthmus cluster' (one of create, list, get, delete, rotate-token)",
    );
    assertUsage(runs[3]!, "unknown command 'stauts' (Did you mean status?)");
    assertUsage(runs[4]!, "unknown option '--bogus'");
    assertUsage(runs[5]!, /^isthmus: agent: --cluster-id \(or ISTHMUS_CLUSTER_ID\) is required/);
    assertUsage(runs[6]!, /^isthmus: option '-o, --output <format>' argument 'xml' is invalid\. /);
    assertUsage(runs[7]!, "option '--context' does not apply to 'isthmus certs'");
    assertUsage(
      runs[8]!,
      /value 'tcsh' is invalid for argument 'shell'\. expected bash, zsh or fish/,
    );
  });

  it("prints the client's version, and the hub's when one is configured", async () => {
    const flags = ["--hub", f.address, "--token", ADMIN_TOKEN, "--ca", caFile];
    const [client, both, json, unreachable] = await Promise.all([
      isthmus(["version"]),
      isthmus(["version", ...flags]),
      isthmus(["-o", "json", "version", ...flags]),
      isthmus(["version", "--hub", "localhost:1", "--token", ADMIN_TOKEN, "--insecure"]),
    ]);
    assert.equal(client.code, 0, client.stderr);
    assert.equal(client.stdout, "Client Version: 0.1.0\n");
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, "Client Version: 0.1.0\nServer Version: 0.1.0\n");
    const v = JSON.parse(json.stdout) as Record<string, { version: string; platform: string }>;
    assert.equal(v.clientVersion?.version, "0.1.0");
    assert.equal(v.serverVersion?.version, "0.1.0");
    assert.match(v.serverVersion!.platform, /^linux\/(amd64|arm64)$/);
    assert.equal(unreachable.code, 1);
    assert.equal(unreachable.stdout, "Client Version: 0.1.0\n");
    assert.match(unreachable.stderr, /^isthmus: cannot reach the hub at localhost:1: [^\n]*\n$/);
  });

  it("completes commands in bash; zsh and fish scripts name every command", async () => {
    const scripts = await Promise.all(
      ["bash", "zsh", "fish"].map((s) => isthmus(["completion", s])),
    );
    for (const s of scripts) assert.equal(s.code, 0, s.stderr);
    const bash = scripts[0]!.stdout;
    const script = join(f.dataDir, "completion.bash");
    writeFileSync(script, bash);
    const complete = (words: string[]) =>
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _isthmus; echo "\${COMPREPLY[*]}"`;
    const { stdout } = await promisify(execFile)("bash", [
      "-c",
      [
        `source ${script}`,
        "complete -p isthmus",
        complete(["isthmus", "clu"]),
        complete(["isthmus", "cluster", ""]),
        complete(["isthmus", "--config", "x", "config", "use"]),
        complete(["isthmus", "cluster", "create", "--tr"]),
      ].join("\n"),
    ]);
    assert.deepEqual(stdout.split("\n"), [
      "complete -o default -F _isthmus isthmus",
      "cluster",
      "create list get delete rotate-token",
      "use-context",
      "--trust-domain",
      "",
    ]);
    for (const name of commandPaths(await createProgram()).map((p) => p[p.length - 1]!)) {
      assert.match(scripts[1]!.stdout, new RegExp(`'${name}:`), `zsh: ${name}`);
      assert.match(scripts[2]!.stdout, new RegExp(` -a ${name} `), `fish: ${name}`);
    }
  });

  it("keeps several hubs as contexts, chosen by --context before or after the command", async () => {
    const env = { ISTHMUS_CONFIG: config };
    const set = await isthmus(
      [
        "config",
        "set-context",
        "local",
        "--hub",
        f.address,
        "--token",
        ADMIN_TOKEN,
        "--ca",
        caFile,
      ],
      env,
    );
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, `Context "local" created in ${config}.\n`);
    assert.equal(statSync(config).mode & 0o777, 0o600);
    const other = await isthmus(
      [
        "config",
        "set-context",
        "elsewhere",
        "--hub",
        "localhost:1",
        "--insecure",
        "--token",
        "t".repeat(20),
      ],
      env,
    );
    assert.equal(other.code, 0, other.stderr);

    const [contexts, current, names] = await Promise.all([
      isthmus(["config", "get-contexts"], env),
      isthmus(["config", "current-context"], env),
      isthmus(["config", "get-contexts", "-o", "name"], env),
    ]);
    assert.deepEqual(
      contexts.stdout.split("\n").map((l) => l.split(/ {3,}/)),
      [
        ["CURRENT", "NAME", "HUB", "CA", "AUTH"],
        ["*", "local", f.address, caFile, "token"],
        ["", "elsewhere", "localhost:1", "(insecure)", "token"],
        [""],
      ],
    );
    assert.equal(current.stdout, "local\n");
    assert.equal(names.stdout, "local\nelsewhere\n");
    assert.doesNotMatch(
      (await isthmus(["config", "get-contexts", "-o", "yaml"], env)).stdout,
      new RegExp(ADMIN_TOKEN),
    );

    // The current context, then --context before and after the command, and ISTHMUS_CONTEXT.
    const [viaCurrent, before, after, viaEnv, unknown] = await Promise.all([
      isthmus(["cluster", "list", "-o", "name"], env),
      isthmus(["--context", "elsewhere", "cluster", "list"], env),
      isthmus(["cluster", "list", "--context", "elsewhere"], env),
      isthmus(["cluster", "list"], { ...env, ISTHMUS_CONTEXT: "elsewhere" }),
      isthmus(["status", "--context", "nope"], env),
    ]);
    assert.equal(viaCurrent.stdout, "cluster/prod-eu\n");
    for (const r of [before, after, viaEnv]) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^isthmus: cannot reach the hub at localhost:1: /);
    }
    assertUsage(unknown, `context "nope" not found in ${config} (contexts: local, elsewhere)`);

    const used = await isthmus(["config", "use-context", "elsewhere"], env);
    assert.equal(used.stdout, 'Switched to context "elsewhere".\n');
    assert.equal(
      (parse(readFileSync(config, "utf8")) as { currentContext: string }).currentContext,
      "elsewhere",
    );
    const flagBeatsEnv = await isthmus(["--config", config, "config", "current-context"], {
      ISTHMUS_CONFIG: "/nonexistent/config.yaml",
    });
    assert.equal(flagBeatsEnv.stdout, "elsewhere\n");
  });

  it("reads a single-hub config file of earlier versions as the context 'default'", async () => {
    const legacy = join(f.dataDir, "legacy.yaml");
    writeFileSync(legacy, `hub: ${f.address}\ntoken: ${ADMIN_TOKEN}\ncaFile: ${caFile}\n`);
    const [list, contexts] = await Promise.all([
      isthmus(["cluster", "list", "--config", legacy, "-o", "name"]),
      isthmus(["config", "get-contexts", "-o", "name"], { ISTHMUS_CONFIG: legacy }),
    ]);
    assert.equal(list.stdout, "cluster/prod-eu\n", list.stderr);
    assert.equal(contexts.stdout, "default\n");
  });

  it("prints borderless tables, --no-headers, -o wide, name and jsonpath, before or after the command", async () => {
    const c = ["--hub", f.address, "--token", ADMIN_TOKEN, "--ca", caFile];
    const [table, noHeaders, wide, name, jsonpath, jsonBefore] = await Promise.all([
      isthmus(["cluster", "list", ...c]),
      isthmus(["--no-headers", "cluster", "list", ...c]),
      isthmus(["status", ...c, "-o", "wide"]),
      isthmus(["-o", "name", "status", ...c]),
      isthmus(["cluster", "list", ...c, "-o", "jsonpath={.clusters[*].cluster.labels.env}"]),
      isthmus(["-o", "json", "cluster", "list", ...c]),
    ]);
    for (const r of [table, noHeaders, wide, name, jsonpath, jsonBefore])
      assert.equal(r.code, 0, r.stderr);
    assert.equal(
      table.stdout,
      "CLUSTER   LABELS     CONNECTED   IN SYNC   LAST SEEN   SERVICES   ACKED    NACKS   WARNINGS\n" +
        "prod-eu   env=prod   no          no        <never>     0          <none>   0       0\n",
    );
    assert.equal(noHeaders.stdout, "prod-eu   env=prod   no   no   <never>   0   <none>   0   0\n");
    assert.match(
      wide.stdout,
      /^CLUSTER +CONNECTED +IN SYNC +LAST SEEN .* NACK +AGENT +NETWORK +TRUST DOMAIN +LAST DRIFT REPAIR$/m,
    );
    assert.equal(name.stdout, "cluster/prod-eu\n");
    assert.equal(jsonpath.stdout, "prod\n");
    assert.equal((JSON.parse(jsonBefore.stdout) as { clusters: unknown[] }).clusters.length, 1);
  });

  it("takes the global flags between a command group and its subcommand too", async () => {
    const c = ["--hub", f.address, "--token", ADMIN_TOKEN, "--ca", caFile];
    const [json, noHeaders, nearest, after, notTaken, invalid] = await Promise.all([
      isthmus(["cluster", "-o", "json", "list", ...c]),
      isthmus(["cluster", "--no-headers", "list", ...c]),
      isthmus(["-o", "yaml", "cluster", "-o", "name", "list", ...c]),
      isthmus(["cluster", "-o", "yaml", "list", ...c, "-o", "name"]),
      isthmus(["cluster", "-o", "json", "delete", "zz-not-there", ...c]),
      isthmus(["policy", "-o", "xml", "list", ...c]),
    ]);
    for (const r of [json, noHeaders, nearest, after]) assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(json.stdout) as { clusters: unknown[] }).clusters.length, 1);
    assert.equal(noHeaders.stdout, "prod-eu   env=prod   no   no   <never>   0   <none>   0   0\n");
    assert.equal(nearest.stdout, "cluster/prod-eu\n");
    assert.equal(after.stdout, "cluster/prod-eu\n");
    assertUsage(notTaken, "option '--output' does not apply to 'isthmus cluster delete'");
    assertUsage(invalid, /^isthmus: option '-o, --output <format>' argument 'xml' is invalid\. /);
  });

  it("prints the agent chart's values, hub CA included, when a cluster is created", async () => {
    const c = ["--hub", f.address, "--token", ADMIN_TOKEN, "--ca", caFile];
    const created = await isthmus([
      "cluster",
      "create",
      "dev",
      ...c,
      "--agent-hub-address",
      "hub.example:8443",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const [first, second, blank, ...values] = created.stdout.split("\n");
    assert.match(first!, /^cluster dev registered; bootstrap token shown once, expires \d{4}-/);
    assert.match(
      second!,
      /^values of the isthmus-agent chart \(save as values-dev\.yaml; helm upgrade --install /,
    );
    assert.equal(blank, "");
    const chart = parse(values.join("\n")) as {
      clusterId: string;
      hub: { address: string; caPem: string };
      bootstrapToken: string;
    };
    assert.equal(chart.clusterId, "dev");
    assert.equal(chart.hub.address, "hub.example:8443");
    assert.equal(chart.hub.caPem, readFileSync(caFile, "utf8"));
    assert.ok(chart.bootstrapToken.length >= 32);
    // Every key is one of the agent chart's own.
    const chartValues = parse(
      readFileSync(join(repoRoot, "charts/isthmus-agent/values.yaml"), "utf8"),
    ) as {
      hub: Record<string, unknown>;
    };
    for (const key of Object.keys(chart)) assert.ok(key in chartValues, key);
    for (const key of Object.keys(chart.hub)) assert.ok(key in chartValues.hub, `hub.${key}`);
    await f.admin.deleteCluster({ id: "dev" }, admin);
  });

  it("watches the cluster list: a row for each cluster that changes", async () => {
    const child = spawn(
      process.execPath,
      [
        isthmusBin,
        "cluster",
        "list",
        "-w",
        "--hub",
        f.address,
        "--token",
        ADMIN_TOKEN,
        "--ca",
        caFile,
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, ISTHMUS_CONFIG: "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    const seen = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(out)) resolve();
        };
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          check();
        });
        child.once("exit", (code) => reject(new Error(`watch exited with ${code}: ${out}`)));
        check();
      });
    try {
      await seen(/^prod-eu /m);
      assert.match(out, /^CLUSTER +LABELS /);
      await f.admin.createCluster({ cluster: { id: "staging" } }, admin);
      await seen(/^staging /m);
      assert.equal(out.match(/^CLUSTER/gm)?.length, 1, "one header line");
    } finally {
      child.kill("SIGINT");
      await f.admin.deleteCluster({ id: "staging" }, admin).catch(() => {});
    }
  });
});
