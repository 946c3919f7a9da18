// The images cannot be built here (no Docker engine): these checks hold docker/Dockerfile to
// the repository, to dist/ and to the charts that run it. They need `npm run build` first
// (`npm test` runs it).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { IMAGE_ENV } from "../../bench/harness.js";
import { CHARTS_DIR, loadChart } from "./chart.js";
import { at, ensureRenderer, renderChart } from "./render.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const dockerfile = readFileSync(join(ROOT, "docker/Dockerfile"), "utf8");
const dockerignore = readFileSync(join(ROOT, "docker/Dockerfile.dockerignore"), "utf8");
const rootPackage = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  workspaces: string[];
};

interface Stage {
  name: string;
  base: string;
  /** Instructions after FROM, continuation lines joined, comments dropped. */
  instructions: string[];
}

/** The stages of the Dockerfile, in order. */
function stages(text: string): Stage[] {
  const out: Stage[] = [];
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  for (const line of lines) {
    const from = /^FROM (\S+) AS (\S+)$/.exec(line);
    if (from) out.push({ base: from[1]!, name: from[2]!, instructions: [] });
    else {
      assert.ok(out.length > 0, `"${line}" before the first FROM … AS …`);
      out.at(-1)!.instructions.push(line);
    }
  }
  return out;
}

const STAGES = stages(dockerfile);
const stage = (name: string) => {
  const found = STAGES.find((s) => s.name === name);
  assert.ok(found, `stage ${name}`);
  return found;
};

/** `COPY [--from=stage] src… dest` of a stage. */
function copies(s: Stage): { from: string | undefined; sources: string[]; dest: string }[] {
  return s.instructions
    .filter((l) => l.startsWith("COPY "))
    .map((l) => {
      const words = l.split(/\s+/).slice(1);
      const from = words[0]!.startsWith("--from=") ? words.shift()!.slice(7) : undefined;
      const dest = words.pop()!;
      return { from, sources: words, dest };
    });
}

/** The files the build context holds under the .dockerignore (re-included paths only). */
function inContext(path: string): boolean {
  const rules = dockerignore.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  let included = true;
  for (const rule of rules) {
    const negated = rule.startsWith("!");
    const pattern = (negated ? rule.slice(1) : rule).replace(/\/$/, "");
    // Docker's patterns: ** spans folders, * stays within one name.
    const regex = pattern
      .split("**/")
      .map((part) =>
        part
          .split("*")
          .map((text) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^/]*"),
      )
      .join("(.*/)?");
    const re = new RegExp(`^${regex}(/.*)?$`);
    if (re.test(path.replace(/\/$/, ""))) included = negated;
  }
  return included;
}

