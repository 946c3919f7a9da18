import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../../packages/kubesim/src/main.ts", import.meta.url));

function kubectl(
  kubeconfig: string,
  cache: string,
  args: string[],
): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      "kubectl",
      ["--kubeconfig", kubeconfig, "--cache-dir", cache, ...args],
      (err, stdout) => resolve({ code: err === null ? 0 : 1, stdout }),
    );
  });
}

describe("kubesim as a process", function () {
  this.timeout(60000);

  it("hosts several clusters, one port each, with Istio scenes, and exits cleanly on SIGTERM", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kubesim-process-"));
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        main,
        "--cluster",
        "east",
        "--cluster",
        "west",
        "--istio",
        "--kubeconfig-dir",
        dir,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    try {
      let out = "";
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (c: Buffer) => {
          out += c.toString();
          if (out.split("\n").length > 2) resolve();
        });
        child.on("exit", (code) => reject(new Error(`kubesim exited early with ${code}`)));
      });
      const clusters = out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { cluster: string; url: string; kubeconfig: string });
      assert.deepEqual(
        clusters.map((c) => c.cluster),
        ["east", "west"],
      );
      assert.notEqual(clusters[0]?.url, clusters[1]?.url);
      for (const c of clusters) {
        const res = await kubectl(c.kubeconfig, join(dir, "cache"), [
          "get",
          "namespace",
          "istio-system",
          "-o",
          "jsonpath={.metadata.labels.topology\\.istio\\.io/network}",
        ]);
        assert.equal(res.code, 0);
        assert.equal(res.stdout, `network-${c.cluster}`);
      }
      const exited = new Promise<number | null>((resolve) =>
        child.on("exit", (code) => resolve(code)),
      );
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
