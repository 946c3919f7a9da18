// scripts/real-mesh/run.sh needs Docker, kind, helm and the internet; these machines have no
// Docker engine. Here: the script parses (bash -n), and without a Docker engine it says that
// it skipped and exits 0, touching nothing. `DOCKER` names a docker that does not exist, so
// that the skip is tested on a machine with Docker too.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../helpers/cli.js";

const script = join(repoRoot, "scripts/real-mesh/run.sh");

describe("scripts/real-mesh/run.sh", () => {
  it("is valid bash (bash -n)", () => {
    const r = spawnSync("bash", ["-n", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  });

  it("without a Docker engine prints that it skipped and exits 0", () => {
    const r = spawnSync("bash", [script], {
      encoding: "utf8",
      env: { ...process.env, DOCKER: "/nonexistent/docker", WORK: "/nonexistent/work" },
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(
      r.stdout,
      "real-mesh: skipped: no Docker engine ('/nonexistent/docker' is not on PATH); kind needs one (docs/real-mesh.md)\n",
    );
  });

  it("on this machine: skips when Docker is missing or not running, says which", function () {
    const r = spawnSync("bash", [script], {
      encoding: "utf8",
      env: { ...process.env, WORK: "/nonexistent/work" },
      timeout: 30_000,
    });
    const docker = spawnSync("docker", ["info"], { stdio: "ignore" });
    if (docker.status === 0) this.skip(); // a Docker engine: the script would really run
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^real-mesh: skipped: /);
  });
});