describe("docker/Dockerfile", () => {
  it("builds on Node 24 in every stage, with hub and agent targets", () => {
    assert.deepEqual(
      STAGES.map((s) => s.name),
      ["build", "modules", "runtime", "hub", "agent"],
    );
    for (const s of STAGES.slice(0, 3)) assert.equal(s.base, "node:24-slim", s.name);
    assert.equal(stage("hub").base, "runtime");
    assert.equal(stage("agent").base, "runtime");
  });

  it("copies only files the build context holds", () => {
    for (const s of STAGES) {
      for (const copy of copies(s).filter((c) => c.from === undefined)) {
        for (const source of copy.sources) {
          assert.ok(existsSync(join(ROOT, source)), `${s.name}: COPY ${source}: exists`);
          assert.ok(
            inContext(source),
            `${s.name}: COPY ${source}: not excluded by the .dockerignore`,
          );
        }
      }
    }
    assert.ok(!inContext("packages/hub/node_modules/x"), "node_modules stays out");
    assert.ok(!inContext("packages/hub/dist/index.js"), "a local dist/ stays out");
  });

  it("compiles, then installs the production dependencies of every workspace from the lock file", () => {
    for (const name of ["build", "modules"]) {
      const s = stage(name);
      const sources = copies(s).flatMap((c) => c.sources);
      for (const workspace of rootPackage.workspaces)
        assert.ok(
          sources.includes(`${workspace}/package.json`),
          `${name}: ${workspace}/package.json`,
        );
      assert.ok(sources.includes("package-lock.json"), `${name}: the lock file`);
    }
    assert.ok(
      stage("build").instructions.includes("RUN npx tsc -b packages/cli packages/mesh-model"),
    );
    assert.ok(
      stage("modules").instructions.some((l) =>
        l.startsWith("RUN npm ci --omit=dev --ignore-scripts"),
      ),
    );
  });

  it("ships every workspace's dist/ and the launcher, never sources or dev dependencies", () => {
    const runtime = copies(stage("runtime"));
    for (const workspace of rootPackage.workspaces) {
      assert.ok(
        runtime.some((c) => c.from === "build" && c.sources.includes(`/src/${workspace}/dist/`)),
        `${workspace}/dist/ copied from the build stage`,
      );
      assert.ok(
        existsSync(join(ROOT, workspace, "dist/index.js")),
        `${workspace}/dist/index.js (npm run build)`,
      );
    }
    assert.ok(
      runtime.some((c) => c.from === "modules"),
      "production node_modules",
    );
    const all = runtime.flatMap((c) => c.sources).join(" ");
    assert.doesNotMatch(all, /\/src\/[^ ]*\/src\//, "no TypeScript sources");
    const cli = JSON.parse(readFileSync(join(ROOT, "packages/cli/package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    assert.equal(cli.dependencies.tsx, undefined, "tsx is not a production dependency");
  });

  it("runs `isthmus hub` and `isthmus agent` from dist/ with plain node", () => {
    for (const [target, command] of [
      ["hub", "hub"],
      ["agent", "agent"],
    ] as const) {
      const entry = stage(target).instructions.find((l) => l.startsWith("ENTRYPOINT "))!;
      const [node, script, sub] = JSON.parse(entry.slice("ENTRYPOINT ".length)) as string[];
      assert.equal(node, "node");
      assert.equal(script, "/opt/isthmus/packages/cli/bin/isthmus.js");
      assert.equal(sub, command);
      assert.ok(existsSync(join(ROOT, "packages/cli/bin/isthmus.js")));
    }
    // The launcher's "./main" export resolves to dist/ without the source condition.
    const cli = JSON.parse(readFileSync(join(ROOT, "packages/cli/package.json"), "utf8")) as {
      exports: Record<string, Record<string, string>>;
    };
    assert.equal(cli.exports["./main"]!.default, "./dist/main.js");
    assert.ok(existsSync(join(ROOT, "packages/cli/dist/main.js")));
    assert.ok(existsSync(join(ROOT, "packages/cli/dist/commands/hub.js")));
    assert.ok(existsSync(join(ROOT, "packages/cli/dist/commands/agent.js")));
  });

  it("has no HEALTHCHECK (Kubernetes probes), OCI labels, and a version equal to appVersion", () => {
    assert.doesNotMatch(dockerfile, /^HEALTHCHECK/m);
    const labels = STAGES.flatMap((s) => s.instructions.filter((l) => l.startsWith("LABEL "))).join(
      " ",
    );
    for (const key of ["title", "description", "version", "vendor"])
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), key);
    const version = /org\.opencontainers\.image\.version="([^"]+)"/.exec(labels)![1];
    for (const name of ["isthmus-hub", "isthmus-agent"])
      assert.equal(loadChart(name).chartYaml.appVersion, version, name);
  });

  it("sets the environment the benchmarks measure the processes with", () => {
    const env = stage("runtime")
      .instructions.filter((l) => l.startsWith("ENV "))
      .flatMap((l) => l.slice("ENV ".length).trim().split(/\s+/));
    for (const [name, value] of Object.entries(IMAGE_ENV)) {
      assert.ok(env.includes(`${name}=${value}`), `ENV ${name}=${value} (bench/harness.ts)`);
    }
  });

  it("runs as the numeric non-root user the charts expect, exposing the ports they declare", () => {
    const runtime = stage("runtime").instructions.join("\n");
    const user = /^USER (\d+):(\d+)$/m.exec(runtime);
    assert.ok(user, "USER uid:gid, numeric so that the kubelet can check runAsNonRoot");
    ensureRenderer();
    for (const [name, target] of [
      ["isthmus-hub", "hub"],
      ["isthmus-agent", "agent"],
    ] as const) {
      const chart = loadChart(name);
      const pod = chart.values.podSecurityContext as Record<string, number>;
      assert.equal(String(pod.runAsUser), user[1], name);
      assert.equal(String(pod.runAsGroup), user[2], name);
      const files =
        name === "isthmus-agent"
          ? [fileURLToPath(new URL("./testdata/values/agent-cli.yaml", import.meta.url))]
          : [];
      const deployment = renderChart(join(CHARTS_DIR, name), files).objects.find(
        (o) => o.kind === "Deployment",
      );
      const [container] = at(deployment, "spec.template.spec.containers") as {
        image: string;
        ports: { containerPort: number }[];
      }[];
      assert.equal(container!.image, `${name}:${chart.chartYaml.appVersion}`);
      const exposed = /^EXPOSE (.+)$/m
        .exec(stage(target).instructions.join("\n"))![1]!
        .split(" ")
        .map(Number);
      for (const port of container!.ports)
        assert.ok(exposed.includes(port.containerPort), `${name}: ${port.containerPort}`);
    }
  });
});
