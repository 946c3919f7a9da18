import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { AGENT_FLAGS, IDENTITY_SECRET } from "@isthmus/agent";
import { parse } from "yaml";
import { at, CHARTS_DIR, loadChart, mergeValues, type Values, valuesValidator } from "./chart.js";
import { ensureRenderer, NAMESPACE, renderChart } from "./render.js";

const chart = loadChart("isthmus-agent");
const validate = valuesValidator(chart);
const template = (file: string) => {
  const text = chart.templates.get(file);
  assert.ok(text, `templates/${file} exists`);
  return text;
};
ensureRenderer();
/** The objects a template renders with the values `isthmus install` writes. */
const rendered = renderChart(join(CHARTS_DIR, "isthmus-agent"), [
  values("agent-cli.yaml"),
]).byTemplate;
const objects = (file: string) => rendered.get(file) ?? [];
/** The names the release gets in the render (release "isthmus", namespace "isthmus-system"). */
const FULLNAME = "isthmus-isthmus-agent";
function values(file: string): string {
  return fileURLToPath(new URL(`./testdata/values/${file}`, import.meta.url));
}
/** The agent's container as the Go template engine renders it with these values files. */
function renderedDeployment(files: string[]): { args: string[] }[] {
  const { objects: all } = renderChart(join(CHARTS_DIR, "isthmus-agent"), files);
  const deployment = all.find((o) => o.kind === "Deployment");
  return at(deployment, "spec.template.spec.containers") as { args: string[] }[];
}

/** What `isthmus install` writes into values-<cluster>.yaml. */
const CLI_VALUES: Values = {
  clusterId: "prod-eu",
  hub: {
    address: "hub.example.com:8443",
    caPem: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
  },
  bootstrapToken: "Zm9vYmFyYmF6cXV4cXV1eA",
};
const withValues = (...overrides: Values[]) =>
  validate(overrides.reduce((acc, o) => mergeValues(acc, o), chart.values));

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** The body of a one-line helper. */
function helperValue(name: string): string | undefined {
  return new RegExp(`\\{\\{- define "${name}" -\\}\\}\\n([^\\n{]+)\\n\\{\\{- end \\}\\}`).exec(
    chart.helpers,
  )?.[1];
}

describe("chart isthmus-agent: values schema", () => {
  it("refuses the bare defaults, naming every value the CLI writes", () => {
    const errors = validate(chart.values);
    for (const path of ["/clusterId", "/hub/address", "/bootstrapToken", "/hub/caPem"]) {
      assert.ok(
        errors.some((e) => e.startsWith(`${path}: `)),
        `${path} in ${errors.join("; ")}`,
      );
    }
  });

  it("accepts the values file `isthmus install` writes, or an existing Secret instead", () => {
    assert.deepEqual(withValues(CLI_VALUES), []);
    assert.deepEqual(
      withValues({
        clusterId: "dev",
        hub: { address: "10.0.0.7:8443" },
        existingSecret: "agent-bootstrap",
      }),
      [],
    );
    assert.deepEqual(withValues(CLI_VALUES, { hub: { address: "[fd00::7]:8443" } }), []);
  });

  it("names a bad cluster id, hub address or token, and a typo", () => {
    assert.deepEqual(withValues(CLI_VALUES, { clusterId: "Prod_EU" }), [
      '/clusterId: must match pattern "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"',
    ]);
    assert.deepEqual(withValues(CLI_VALUES, { clusterId: "a".repeat(64) }), [
      "/clusterId: must NOT have more than 63 characters",
    ]);
    const noPort = withValues(CLI_VALUES, { hub: { address: "hub.example.com" } });
    assert.equal(noPort.length, 1);
    assert.match(noPort[0]!, /^\/hub\/address: must match pattern/);
    assert.ok(
      withValues(CLI_VALUES, { bootstrapToken: "short" }).includes(
        "/bootstrapToken: must NOT have fewer than 16 characters",
      ),
    );
    assert.deepEqual(withValues(CLI_VALUES, { hub: { adress: "x:1" } }), [
      '/hub: unknown value "adress"',
    ]);
    assert.deepEqual(withValues(CLI_VALUES, { rbac: { create: "false" } }), [
      "/rbac/create: must be boolean",
    ]);
  });
});

