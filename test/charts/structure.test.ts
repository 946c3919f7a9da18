// Checks both charts share: Chart.yaml, a closed values schema, values documented and used,
// templates that are well formed, labelled and namespaced, restricted security defaults.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  at,
  CHARTS_DIR,
  defines,
  includes,
  loadChart,
  manifestTemplates,
  openObjects,
  valuePaths,
  valueRefs,
  valuesValidator,
} from "./chart.js";
import { ensureRenderer, type K8sObject, NAMESPACE, RELEASE, renderChart } from "./render.js";

/** Values files (testdata/values/) that, between them, make every template render. */
const VALUE_SETS: Record<string, string[][]> = {
  "isthmus-hub": [[], ["hub-production.yaml"], ["hub-own-tls.yaml"], ["hub-existing-secrets.yaml"]],
  "isthmus-agent": [
    ["agent-cli.yaml"],
    ["agent-cli.yaml", "agent-everything.yaml"],
    ["agent-cli.yaml", "agent-existing-secret.yaml"],
  ],
};

/** Every value set rendered by the Go template engine: the objects of each template file. */
function renderAll(name: string): Map<string, K8sObject[]>[] {
  ensureRenderer();
  return VALUE_SETS[name]!.map(
    (files) =>
      renderChart(
        join(CHARTS_DIR, name),
        files.map((f) => fileURLToPath(new URL(`./testdata/values/${f}`, import.meta.url))),
      ).byTemplate,
  );
}

/** Kubernetes fields passed through whole: typed as object/array, not expanded. */
const PASSED_THROUGH_SCHEMA = new Set([
  "podSecurityContext",
  "securityContext",
  "affinity",
  "tolerations[]",
  "extraEnv[]",
  "extraVolumes[]",
  "extraVolumeMounts[]",
  "topologySpreadConstraints[]",
  "networkPolicy.metricsFrom[]",
  "networkPolicy.grpcFrom[]",
  "networkPolicy.egress[]",
]);

/** Values documented as one row, not key by key. */
const DOCUMENTED_WHOLE = new Set([
  "podSecurityContext",
  "securityContext",
  "resources",
  "affinity",
  "nodeSelector",
  "podAnnotations",
  "podLabels",
  "service.annotations",
  "serviceAccount.annotations",
  "probes.liveness",
  "probes.readiness",
  "metrics.service.annotations",
  "metrics.serviceMonitor.labels",
  "metrics.podMonitor.labels",
]);

