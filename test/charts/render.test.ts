// Both charts rendered by the real Go template engine (tools/chart-render) with their
// defaults and with the values files of testdata/values/, then: every manifest parses, the
// server accepts it (`kubectl apply --dry-run=server` against kubesim), labels, security
// context, probes and RBAC verbs hold; and deliberately broken templates
// (testdata/broken/) make these checks fail. With helm on PATH, `helm lint` and
// `helm template` must agree with the renderer.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeSim, startKubeSim } from "@isthmus/kubesim";
import { CHARTS_DIR } from "./chart.js";
import {
  type AllowedRule,
  at,
  CLUSTER_SCOPED,
  checkLabels,
  checkPod,
  checkRbac,
  ensureRenderer,
  type K8sObject,
  NAMESPACE,
  parseManifests,
  RELEASE,
  renderChart,
  renderNotes,
} from "./render.js";

const TESTDATA = new URL("./testdata/", import.meta.url).pathname;
const values = (name: string) => join(TESTDATA, "values", name);

/** What the agent may do, and nothing more (packages/agent/README.md "Discovery"). */
const AGENT_RBAC: readonly AllowedRule[] = [
  {
    apiGroup: "",
    resources: ["services", "pods", "namespaces", "nodes"],
    verbs: ["get", "list", "watch"],
  },
  { apiGroup: "discovery.k8s.io", resources: ["endpointslices"], verbs: ["get", "list", "watch"] },
  { apiGroup: "networking.istio.io", resources: ["gateways"], verbs: ["get", "list", "watch"] },
  {
    apiGroup: "networking.istio.io",
    resources: ["serviceentries", "destinationrules"],
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
  },
  {
    apiGroup: "security.istio.io",
    resources: ["authorizationpolicies"],
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
  },
  {
    apiGroup: "",
    resources: ["configmaps"],
    verbs: ["get", "list", "watch"],
    namespacedOnly: true,
  },
  {
    apiGroup: "",
    resources: ["secrets"],
    verbs: ["get", "update"],
    resourceNames: ["isthmus-agent-identity"],
    namespacedOnly: true,
  },
  // meshCaSecret (agent-everything.yaml): Istio's plug-in CA Secret, read by name.
  {
    apiGroup: "",
    resources: ["secrets"],
    verbs: ["get"],
    resourceNames: ["cacerts"],
    namespacedOnly: true,
  },
  { apiGroup: "", resources: ["secrets"], verbs: ["create"], namespacedOnly: true },
];

interface Case {
  chart: "isthmus-hub" | "isthmus-agent";
  files: string[];
  kinds: string[];
}

const CASES: Case[] = [
  {
    chart: "isthmus-hub",
    files: [],
    kinds: [
      "ConfigMap",
      "Deployment",
      "PersistentVolumeClaim",
      "Secret",
      "Service",
      "ServiceAccount",
    ],
  },
  {
    chart: "isthmus-hub",
    files: ["hub-production.yaml"],
    kinds: [
      "ConfigMap",
      "ConfigMap",
      "CustomResourceDefinition",
      "Deployment",
      "NetworkPolicy",
      "PersistentVolumeClaim",
      "PodDisruptionBudget",
      "PrometheusRule",
      "Secret",
      "Service",
      "ServiceAccount",
      "ServiceMonitor",
    ],
  },
  {
    chart: "isthmus-hub",
    files: ["hub-own-tls.yaml"],
    kinds: ["ConfigMap", "Deployment", "Secret", "Secret", "Service", "ServiceAccount"],
  },
  {
    chart: "isthmus-hub",
    files: ["hub-existing-secrets.yaml"],
    kinds: ["ConfigMap", "Deployment", "PodMonitor", "Service", "ServiceAccount"],
  },
  {
    chart: "isthmus-agent",
    files: ["agent-cli.yaml"],
    kinds: [
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Role",
      "Role",
      "RoleBinding",
      "RoleBinding",
      "Secret",
      "Service",
      "ServiceAccount",
    ],
  },
  {
    chart: "isthmus-agent",
    files: ["agent-cli.yaml", "agent-everything.yaml"],
    kinds: [
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "Role",
      "Role",
      "RoleBinding",
      "RoleBinding",
      "Secret",
      "Service",
      "ServiceAccount",
      "ServiceMonitor",
    ],
  },
  {
    chart: "isthmus-agent",
    files: ["agent-cli.yaml", "agent-existing-secret.yaml"],
    kinds: ["Deployment", "PodMonitor"],
  },
];

