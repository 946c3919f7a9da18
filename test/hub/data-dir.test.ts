import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHub } from "@isthmus/hub";
import { Action } from "@isthmus/proto";
import { admin, type HubFixture, hubConfig, startHub, viewer } from "../helpers/hub-fixture.js";

/** Starts a hub on `dataDir` and closes it; resolves with what createHub threw, if anything. */
async function startError(dataDir: string, init = false): Promise<Error | undefined> {
  try {
    const hub = await createHub({ config: hubConfig(dataDir), init });
    await hub.close();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
}

const literal = (s: string) => s.replace(/[/.*+?^${}()|[\]\\]/g, "\\$&");

describe("hub data dir", function () {
  this.timeout(60_000);
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHub();
  });
  afterEach(async () => {
    await f.close();
  });

  it("refuses to start when state.json of an initialised data dir is missing, unless --init", async () => {
    await f.admin.createCluster({ cluster: { id: "a" } }, admin);
    await f.hub.close();
    const file = join(f.dataDir, "state.json");
    unlinkSync(file);
    const err = await startError(f.dataDir);
    assert.match(
      err?.message ?? "no error",
      new RegExp(
        `^${literal(file)}: missing, but ${literal(f.dataDir)} was initialised before .*restore the file from a backup, or start the hub once with --init`,
      ),
    );
    assert.equal(existsSync(file), false, "nothing is created without --init");

    assert.equal(await startError(f.dataDir, true), undefined);
    await f.restart(); // state.json exists again: no --init needed
    assert.deepEqual((await f.admin.listClusters({}, viewer)).clusters, []);
  });

  it("starts with --init on purpose, and refuses --init when state.json exists", async () => {
    await f.hub.close();
    unlinkSync(join(f.dataDir, "state.json"));
    assert.equal(await startError(f.dataDir, true), undefined);
    const err = await startError(f.dataDir, true);
    assert.match(err?.message ?? "no error", /state\.json: exists; --init only starts a data dir/);
    // f.close() closes the fixture's hub again: give it a running one.
    await f.restart();
  });

  it("starts a new data dir with an empty store file, so that losing it later is noticed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "isthmus-new-"));
    try {
      assert.equal(await startError(dir), undefined);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")), {
        revision: 0,
        entries: {},
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the file and the key of a damaged entry", async () => {
    await f.admin.createCluster({ cluster: { id: "a" } }, admin);
    await f.admin.applyPolicies(
      {
        policies: [
          {
            name: "p",
            priority: 1,
            action: Action.ALLOW,
            from: [{ namespaces: ["web"] }],
            to: [{ namespaces: ["db"] }],
          },
        ],
      },
      admin,
    );
    await f.hub.close();
    const file = join(f.dataDir, "state.json");
    const good = readFileSync(file, "utf8");
    const damage = (
      edit: (entries: Record<string, { value: Record<string, unknown> }>) => void,
    ) => {
      const state = JSON.parse(good);
      edit(state.entries);
      writeFileSync(file, JSON.stringify(state));
    };
    const cases: [
      string,
      (e: Record<string, { value: Record<string, unknown> }>) => void,
      string,
    ][] = [
      [
        "cluster message",
        (e) => (e["clusters/a"]!.value.cluster = { id: 5 }),
        'entry "clusters/a": ',
      ],
      [
        "token hash",
        (e) => (e["clusters/a"]!.value.tokenHash = 1),
        'entry "clusters/a": tokenHash: must be a string',
      ],
      [
        "policy glob",
        (e) => ((e["policies/p"]!.value as { from: unknown }).from = [{ namespaces: ["w{"] }]),
        'entry "policies/p": invalid policy "p": from[0].namespaces[0]: invalid glob "w{": unclosed "{"',
      ],
    ];
    for (const [what, edit, message] of cases) {
      damage(edit);
      const err = await startError(f.dataDir);
      assert.ok(
        err?.message.startsWith(`${file}: ${message}`),
        `${what}: ${err?.message ?? "no error"}`,
      );
    }
    writeFileSync(file, good);
    await f.restart();
  });

  it("removes temp files that a crash left and creates the hub CA as one unit", async () => {
    await f.hub.close();
    const stale = [".state.json.4242.tmp", "control-plane.4243.tmp"];
    writeFileSync(join(f.dataDir, stale[0]!), "{half");
    mkdirSync(join(f.dataDir, stale[1]!));
    writeFileSync(join(f.dataDir, stale[1]!, "ca-key.pem"), "half");
    await f.restart();
    assert.deepEqual(readdirSync(f.dataDir).sort(), ["control-plane", "state.json"]);

    // A fresh data dir gets both CA files, key 0600, and no temp folder.
    const dir = mkdtempSync(join(tmpdir(), "isthmus-ca-"));
    try {
      assert.equal(await startError(dir), undefined);
      assert.deepEqual(readdirSync(dir).sort(), ["control-plane", "state.json"]);
      assert.deepEqual(readdirSync(join(dir, "control-plane")).sort(), [
        "ca-cert.pem",
        "ca-key.pem",
      ]);
      assert.equal(statSync(join(dir, "control-plane", "ca-key.pem")).mode & 0o777, 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the missing file of a half-written hub CA (what a crash between two writes left)", async () => {
    await f.hub.close();
    const certFile = join(f.dataDir, "control-plane", "ca-cert.pem");
    const cert = readFileSync(certFile);
    unlinkSync(certFile);
    const err = await startError(f.dataDir);
    assert.match(
      err?.message ?? "no error",
      new RegExp(
        `^${literal(certFile)}: missing while .*ca-key\\.pem exists: the hub CA is incomplete`,
      ),
    );
    writeFileSync(certFile, cert);
    await f.restart();
  });
});
