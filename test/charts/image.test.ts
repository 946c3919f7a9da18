// The image cannot be built here (no Docker engine): these checks hold docker/Dockerfile to
// the repository and to the charts that run it.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { IMAGE_ENV } from "../../bench/harness.js";
import { at, loadChart, skeleton } from "./chart.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dockerfile = readFileSync(join(ROOT, "docker/Dockerfile"), "utf8");
const dockerignore = readFileSync(join(ROOT, "docker/Dockerfile.dockerignore"), "utf8");
const rootPackage = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  workspaces: string[];
};
/** Instructions, continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, " ")
  .split("\n")
  .filter((l) => l.trim() !== "" && !l.startsWith("#"));

describe("docker/Dockerfile", () => {
  it("installs the production dependencies of every workspace from the lock file", () => {
    for (const workspace of rootPackage.workspaces) {
      assert.ok(
        instructions.includes(`COPY ${workspace}/package.json ${workspace}/`),
        `${workspace}/package.json copied before npm ci`,
      );
    }
    assert.ok(instructions.includes("COPY package.json package-lock.json ./"));
    const ci = instructions.findIndex((l) => l.startsWith("RUN npm ci --omit=dev "));
    const sources = instructions.indexOf("COPY packages/ packages/");
    assert.ok(ci > 0 && sources > ci, "npm ci, then the sources");
    assert.match(instructions[0]!, /^FROM node:20-slim$/);
  });

  it("sets the environment the benchmarks measure the processes with", () => {
    const env = instructions
      .filter((l) => l.startsWith("ENV "))
      .flatMap((l) => l.slice("ENV ".length).trim().split(/\s+/));
    for (const [name, value] of Object.entries(IMAGE_ENV)) {
      assert.ok(env.includes(`${name}=${value}`), `ENV ${name}=${value} (bench/harness.ts)`);
    }
  });

  it("keeps tsx, which runs the TypeScript sources, among the production dependencies", () => {
    const cli = JSON.parse(readFileSync(join(ROOT, "packages/cli/package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    assert.match(readFileSync(join(ROOT, "packages/cli/bin/isthmus.js"), "utf8"), /from "tsx\//);
    assert.ok(cli.dependencies?.tsx, "@isthmus/cli depends on tsx (npm ci --omit=dev keeps it)");
  });

  it("runs `isthmus` as the numeric non-root user the charts expect", () => {
    const entrypoint = instructions.find((l) => l.startsWith("ENTRYPOINT "))!;
    const [node, script] = JSON.parse(entrypoint.slice("ENTRYPOINT ".length)) as string[];
    assert.equal(node, "node");
    assert.equal(script, "/opt/isthmus/packages/cli/bin/isthmus.js");
    assert.ok(existsSync(join(ROOT, "packages/cli/bin/isthmus.js")));
    const user = /^USER (\d+):(\d+)$/m.exec(instructions.join("\n"));
    assert.ok(user, "USER uid:gid, numeric so that the kubelet can check runAsNonRoot");
    for (const name of ["isthmus-hub", "isthmus-agent"]) {
      const pod = loadChart(name).values.podSecurityContext as Record<string, number>;
      assert.equal(String(pod.runAsUser), user[1], name);
      assert.equal(String(pod.runAsGroup), user[2], name);
    }
  });

  it("exposes the ports the charts' containers declare", () => {
    const exposed = /^EXPOSE (.+)$/m.exec(instructions.join("\n"))![1]!.split(" ").map(Number);
    for (const name of ["isthmus-hub", "isthmus-agent"]) {
      const chart = loadChart(name);
      const [deployment] = skeleton(chart.templates.get("deployment.yaml")!, name);
      const ports = at(deployment, "spec.template.spec.containers") as {
        ports: { containerPort: number }[];
      }[];
      for (const port of ports[0]!.ports) assert.ok(exposed.includes(port.containerPort), name);
    }
  });

  it("sends only the manifests and sources as build context, never node_modules", () => {
    const lines = dockerignore.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    assert.deepEqual(lines.slice(0, 4), ["*", "!package.json", "!package-lock.json", "!packages/"]);
    assert.ok(lines.includes("**/node_modules"));
  });
});