/** Checks a rendered chart as the tests below do; throws at the first problem. */
function checkRendered(chart: string, objects: readonly K8sObject[]): void {
  checkLabels(objects, chart);
  checkPod(objects.find((o) => o.kind === "Deployment")!);
  for (const o of objects) {
    if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, o.kind);
    else assert.ok(o.metadata.namespace, `${o.kind} ${o.metadata.name}: namespace set`);
  }
  if (chart === "isthmus-agent") checkRbac(objects, AGENT_RBAC);
  else checkRbac(objects, []);
}

/** kubectl against kubesim, with its own cache and no user configuration. */
function kubectl(kubeconfig: string, dir: string, args: string[], input: string) {
  return new Promise<{ code: number; out: string }>((resolve) => {
    const child = execFile(
      "kubectl",
      ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "cache"), ...args],
      { env: { ...process.env, HOME: dir, KUBECONFIG: "" }, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : Number(err.code) || 1, out: stdout + stderr }),
    );
    child.stdin!.end(input);
  });
}

/** A CustomResourceDefinition with an open schema, for the Prometheus Operator's kinds. */
function monitoringCrd(kind: string, plural: string): K8sObject {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: "monitoring.coreos.com",
      scope: "Namespaced",
      names: { plural, kind },
      versions: [{ name: "v1", served: true, storage: true }],
    },
  };
}