describe("chart isthmus-agent: templates", () => {
  const [deployment] = objects("deployment.yaml");
  const podSpec = at(deployment, "spec.template.spec") as {
    containers: {
      args: string[];
      env: { name: string; valueFrom?: unknown; value?: string }[];
      volumeMounts: { name: string; mountPath: string }[];
    }[];
    volumes: { name: string; secret?: { items: { key: string; path: string }[] } }[];
    automountServiceAccountToken: boolean;
  };
  const container = podSpec.containers[0]!;

  it("runs the agent with the cluster id, hub address and namespace (rendered)", () => {
    const [rendered] = renderedDeployment([values("agent-cli.yaml")]);
    assert.deepEqual(rendered.args, [
      "--cluster-id=prod-eu",
      "--hub=hub.example.com:8443",
      "--hub-ca-file=/etc/isthmus/bootstrap/hub-ca.crt",
      "--bootstrap-token-file=/etc/isthmus/bootstrap/bootstrap-token",
      "--namespace=$(POD_NAMESPACE)",
      "--istio-namespace=istio-system",
      "--listen=0.0.0.0:9090",
      "--log-format=json",
    ]);
    assert.deepEqual(
      container.env.find((e) => e.name === "POD_NAMESPACE"),
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    );
    // It talks to the Kubernetes API with its ServiceAccount.
    assert.equal(podSpec.automountServiceAccountToken, true);
  });

  it("passes only flags the agent accepts, and every flag it requires", () => {
    // Every optional flag on (agent-everything.yaml), extraArgs included.
    const [rendered] = renderedDeployment([
      values("agent-cli.yaml"),
      values("agent-everything.yaml"),
    ]);
    // parseAgentConfig has allowPositionals: false: each arg is one `--flag=value`.
    const flags = rendered.args.map((arg) => {
      const m = /^--([a-z0-9-]+)=.+$/.exec(arg);
      assert.ok(m, `"${arg}" is one --flag=value`);
      return m[1]!;
    });
    const known = Object.keys(AGENT_FLAGS);
    assert.deepEqual(
      flags.filter((f) => !known.includes(f)),
      [],
      `flags the agent rejects (it accepts ${known.join(", ")})`,
    );
    assert.equal(new Set(flags).size, flags.length, "no flag twice");
    for (const required of ["cluster-id", "hub", "hub-ca-file"])
      assert.ok(flags.includes(required), `--${required} is passed`);
    // Every flag the agent has is settable from values, except the kubeconfig (in-cluster).
    assert.deepEqual(
      known.filter((f) => !flags.includes(f)),
      [],
      "agent flags the chart cannot set",
    );
    // The same parse as parseAgentConfig (strict, no positionals) accepts the rendered args.
    const options = Object.fromEntries(known.map((k) => [k, { type: "string" as const }]));
    assert.doesNotThrow(() =>
      parseArgs({ args: rendered.args, options, strict: true, allowPositionals: false }),
    );
    // README.md's flag table lists the chart's own flags, in order (extraArgs come last).
    const section = chart.readme.slice(
      chart.readme.indexOf("## The container"),
      chart.readme.indexOf("\n## ", chart.readme.indexOf("## The container") + 1),
    );
    const rows = [...section.matchAll(/^\| `--([a-z0-9-]+)` \|/gm)].map((m) => m[1]!);
    assert.deepEqual(rows, flags.slice(0, -1));
  });

  it("runs one agent per cluster, stopping the old pod before starting a new one", () => {
    assert.equal(at(deployment, "spec.replicas"), 1);
    assert.deepEqual(at(deployment, "spec.strategy"), { type: "Recreate" });
    assert.match(chart.readme, /^## One agent per cluster$/m);
  });

  it("reads the token and hub CA from the files of the bootstrap Secret", () => {
    const [secret] = objects("secret.yaml");
    const keys = Object.keys(secret!.data as object);
    assert.deepEqual(keys, ["bootstrap-token", "hub-ca.crt"]);
    const data = secret!.data as Record<string, string>;
    const cli = parse(readFileSync(values("agent-cli.yaml"), "utf8")) as {
      bootstrapToken: string;
      hub: { caPem: string };
    };
    assert.equal(Buffer.from(data["bootstrap-token"]!, "base64").toString(), cli.bootstrapToken);
    assert.equal(Buffer.from(data["hub-ca.crt"]!, "base64").toString(), cli.hub.caPem);
    const volume = podSpec.volumes.find((v) => v.name === "bootstrap");
    assert.deepEqual(
      volume?.secret?.items,
      keys.map((key) => ({ key, path: key })),
    );
    const mount = container.volumeMounts.find((m) => m.name === "bootstrap")!;
    for (const flag of ["--hub-ca-file=", "--bootstrap-token-file="]) {
      const file = container.args.find((a) => a.startsWith(flag))!.slice(flag.length);
      assert.equal(dirname(file), mount.mountPath, flag);
      assert.ok(
        keys.includes(file.slice(mount.mountPath.length + 1)),
        `${flag} names a key of the Secret`,
      );
    }
  });

  it("creates every RBAC object only with rbac.create", () => {
    for (const file of ["clusterrole.yaml", "role.yaml", "role-istio.yaml"]) {
      const text = template(file);
      assert.ok(text.startsWith("{{- if .Values.rbac.create }}\n"), file);
      assert.ok(text.endsWith("{{- end }}\n"), file);
      assert.equal(text.match(/\{\{- end \}\}/g)?.length, text.match(/\{\{- if /g)?.length, file);
    }
  });

  it("the ClusterRole reads discovery objects and writes only the three Istio kinds", () => {
    const [role, binding] = objects("clusterrole.yaml");
    assert.deepEqual(role!.rules as Rule[], [
      {
        apiGroups: [""],
        resources: ["services", "pods", "namespaces"],
        verbs: ["get", "list", "watch"],
      },
      {
        apiGroups: ["discovery.k8s.io"],
        resources: ["endpointslices"],
        verbs: ["get", "list", "watch"],
      },
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
      {
        apiGroups: ["networking.istio.io"],
        resources: ["gateways"],
        verbs: ["get", "list", "watch"],
      },
      {
        apiGroups: ["networking.istio.io"],
        resources: ["serviceentries", "destinationrules"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
      {
        apiGroups: ["security.istio.io"],
        resources: ["authorizationpolicies"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
    ]);
    assert.deepEqual(at(binding, "roleRef"), {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: FULLNAME,
    });
    assert.deepEqual(binding!.subjects, [
      { kind: "ServiceAccount", name: FULLNAME, namespace: NAMESPACE },
    ]);
  });

  it("no rule grants a wildcard, secrets cluster-wide, or RBAC escalation", () => {
    const rules = ["clusterrole.yaml", "role.yaml", "role-istio.yaml"].flatMap((file) =>
      objects(file).flatMap((d) => (d.rules ?? []) as Rule[]),
    );
    for (const rule of rules) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs])
        assert.ok(!field.includes("*"), JSON.stringify(rule));
      for (const verb of ["escalate", "bind", "impersonate", "deletecollection"])
        assert.ok(!rule.verbs.includes(verb), JSON.stringify(rule));
    }
    const [clusterRole] = objects("clusterrole.yaml");
    for (const rule of clusterRole!.rules as Rule[]) {
      assert.ok(!rule.resources.includes("secrets"));
      const writes = rule.verbs.filter((v) => !["get", "list", "watch"].includes(v));
      if (writes.length > 0) {
        assert.ok(
          rule.resources.every((r) =>
            ["serviceentries", "destinationrules", "authorizationpolicies"].includes(r),
          ),
          JSON.stringify(rule),
        );
      }
    }
  });

  it("the namespaced Role touches only the agent's identity Secret by name", () => {
    // The agent fixes the Secret's name; the chart's helper must name the same Secret.
    assert.equal(helperValue("isthmus-agent.identitySecretName"), IDENTITY_SECRET);
    const [role, binding] = objects("role.yaml");
    assert.deepEqual(role!.rules as Rule[], [
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: [IDENTITY_SECRET],
        verbs: ["get", "update"],
      },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
    ]);
    assert.equal(role!.metadata.namespace, NAMESPACE);
    assert.deepEqual(at(binding, "roleRef"), {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: FULLNAME,
    });
  });

  it("reads ConfigMaps in the Istio namespace only", () => {
    const [role, binding] = objects("role-istio.yaml");
    assert.deepEqual(role!.rules, [
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
    ]);
    assert.equal(at(binding, "roleRef.kind"), "Role");
    assert.equal(at(binding, "roleRef.name"), at(role, "metadata.name"));
    assert.equal(role!.metadata.namespace, "istio-system");
    assert.equal(binding!.metadata.namespace, "istio-system");
    // The binding's subject is the agent's ServiceAccount in the release namespace.
    assert.deepEqual(binding!.subjects, [
      { kind: "ServiceAccount", name: FULLNAME, namespace: NAMESPACE },
    ]);
  });

  it("README.md documents the four values the CLI writes", () => {
    for (const path of ["clusterId", "hub.address", "hub.caPem", "bootstrapToken"]) {
      assert.notEqual(at(chart.values, path), undefined, path);
      assert.match(
        chart.readme,
        new RegExp(`^\\| \`${path.replace(".", "\\.")}\` \\|.*\`isthmus install\` writes it`, "m"),
      );
    }
  });
});
