import assert from "node:assert/strict";
import { dirname } from "node:path";
import { at, loadChart, mergeValues, skeleton, type Values, valuesValidator } from "./chart.js";

const chart = loadChart("isthmus-agent");
const validate = valuesValidator(chart);
const template = (file: string) => {
  const text = chart.templates.get(file);
  assert.ok(text, `templates/${file} exists`);
  return text;
};
const objects = (file: string) => skeleton(template(file), file);

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

  it("allows more than one replica only with leader election", () => {
    assert.deepEqual(withValues(CLI_VALUES, { replicaCount: 2 }), [
      "/replicaCount: must be <= 1",
      '(root): must match "else" schema',
    ]);
    assert.deepEqual(
      withValues(CLI_VALUES, { replicaCount: 2, leaderElection: { enabled: true } }),
      [],
    );
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

  it("renders a Deployment, ServiceAccount, Secret and the RBAC objects", () => {
    const kinds = [...chart.templates]
      .filter(([file]) => file.endsWith(".yaml"))
      .flatMap(([file, text]) => skeleton(text, file).map((d) => d.kind))
      .sort();
    assert.deepEqual(kinds, [
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Role",
      "Role",
      "RoleBinding",
      "RoleBinding",
      "Secret",
      "ServiceAccount",
    ]);
  });

  it("runs `isthmus agent` with the cluster id, hub address and namespace", () => {
    assert.deepEqual(container.args, [
      "agent",
      "--cluster-id=TPL",
      "--hub-address=TPL",
      "--hub-ca-file=/etc/isthmus/bootstrap/hub-ca.crt",
      "--bootstrap-token-file=/etc/isthmus/bootstrap/bootstrap-token",
      "--namespace=$(POD_NAMESPACE)",
      "--identity-secret=TPL",
      "--istio-namespace=TPL",
      "--metrics-listen=0.0.0.0:9090",
      "--leader-election-lease=TPL",
    ]);
    const text = template("deployment.yaml");
    assert.match(text, /"--cluster-id=\{\{ \.Values\.clusterId \}\}"/);
    assert.match(text, /"--hub-address=\{\{ \.Values\.hub\.address \}\}"/);
    assert.match(text, /"--istio-namespace=\{\{ \.Values\.istioNamespace \}\}"/);
    assert.match(
      text,
      /\{\{- if \.Values\.leaderElection\.enabled \}\}\n {12}- "--leader-election-lease=\{\{ include "isthmus-agent\.leaseName" \. \}\}"\n {12}\{\{- end \}\}/,
    );
    assert.deepEqual(
      container.env.find((e) => e.name === "POD_NAMESPACE"),
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    );
    // It talks to the Kubernetes API with its ServiceAccount.
    assert.equal(podSpec.automountServiceAccountToken, true);
  });

  it("without leader election, stops the old pod before starting a new one", () => {
    assert.match(
      template("deployment.yaml"),
      /strategy:\n {4}\{\{- if \.Values\.leaderElection\.enabled \}\}\n {4}type: RollingUpdate\n {4}\{\{- else \}\}\n(?: {4}#.*\n)* {4}type: Recreate\n {4}\{\{- end \}\}/,
    );
  });

  it("reads the token and hub CA from the files of the bootstrap Secret", () => {
    const [secret] = objects("secret.yaml");
    const keys = Object.keys(secret!.data as object);
    assert.deepEqual(keys, ["bootstrap-token", "hub-ca.crt"]);
    const text = template("secret.yaml");
    assert.match(text, /bootstrap-token: \{\{ \.Values\.bootstrapToken \| b64enc \| quote \}\}/);
    assert.match(text, /hub-ca\.crt: \{\{ \.Values\.hub\.caPem \| b64enc \| quote \}\}/);
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
      name: "TPL",
    });
    assert.deepEqual(binding!.subjects, [
      { kind: "ServiceAccount", name: "TPL", namespace: "TPL" },
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

  it("the namespaced Role touches only its identity Secret by name, and its lease", () => {
    assert.equal(helperValue("isthmus-agent.identitySecretName"), "isthmus-agent-identity");
    assert.equal(helperValue("isthmus-agent.leaseName"), "isthmus-agent-leader");
    const [role, binding] = objects("role.yaml");
    assert.deepEqual(role!.rules as Rule[], [
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["TPL"], verbs: ["get", "update"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: ["TPL"],
        verbs: ["get", "update"],
      },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    ]);
    const text = template("role.yaml");
    assert.match(
      text,
      /resources: \[secrets\]\n {4}resourceNames: \[\{\{ include "isthmus-agent\.identitySecretName" \. \}\}\]/,
    );
    assert.match(
      text,
      /resources: \[leases\]\n {4}resourceNames: \[\{\{ include "isthmus-agent\.leaseName" \. \}\}\]/,
    );
    // The lease rules exist only with leader election.
    const leaderBlock =
      /\{\{- if \.Values\.leaderElection\.enabled \}\}\n([\s\S]*?)\{\{- end \}\}/.exec(text);
    assert.ok(leaderBlock);
    assert.equal(leaderBlock[1]!.match(/leases/g)?.length, 2);
    assert.equal(text.replace(leaderBlock[0], "").includes("leases"), false);
    assert.deepEqual(at(binding, "roleRef"), {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "TPL",
    });
  });

  it("reads ConfigMaps in the Istio namespace only", () => {
    const [role, binding] = objects("role-istio.yaml");
    assert.deepEqual(role!.rules, [
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
    ]);
    assert.equal(at(binding, "roleRef.kind"), "Role");
    assert.equal(at(binding, "roleRef.name"), at(role, "metadata.name"));
    const text = template("role-istio.yaml");
    assert.equal(text.match(/namespace: \{\{ \.Values\.istioNamespace \}\}/g)?.length, 2);
    // The binding's subject is the agent's ServiceAccount in the release namespace.
    assert.match(
      text,
      /name: \{\{ include "isthmus-agent\.serviceAccountName" \. \}\}\n {4}namespace: \{\{ \.Release\.Namespace \}\}/,
    );
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
