import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Action, AdminService, clientCredentials, createClient } from "@isthmus/proto";
import { isthmusBin, runIsthmus } from "../helpers/cli.js";
import { ADMIN_TOKEN, admin } from "../helpers/hub-fixture.js";

async function startHubProcess(
  dataDir: string,
  tokenFile: string,
): Promise<{ child: ChildProcess; port: number; stdout: () => string }> {
  const child = spawn(
    process.execPath,
    [
      isthmusBin,
      "hub",
      "--listen",
      "127.0.0.1:0",
      "--metrics-listen",
      "",
      "--data-dir",
      dataDir,
      "--admin-token-file",
      tokenFile,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ISTHMUS_LOG_FORMAT: "json", ISTHMUS_LOG_LEVEL: "info" },
    },
  );
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  // One stream: JSON log lines on stderr, the "hub started" record with the ports among them.
  const port = await new Promise<number>((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      for (const line of stderr.split("\n").slice(0, -1)) {
        const record = JSON.parse(line) as { message?: string; port?: number };
        if (record.message === "hub started") resolve(record.port!);
      }
    });
    child.once("exit", (code) => reject(new Error(`hub exited with ${code}: ${stderr}`)));
  });
  return { child, port, stdout: () => stdout };
}

describe("hub process", function () {
  this.timeout(120_000);

  it("logs in the chosen format on stderr alone, a failure to start included", async () => {
    const dir = mkdtempSync(join(tmpdir(), "isthmus-hub-log-"));
    try {
      const bad = await runIsthmus(["hub", "--log-format", "xml"]);
      assert.equal(bad.code, 2);
      assert.equal(
        bad.stderr,
        'isthmus: --log-format: invalid log format "xml" (expected one of json, text)\n',
      );
      // A data dir that is a file: the hub cannot start, and says so as a log line.
      const file = join(dir, "not-a-dir");
      writeFileSync(file, "");
      const args = ["hub", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", file];
      const env = { ISTHMUS_LOG_FORMAT: "json", ISTHMUS_LOG_LEVEL: "info" };
      const text = await runIsthmus([...args, "--log-format", "text"], env);
      assert.equal(text.code, 1, text.stderr);
      assert.equal(text.stdout, "");
      const [first, ...stack] = text.stderr.trimEnd().split("\n");
      assert.match(first!, /^\S+Z error hub failed to start component=hub err="[^"]*not-a-dir/);
      assert.ok(stack.length > 1 && stack.every((l) => l.startsWith("    ")), text.stderr);

      const json = await runIsthmus(args, env);
      assert.equal(json.code, 1, json.stderr);
      assert.equal(json.stdout, "");
      const records = json.stderr
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(
        records.map((r) => [r.level, r.message]),
        [["error", "hub failed to start"]],
      );
      assert.match(String(records[0]!.stack), /\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps every acknowledged write across kill -9", async () => {
    const dir = mkdtempSync(join(tmpdir(), "isthmus-hub-proc-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, ADMIN_TOKEN);
    const dataDir = join(dir, "data");
    try {
      const first = await startHubProcess(dataDir, tokenFile);
      const ca = readFileSync(join(dataDir, "control-plane/ca-cert.pem"), "utf8");
      let client = createClient(
        AdminService,
        `localhost:${first.port}`,
        clientCredentials({ caPem: ca }),
      );
      const acked: string[] = [];
      const writer = (async () => {
        for (let i = 0; ; i++) {
          const name = `p-${i}`;
          try {
            await client.applyPolicies(
              {
                policies: [
                  {
                    name,
                    priority: i,
                    action: Action.DENY,
                    from: [{ namespaces: [`ns-${i}`] }],
                    to: [{ services: ["x"] }],
                  },
                ],
              },
              admin,
            );
          } catch {
            return;
          }
          acked.push(name);
          if (acked.length === 20) first.child.kill("SIGKILL");
        }
      })();
      await writer;
      await new Promise((r) =>
        first.child.exitCode !== null || first.child.signalCode !== null
          ? r(undefined)
          : first.child.once("exit", r),
      );
      assert.equal(first.child.signalCode, "SIGKILL");
      client.close();

      const second = await startHubProcess(dataDir, tokenFile);
      client = createClient(
        AdminService,
        `localhost:${second.port}`,
        clientCredentials({ caPem: ca }),
      );
      try {
        const stored = new Set((await client.listPolicies({}, admin)).policies.map((p) => p.name));
        assert.ok(acked.length >= 20);
        for (const name of acked) assert.ok(stored.has(name), `acknowledged ${name} lost`);
      } finally {
        client.close();
        second.child.kill("SIGTERM");
        await new Promise((r) => second.child.once("exit", r));
      }
      assert.equal(second.stdout(), "", "the hub writes its log, and nothing else, to stderr");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