describe("charts rendered by the Go template engine", function () {
  this.timeout(120_000);
  let sim: KubeSim;
  let dir: string;
  let kubeconfig: string;

  before(async () => {
    ensureRenderer();
    dir = mkdtempSync(join(tmpdir(), "isthmus-chart-render-"));
    sim = await startKubeSim({ namespaces: ["default", NAMESPACE, "istio-system"] });
    sim.create(monitoringCrd("ServiceMonitor", "servicemonitors"));
    sim.create(monitoringCrd("PodMonitor", "podmonitors"));
    sim.create(monitoringCrd("PrometheusRule", "prometheusrules"));
    kubeconfig = await sim.writeKubeconfig(join(dir, "kubeconfig"));
  });

  after(async () => {
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    const label = `${c.chart} with ${c.files.length === 0 ? "its defaults" : c.files.join(" + ")}`;
    describe(label, () => {
      let objects: K8sObject[];
      let text: string;
      before(() => {
        ({ objects, text } = renderChart(join(CHARTS_DIR, c.chart), c.files.map(values)));
      });

      it("renders the expected objects, each with the chart's labels, namespaced in the release's namespace", () => {
        assert.deepEqual(objects.map((o) => o.kind).sort(), c.kinds);
        checkRendered(c.chart, objects);
      });

      it("is accepted by the API server (kubectl apply --dry-run=server)", async () => {
        const result = await kubectl(
          kubeconfig,
          dir,
          ["apply", "--dry-run=server", "-f", "-"],
          text,
        );
        assert.equal(result.code, 0, result.out);
        assert.equal(result.out.trim().split("\n").length, objects.length, result.out);
        assert.equal(sim.list("apps/v1", "Deployment", { namespace: NAMESPACE }).length, 0);
      });

      it("renders NOTES.txt", () => {
        const notes = renderNotes(join(CHARTS_DIR, c.chart), c.files.map(values));
        assert.match(notes, new RegExp(`namespace ${NAMESPACE}`));
        assert.doesNotMatch(notes, /<no value>|\{\{/);
      });
    });
  }

  it("the agent's flags come from values: cluster, hub, log format, server name, locality, extra args", () => {
    const { objects } = renderChart(join(CHARTS_DIR, "isthmus-agent"), [
      values("agent-cli.yaml"),
      values("agent-everything.yaml"),
    ]);
    const deployment = objects.find((o) => o.kind === "Deployment")!;
    const container = (
      at(deployment, "spec.template.spec.containers") as Record<string, unknown>[]
    )[0]!;
    assert.deepEqual(container.args, [
      "--cluster-id=prod-eu",
      "--hub=hub.example.com:8443",
      "--hub-ca-file=/etc/isthmus/bootstrap/hub-ca.crt",
      "--bootstrap-token-file=/etc/isthmus/bootstrap/bootstrap-token",
      "--namespace=$(POD_NAMESPACE)",
      "--istio-namespace=istio-system",
      "--listen=0.0.0.0:9090",
      "--log-format=text",
      "--hub-server-name=hub.internal.example.com",
      "--locality=eu-west-1/eu-west-1a",
      "--mesh-ca-secret=cacerts",
      "--kubeconfig=/etc/kube/config",
    ]);
    assert.equal(
      container.image,
      "isthmus-agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    assert.equal(at(deployment, "spec.template.spec.priorityClassName"), "system-cluster-critical");
  });

  it("the image tag defaults to the chart's appVersion", () => {
    for (const chart of ["isthmus-hub", "isthmus-agent"]) {
      const files = chart === "isthmus-agent" ? [values("agent-cli.yaml")] : [];
      const { objects } = renderChart(join(CHARTS_DIR, chart), files);
      const deployment = objects.find((o) => o.kind === "Deployment")!;
      const [container] = at(deployment, "spec.template.spec.containers") as { image: string }[];
      assert.equal(container!.image, `${chart}:0.1.0`);
    }
  });

  it("refuses to render the agent without a cluster id, naming the value", () => {
    assert.throws(
      () => renderChart(join(CHARTS_DIR, "isthmus-agent")),
      (err: { stderr?: string }) => /clusterId is required/.test(err.stderr ?? ""),
    );
  });

  describe("deliberately broken templates (testdata/broken/) fail the checks", () => {
    const broken = (fixture: string) => {
      const copy = mkdtempSync(join(tmpdir(), "isthmus-broken-chart-"));
      try {
        cpSync(join(CHARTS_DIR, "isthmus-agent"), join(copy, "isthmus-agent"), { recursive: true });
        // The unmodified copy passes: the fixture alone makes the difference.
        checkRendered(
          "isthmus-agent",
          renderChart(join(copy, "isthmus-agent"), [values("agent-cli.yaml")]).objects,
        );
        cpSync(
          join(TESTDATA, "broken", fixture),
          join(copy, "isthmus-agent/templates/zz-fixture.yaml"),
        );
        const { objects } = renderChart(join(copy, "isthmus-agent"), [values("agent-cli.yaml")]);
        checkRendered("isthmus-agent", objects);
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    };

    it("an if without its end: the renderer refuses the template", () => {
      assert.throws(
        () => broken("unclosed-if.yaml"),
        (e: { stderr?: string }) => /unexpected EOF/.test(e.stderr ?? ""),
      );
    });

    it("a condition comparing a number with a string: the renderer fails where it runs", () => {
      assert.throws(
        () => broken("incomparable-condition.yaml"),
        (e: { stderr?: string }) => /error calling eq: incompatible types/.test(e.stderr ?? ""),
      );
    });

    it("labels indented one level too little: valid YAML, caught by the label check", () => {
      assert.throws(
        () => broken("labels-outdented.yaml"),
        /ConfigMap isthmus-system\/isthmus-isthmus-agent-broken: label helm.sh\/chart/,
      );
    });

    it("a block indented deeper than its parent: the manifest is not YAML", () => {
      assert.throws(() => broken("list-misindented.yaml"), /zz-fixture.yaml: not YAML/);
    });
  });

  describe("with helm on PATH", () => {
    const helm = spawnSync("helm", ["version", "--short"], { encoding: "utf8" });
    for (const c of CASES) {
      it(`helm lint and helm template agree with the renderer: ${c.chart} ${c.files.join(" + ")}`, function () {
        if (helm.status !== 0) this.skip(); // no helm here: the Go renderer alone
        const files = c.files.flatMap((f) => ["-f", values(f)]);
        const chart = join(CHARTS_DIR, c.chart);
        const lint = spawnSync("helm", ["lint", chart, ...files], { encoding: "utf8" });
        assert.equal(lint.status, 0, lint.stdout + lint.stderr);
        const template = spawnSync(
          "helm",
          ["template", RELEASE, chart, "-n", NAMESPACE, ...files],
          {
            encoding: "utf8",
          },
        );
        assert.equal(template.status, 0, template.stderr);
        // helm sorts the objects by kind (its install order) and the generated admin token
        // differs between runs (so does the checksum over it): compare the objects, sorted,
        // with those left out.
        const normalize = (text: string) =>
          parseManifests(
            text.replace(/token: "[^"]*"/g, 'token: ""').replace(/checksum\/\S+: \S+/g, ""),
          )
            .map((o) => JSON.stringify(o))
            .sort();
        const ours = renderChart(chart, c.files.map(values)).text;
        assert.deepEqual(normalize(template.stdout), normalize(ours));
      });
    }
  });
});
