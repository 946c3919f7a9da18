// `isthmus sandbox` as a new user meets it: run as a process, it prints commands that work as
// printed from any folder, stops on Ctrl-C without warnings, and started again on its own
// folder reuses the hub's state instead of hanging.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isthmusBin, repoRoot } from "../helpers/cli.js";

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startSandboxProcess(dir: string): Run {
  const child = spawn(process.execPath, [isthmusBin, "sandbox", "--clusters", "1", "--dir", dir], {
    cwd: repoRoot,
    env: { ...process.env, ISTHMUS_CONFIG: "", ISTHMUS_CONTEXT: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function running(run: Run): Promise<void> {
  while (!run.stdout().includes("Ctrl-C stops everything.")) {
    const exited = await Promise.race([
      run.exited.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 100)),
    ]);
    if (exited) throw new Error(`sandbox exited: ${run.stdout()}${run.stderr()}`);
  }
}

describe("isthmus sandbox as a process", function () {
  this.timeout(240_000);
  const dir = mkdtempSync(join(tmpdir(), "isthmus-sandbox-cmd-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("prints working commands, stops on Ctrl-C, and reuses its folder when started again", async () => {
    const first = startSandboxProcess(dir);
    try {
      await running(first);
      const out = first.stdout();
      const exported = /^ {2}export ISTHMUS_CONFIG=(\S+)$/m.exec(out);
      const status = /^ {2}(.+) status$/m.exec(out);
      assert.ok(exported && status, out);
      assert.equal(exported[1], join(dir, "isthmus.yaml"));
      // The status command as printed (`isthmus` when that is this CLI on PATH, else node and
      // the launcher), run by a shell in another folder with the printed environment.
      const { stdout } = await promisify(execFile)("bash", ["-c", `${status[1]} status`], {
        cwd: tmpdir(),
        env: { ...process.env, ISTHMUS_CONFIG: exported[1]! },
      });
      assert.match(stdout, /^prod-eu +yes +yes /m);
    } finally {
      first.child.kill("SIGINT");
    }
    assert.equal(await first.exited, 0, first.stderr());
    assert.equal(first.stderr(), "", "no warnings on Ctrl-C");

    // Started again on the same folder: the earlier state is reused (said so), no hang.
    const second = startSandboxProcess(dir);
    try {
      await running(second);
      assert.match(
        second.stdout(),
        /^sandbox running: hub at \S+, 1 clusters \(hub state reused\)$/m,
      );
      assert.equal(
        second.stderr(),
        `reusing ${dir} of an earlier sandbox: its policies are kept, its clusters start anew (use a new --dir for a clean start)\n`,
      );
    } finally {
      second.child.kill("SIGTERM");
    }
    assert.equal(await second.exited, 0, second.stderr());
  });
});
