// `isthmus hub --store etcd --etcd-endpoints …` as a process: its state outlives it in etcd
// (a hub on an empty data dir finds it), and flag mistakes stop it with the field named.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEtcdStore } from "@isthmus/hub";
import { Action, AdminService, clientCredentials, createClient } from "@isthmus/proto";
import { isthmusBin, runIsthmus } from "../helpers/cli.js";
import { type EtcdCluster, skipWithoutEtcd, startEtcd } from "../helpers/etcd.js";
import { eventually } from "../helpers/eventually.js";
import { ADMIN_TOKEN, admin } from "../helpers/hub-fixture.js";

/** Starts `isthmus hub` with `args`; resolves with its port once it listens (the "hub
 * started" record of its JSON log on stderr). */
async function startHub(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [isthmusBin, "hub", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ISTHMUS_LOG_FORMAT: "json", ISTHMUS_LOG_LEVEL: "info" },
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      for (const line of stderr.split("\n").slice(0, -1)) {
        const record = JSON.parse(line) as { message?: string; port?: number; store?: string };
        if (record.message === "hub started") {
          assert.match(
            record.store ?? "",
            /^etcd http:\/\/127\.0\.0\.1:\d+ \(prefix \/process\/\)$/,
          );
          resolve(record.port!);
        }
      }
    });
    child.once("exit", (code) => reject(new Error(`hub exited with ${code}: ${stderr}`)));
  });
  return { child, port };
}

const stopped = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });

describe("isthmus hub --store etcd", function () {
  this.timeout(120_000);
  let etcd: EtcdCluster | undefined;
  let dir: string;
  before(async function () {
    skipWithoutEtcd(this);
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), "isthmus-hub-etcd-proc-"));
    await writeFile(join(dir, "token"), ADMIN_TOKEN);
  });
  after(async () => {
    await etcd?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const flags = (dataDir: string) => [
    "--listen",
    "127.0.0.1:0",
    "--metrics-listen",
    "",
    "--data-dir",
    join(dir, dataDir),
    "--admin-token-file",
    join(dir, "token"),
    "--store",
    "etcd",
    "--etcd-endpoints",
    etcd!.endpoints.join(","),
    "--etcd-prefix",
    "/process/",
  ];

  it("keeps policies in etcd for a hub started on another data dir", async () => {
    const first = await startHub(flags("one"));
    // The CA is in etcd too: the second hub serves with the same one.
    let client = createClient(
      AdminService,
      `localhost:${first.port}`,
      clientCredentials({ caPem: await etcdCa(etcd!) }),
    );
    await client.applyPolicies(
      {
        policies: [
          {
            name: "deny-x",
            priority: 1,
            action: Action.DENY,
            from: [{ namespaces: ["a"] }],
            to: [{ services: ["x"] }],
          },
        ],
      },
      admin,
    );
    client.close();
    await stopped(first.child);

    const second = await startHub(flags("two"));
    client = createClient(
      AdminService,
      `localhost:${second.port}`,
      clientCredentials({ caPem: await etcdCa(etcd!) }),
    );
    try {
      // The first hub's election key lives until its lease ends: until then the second one
      // answers UNAVAILABLE ("retry"), as a replica that does not lead yet.
      const listed = await eventually(() => client.listPolicies({}, admin), 30_000, 200);
      assert.deepEqual(
        listed.policies.map((p) => p.name),
        ["deny-x"],
      );
    } finally {
      client.close();
      await stopped(second.child);
    }
  });

  it("stops with the field named when the etcd flags are wrong", async () => {
    const noEndpoints = await runIsthmus(["hub", "--store", "etcd", "--data-dir", join(dir, "x")]);
    assert.notEqual(noEndpoints.code, 0);
    assert.match(noEndpoints.stderr, /flags: etcd\.endpoints: needed with store: etcd/);
    const badUrl = await runIsthmus([
      "hub",
      "--store",
      "etcd",
      "--etcd-endpoints",
      "127.0.0.1:2379",
      "--data-dir",
      join(dir, "x"),
    ]);
    assert.notEqual(badUrl.code, 0);
    assert.match(badUrl.stderr, /flags: etcd\.endpoints\[0\]: .*http\(s\):\/\/host:port/);
  });
});

/** The hub's control-plane CA as the hubs keep it in etcd (key control-plane/ca). */
async function etcdCa(etcd: EtcdCluster): Promise<string> {
  const store = openEtcdStore({ endpoints: etcd.endpoints, prefix: "/process/" });
  try {
    const entry = await store.get("control-plane/ca");
    return (entry!.value as { certPem: string }).certPem;
  } finally {
    await store.close();
  }
}
