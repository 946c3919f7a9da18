import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Action, AdminService, clientCredentials, createClient } from "@isthmus/proto";
import { isthmusBin } from "../helpers/cli.js";
import { ADMIN_TOKEN, admin } from "../helpers/hub-fixture.js";

async function startHubProcess(
  dataDir: string,
  tokenFile: string,
): Promise<{ child: ChildProcess; port: number }> {
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
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  // The hub says where it listens in its log (stderr, JSON lines): its "hub ready" line.
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /^\{.*"message":"hub ready".*\}$/m.exec(stderr);
      if (m === null) return;
      const ready = JSON.parse(m[0]) as Record<string, string | number>;
      // How a client gets the CA and the admin token, and the command that makes a context.
      assert.equal(ready.caFile, join(dataDir, "control-plane", "ca-cert.pem"));
      assert.equal(ready.adminTokens, `--admin-token-file ${tokenFile}`);
      assert.match(
        String(ready.cli),
        /^isthmus config set-context hub --hub 127\.0\.0\.1:\d+ --ca /,
      );
      assert.doesNotMatch(stderr, new RegExp(ADMIN_TOKEN));
      resolve(Number(ready.port));
    });
    child.once("exit", (code) => reject(new Error(`hub exited with ${code}: ${stderr}`)));
  });
  // One stream: nothing but the log, and the log on stderr only.
  assert.equal(stdout, "");
  return { child, port };
}

describe("hub process", function () {
  this.timeout(120_000);

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
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