const CLUSTER_SCOPED = new Set(["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]);

for (const name of ["isthmus-hub", "isthmus-agent"]) {
  describe(`chart ${name}: structure`, () => {
    const chart = loadChart(name);

    it("Chart.yaml: apiVersion v2, version and appVersion 0.1.0, named after its folder", () => {
      assert.equal(chart.chartYaml.apiVersion, "v2");
      assert.equal(chart.chartYaml.name, name);
      assert.equal(chart.chartYaml.version, "0.1.0");
      assert.equal(chart.chartYaml.appVersion, "0.1.0");
      assert.equal(chart.chartYaml.type, "application");
    });

    it("the values schema leaves no object of the chart's own values open", () => {
      assert.deepEqual(openObjects(chart.schema, PASSED_THROUGH_SCHEMA), []);
    });

    it("an unknown key is rejected at the top level and nested, with its path", () => {
      const validate = valuesValidator(chart);
      const base = validRequired(name, chart.values);
      assert.deepEqual(validate(base), []);
      assert.deepEqual(validate({ ...base, resource: {} }), ['(root): unknown value "resource"']);
      assert.deepEqual(
        validate({ ...base, image: { ...(chart.values.image as object), tags: "1" } }),
        ['/image: unknown value "tags"'],
      );
      assert.deepEqual(
        validate({
          ...base,
          probes: { ...(chart.values.probes as object), readiness: { periodSecond: 5 } },
        }),
        [
          "/probes/readiness: must have required property 'initialDelaySeconds'",
          "/probes/readiness: must have required property 'periodSeconds'",
          "/probes/readiness: must have required property 'timeoutSeconds'",
          "/probes/readiness: must have required property 'failureThreshold'",
          '/probes/readiness: unknown value "periodSecond"',
        ],
      );
    });

    it("a wrong type or value is rejected with its path", () => {
      const validate = valuesValidator(chart);
      const base = validRequired(name, chart.values);
      assert.deepEqual(validate({ ...base, logLevel: "verbose" }), [
        "/logLevel: must be equal to one of the allowed values",
      ]);
      assert.deepEqual(validate({ ...base, serviceAccount: { create: "yes" } }), [
        "/serviceAccount/create: must be boolean",
      ]);
      assert.deepEqual(validate({ ...base, resources: { limits: { memory: "1 GB" } } }), [
        "/resources/limits/memory: must be integer",
        '/resources/limits/memory: must match pattern "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"',
        "/resources/limits/memory: must match a schema in anyOf",
      ]);
      assert.deepEqual(validate({ ...base, nodeSelector: { zone: 1 } }), [
        "/nodeSelector/zone: must be string",
      ]);
    });

    it("README.md has a row for every value, and only for values", () => {
      const paths = valuePaths(chart.values, DOCUMENTED_WHOLE);
      const section = chart.readme.slice(chart.readme.indexOf("## Values"));
      const rows = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
      assert.deepEqual(
        paths.filter((p) => !rows.includes(p)),
        [],
        "values without a README row",
      );
      assert.deepEqual(
        rows.filter((r) => !paths.includes(r)),
        [],
        "README rows that are not values",
      );
    });

    it("every value a template reads exists, and every value is read by a template", () => {
      const refs = new Set<string>();
      for (const text of [chart.helpers, ...chart.templates.values()])
        for (const ref of valueRefs(text)) refs.add(ref);
      assert.deepEqual(
        [...refs].filter((r) => at(chart.values, r) === undefined),
        [],
        "templates read values that values.yaml does not have",
      );
      const unread = valuePaths(chart.values, DOCUMENTED_WHOLE).filter(
        (p) => ![...refs].some((r) => r === p || p.startsWith(`${r}.`) || r.startsWith(`${p}.`)),
      );
      assert.deepEqual(unread, [], "values no template reads");
    });

    it("every include names a defined template, in branches no value set renders too", () => {
      const defined = new Set(defines(chart.helpers));
      for (const [file, text] of chart.templates)
        for (const used of includes(text)) assert.ok(defined.has(used), `${file}: ${used}`);
    });

    it("helpers: name and fullname cut at 63 characters, app.kubernetes.io labels", () => {
      for (const helper of ["name", "fullname"]) {
        const body = new RegExp(
          `define "${name}\\.${helper}" -\\}\\}([\\s\\S]*?)\\{\\{- end \\}\\}\\n\\n`,
        ).exec(chart.helpers)?.[1];
        assert.ok(body, `${helper} defined`);
        const outputs = body
          .split("\n")
          .filter((l) => l.startsWith("{{-") && !/^\{\{- (if|else|end|\$)/.test(l));
        assert.ok(outputs.length > 0);
        for (const line of outputs) assert.match(line, /\| trunc 63 \| trimSuffix "-" \}\}$/);
      }
      for (const label of ["name", "instance", "version", "managed-by", "component", "part-of"])
        assert.match(chart.helpers, new RegExp(`^app\\.kubernetes\\.io/${label}: `, "m"));
      assert.match(chart.helpers, /^\{\{ include "[a-z-]+\.selectorLabels" \. \}\}$/m);
    });

    it("every template renders with some value set; objects are named after the release and namespaced", () => {
      const renders = renderAll(name);
      const fullname = `${RELEASE}-${name}`;
      for (const [file] of manifestTemplates(chart)) {
        assert.ok(
          renders.some((r) => (r.get(file) ?? []).length > 0),
          `${file} renders an object with one of ${JSON.stringify(VALUE_SETS[name])}`,
        );
      }
      for (const rendered of renders) {
        for (const [file, docs] of rendered) {
          for (const doc of docs) {
            // A CRD's name is fixed by its kind: <plural>.<group>.
            if (doc.kind !== "CustomResourceDefinition")
              assert.ok(doc.metadata.name.startsWith(fullname), `${file}: ${doc.metadata.name}`);
            assert.equal(
              doc.metadata.labels?.["app.kubernetes.io/instance"],
              RELEASE,
              `${file}: labels from the helper`,
            );
            const expected = CLUSTER_SCOPED.has(doc.kind)
              ? undefined
              : file === "role-istio.yaml"
                ? "istio-system"
                : NAMESPACE;
            assert.equal(doc.metadata.namespace, expected, `${file}: namespace`);
          }
        }
      }
    });

    it("the pod runs restricted: non-root, seccomp RuntimeDefault, no capabilities, read-only root", () => {
      const pod = chart.values.podSecurityContext as Record<string, unknown>;
      assert.equal(pod.runAsNonRoot, true);
      assert.equal(typeof pod.runAsUser, "number");
      assert.ok((pod.runAsUser as number) > 0);
      assert.deepEqual(pod.seccompProfile, { type: "RuntimeDefault" });
      assert.deepEqual(chart.values.securityContext, {
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      const deployment = chart.templates.get("deployment.yaml")!;
      assert.match(
        deployment,
        /^ {6}securityContext:\n {8}\{\{- toYaml \.Values\.podSecurityContext \| nindent 8 \}\}$/m,
      );
      assert.match(
        deployment,
        /^ {10}securityContext:\n {12}\{\{- toYaml \.Values\.securityContext \| nindent 12 \}\}$/m,
      );
      // A read-only root filesystem needs a writable /tmp (Node's temporary files).
      const [rendered] = renderAll(name)[0]!.get("deployment.yaml")!;
      assert.deepEqual(at(rendered, "spec.template.spec.securityContext"), pod);
      const [first] = at(rendered, "spec.template.spec.containers") as Values[];
      assert.deepEqual(first!.securityContext, chart.values.securityContext);
      const spec = at(rendered, "spec.template.spec") as {
        containers: { volumeMounts: { name: string; mountPath: string }[] }[];
        volumes: { name: string; emptyDir?: unknown }[];
      };
      const tmp = spec.containers[0]!.volumeMounts.find((m) => m.mountPath === "/tmp");
      assert.ok(tmp, "/tmp mounted");
      assert.deepEqual(
        spec.volumes.find((v) => v.name === tmp.name),
        { name: tmp.name, emptyDir: {} },
      );
    });

    it("Secret files are readable by the pod's user alone (mode 0440, group fsGroup)", () => {
      const pod = chart.values.podSecurityContext as Record<string, unknown>;
      assert.equal(pod.fsGroup, pod.runAsGroup);
      const volumes = renderAll(name).flatMap(
        (r) => at(r.get("deployment.yaml")![0], "spec.template.spec.volumes") as Values[],
      );
      const secrets = volumes.filter((v) => v.secret !== undefined);
      assert.ok(secrets.length > 0);
      for (const v of secrets) assert.equal(at(v, "secret.defaultMode"), 0o440, String(v.name));
    });

    it("liveness probes GET /healthz and readiness /readyz on the metrics port", () => {
      const [deployment] = renderAll(name)[0]!.get("deployment.yaml")!;
      const container = (at(deployment, "spec.template.spec.containers") as Values[])[0]!;
      assert.deepEqual(at(container, "livenessProbe.httpGet"), {
        path: "/healthz",
        port: "metrics",
      });
      assert.deepEqual(at(container, "readinessProbe.httpGet"), {
        path: "/readyz",
        port: "metrics",
      });
      assert.deepEqual(
        (container.ports as Values[]).find((p) => p.name === "metrics"),
        { name: "metrics", containerPort: 9090, protocol: "TCP" },
      );
      for (const probe of ["livenessProbe", "readinessProbe"])
        for (const field of [
          "initialDelaySeconds",
          "periodSeconds",
          "timeoutSeconds",
          "failureThreshold",
        ])
          assert.equal(
            at(container, `${probe}.${field}`),
            at(chart.values, `probes.${probe.replace("Probe", "")}.${field}`),
            `${probe}.${field} from values`,
          );
    });
  });
}

type Values = Record<string, unknown>;

/** The chart's defaults plus whatever its schema requires the user to give. */
function validRequired(name: string, defaults: Values): Values {
  if (name !== "isthmus-agent") return defaults;
  return {
    ...defaults,
    clusterId: "prod-eu",
    hub: { address: "hub.example.com:8443", caPem: "-----BEGIN CERTIFICATE-----\nMIIB\n" },
    bootstrapToken: "0123456789abcdef0123",
  };
}
