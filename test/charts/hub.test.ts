import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { at, CHARTS_DIR, loadChart, mergeValues, type Values, valuesValidator } from "./chart.js";
import { ensureRenderer, type K8sObject, NAMESPACE, renderChart } from "./render.js";

const chart = loadChart("isthmus-hub");
const validate = valuesValidator(chart);
const withValues = (override: Values) => validate(mergeValues(chart.values, override));
const template = (file: string) => {
  const text = chart.templates.get(file);
  assert.ok(text, `templates/${file} exists`);
  return text;
};

ensureRenderer();
/** The objects of each template, rendered by the Go template engine with these values files
 * of testdata/values/ (release "isthmus" in namespace "isthmus-system"). */
function render(...files: string[]): Map<string, K8sObject[]> {
  const paths = files.map((f) => fileURLToPath(new URL(`./testdata/values/${f}`, import.meta.url)));
  return renderChart(join(CHARTS_DIR, "isthmus-hub"), paths).byTemplate;
}
const DEFAULTS = render();
/** A certificate and token given, no persistence (hub-own-tls.yaml). */
const OWN_TLS = render("hub-own-tls.yaml");
/** serverNames, a storage class and size (hub-production.yaml). */
const PRODUCTION = render("hub-production.yaml");
const FULLNAME = "isthmus-isthmus-hub";

function object(rendered: Map<string, K8sObject[]>, file: string): K8sObject {
  const found = rendered.get(file)?.[0];
  assert.ok(found, `${file} renders an object`);
  return found;
}

const CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";

interface Container {
  args: string[];
  ports: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  secret?: { secretName: string; items: { key: string; path: string }[] };
  configMap?: unknown;
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: unknown;
}

interface Pod {
  containers: Container[];
  volumes: Volume[];
  automountServiceAccountToken: boolean;
}
const podOf = (rendered: Map<string, K8sObject[]>) =>
  at(object(rendered, "deployment.yaml"), "spec.template.spec") as Pod;
const deployment = object(DEFAULTS, "deployment.yaml");
const podSpec = podOf(DEFAULTS);
const container = podSpec.containers[0]!;
const mountOf = (volume: string, pod: Pod = podSpec) =>
  pod.containers[0]!.volumeMounts.find((m) => m.name === volume);
const volumeOf = (volume: string, pod: Pod = podSpec) => pod.volumes.find((v) => v.name === volume);
const portOf = (name: string) => container.ports.find((p) => p.name === name)?.containerPort;

describe("chart isthmus-hub: values schema", () => {
  it("accepts the defaults, a certificate in values, and existing Secrets", () => {
    assert.deepEqual(validate(chart.values), []);
    assert.deepEqual(withValues({ tls: { certPem: CERT, keyPem: KEY } }), []);
    assert.deepEqual(
      withValues({
        tls: { existingSecret: "hub-tls" },
        adminToken: { existingSecret: "admin", existingSecretKey: "bearer" },
      }),
      [],
    );
    assert.deepEqual(withValues({ adminToken: { value: "a-token-of-16-chars" } }), []);
  });

  it("wants the certificate and its key together, and not beside an existing Secret", () => {
    assert.deepEqual(withValues({ tls: { certPem: CERT } }), [
      "/tls/keyPem: must NOT have fewer than 1 characters",
      '/tls: must match "then" schema',
    ]);
    assert.deepEqual(withValues({ tls: { keyPem: KEY } }), [
      "/tls/certPem: must NOT have fewer than 1 characters",
      '/tls: must match "then" schema',
    ]);
    assert.ok(
      withValues({ tls: { existingSecret: "hub-tls", certPem: CERT, keyPem: KEY } }).includes(
        "/tls/certPem: must be equal to constant",
      ),
    );
    assert.ok(
      withValues({ tls: { certPem: "not a certificate", keyPem: KEY } }).includes(
        '/tls/certPem: must match pattern "-----BEGIN CERTIFICATE-----"',
      ),
    );
  });

  it("names the value of a typo, a wrong type or an out-of-range setting", () => {
    assert.deepEqual(withValues({ persistance: { enabled: false } }), [
      '(root): unknown value "persistance"',
    ]);
    assert.deepEqual(withValues({ config: { graceSecond: 10 } }), [
      '/config: unknown value "graceSecond"',
    ]);
    assert.deepEqual(withValues({ service: { grpcPort: "8443" } }), [
      "/service/grpcPort: must be integer",
    ]);
    assert.deepEqual(withValues({ service: { metricsPort: 70000 } }), [
      "/service/metricsPort: must be <= 65535",
    ]);
    assert.deepEqual(withValues({ config: { defaults: { crossCluster: "deny" } } }), [
      "/config/defaults/crossCluster: must be equal to one of the allowed values",
    ]);
    assert.deepEqual(withValues({ config: { clientCertTtlSeconds: 0 } }), [
      "/config/clientCertTtlSeconds: must be >= 1",
    ]);
    assert.deepEqual(withValues({ persistence: { size: "1 GB" } }), [
      '/persistence/size: must match pattern "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"',
    ]);
    assert.ok(
      withValues({ adminToken: { value: "short" } }).includes(
        "/adminToken/value: must NOT have fewer than 16 characters",
      ),
    );
  });
});

describe("chart isthmus-hub: templates (rendered)", () => {
  it("runs one `isthmus hub --config /etc/isthmus/hub.yaml`, recreated on change", () => {
    assert.equal(at(deployment, "spec.replicas"), 1);
    assert.deepEqual(at(deployment, "spec.strategy"), { type: "Recreate" });
    // The image's entrypoint is `isthmus hub`.
    assert.deepEqual(container.args, ["--config", "/etc/isthmus/hub.yaml"]);
    assert.deepEqual(podOf(OWN_TLS).containers[0]!.args, [
      "--config",
      "/etc/isthmus/hub.yaml",
      "--metrics-listen=0.0.0.0:9090",
    ]);
    assert.deepEqual(mountOf("config"), {
      name: "config",
      mountPath: "/etc/isthmus/hub.yaml",
      subPath: "hub.yaml",
      readOnly: true,
    });
    // A change of hub.yaml changes the pod template, which restarts the pod.
    const annotations = (r: Map<string, K8sObject[]>) =>
      at(object(r, "deployment.yaml"), "spec.template.metadata.annotations") as Record<
        string,
        string
      >;
    assert.match(annotations(DEFAULTS)["checksum/config"]!, /^[0-9a-f]{64}$/);
    assert.notEqual(
      annotations(DEFAULTS)["checksum/config"],
      annotations(PRODUCTION)["checksum/config"],
    );
    // The hub needs no Kubernetes API access.
    assert.equal(podSpec.automountServiceAccountToken, false);
    assert.equal(
      at(object(DEFAULTS, "serviceaccount.yaml"), "automountServiceAccountToken"),
      false,
    );
  });

  it("hub.yaml agrees with the pod: ports, data directory, certificate and token files", () => {
    const hubYamlOf = (r: Map<string, K8sObject[]>) =>
      parse((object(r, "configmap.yaml").data as Values)["hub.yaml"] as string) as Values;
    const hubYaml = hubYamlOf(DEFAULTS);
    const configKeys = Object.keys(chart.values.config as Values);
    assert.deepEqual(Object.keys(hubYaml), [
      "listen",
      "metricsListen",
      "dataDir",
      "serverNames",
      "adminTokens",
      // toYaml writes a map's keys sorted, as Helm's does.
      ...configKeys.sort(),
    ]);
    for (const key of configKeys)
      assert.deepEqual(hubYaml[key], (chart.values.config as Values)[key], key);
    assert.equal(hubYaml.listen, `0.0.0.0:${portOf("grpc")}`);
    assert.equal(portOf("grpc"), 8443);
    assert.equal(hubYaml.metricsListen, `0.0.0.0:${portOf("metrics")}`);
    assert.equal(hubYaml.dataDir, "/var/lib/isthmus");
    assert.equal(mountOf("data")?.mountPath, hubYaml.dataDir);

    // With a certificate given, hub.yaml names its files, which the tls volume holds.
    const withTls = hubYamlOf(OWN_TLS);
    const tlsPod = podOf(OWN_TLS);
    const tls = withTls.tls as { certFile: string; keyFile: string };
    assert.equal(hubYaml.tls, undefined, "no tls section when the hub issues its own");
    for (const file of [tls.certFile, tls.keyFile]) {
      assert.equal(dirname(file), mountOf("tls", tlsPod)?.mountPath);
      assert.ok(
        volumeOf("tls", tlsPod)?.secret?.items.some((i) => i.path === basename(file)),
        file,
      );
    }
    assert.equal(volumeOf("tls", tlsPod)?.secret?.secretName, `${FULLNAME}-tls`);
    const [token] = hubYaml.adminTokens as { name: string; role: string; tokenFile: string }[];
    assert.deepEqual(token, {
      name: "admin",
      role: "admin",
      tokenFile: "/etc/isthmus/admin/token",
    });
    assert.equal(dirname(token!.tokenFile), mountOf("admin-token")?.mountPath);
    assert.deepEqual(volumeOf("admin-token")?.secret?.items, [{ key: "token", path: "token" }]);

    // The self-issued certificate names the Service in every form a client may dial, then
    // the serverNames value.
    assert.deepEqual(hubYamlOf(PRODUCTION).serverNames, [
      FULLNAME,
      `${FULLNAME}.${NAMESPACE}`,
      `${FULLNAME}.${NAMESPACE}.svc`,
      `${FULLNAME}.${NAMESPACE}.svc.cluster.local`,
      "hub.example.com",
    ]);
  });

  it("keeps the data directory on the claim, or an emptyDir without persistence", () => {
    assert.deepEqual(volumeOf("data"), {
      name: "data",
      persistentVolumeClaim: { claimName: `${FULLNAME}-data` },
    });
    assert.deepEqual(volumeOf("data", podOf(OWN_TLS)), { name: "data", emptyDir: {} });
    assert.equal(OWN_TLS.get("pvc.yaml"), undefined, "no claim without persistence");
    const pvc = object(DEFAULTS, "pvc.yaml");
    assert.deepEqual(at(pvc, "spec.resources.requests"), { storage: "1Gi" });
    assert.equal(at(pvc, "spec.storageClassName"), undefined, "empty: the cluster default");
    const production = object(PRODUCTION, "pvc.yaml");
    assert.deepEqual(at(production, "spec.resources.requests"), { storage: "5Gi" });
    assert.equal(at(production, "spec.storageClassName"), "fast-ssd");
    // "-" asks for no storage class at all.
    assert.match(
      template("pvc.yaml"),
      /\{\{- if eq "-" \.Values\.persistence\.storageClass \}\}\n {2}storageClassName: ""/,
    );
  });

  it("the Service exposes the gRPC and metrics container ports and selects the pod", () => {
    const service = object(DEFAULTS, "service.yaml");
    const ports = at(service, "spec.ports") as { name: string; targetPort: string; port: number }[];
    assert.deepEqual(
      ports.map((p) => [p.name, p.targetPort, p.port]),
      [
        ["tls-grpc", "grpc", 8443],
        ["http-metrics", "metrics", 9090],
      ],
    );
    for (const p of ports) assert.ok(portOf(p.targetPort), `container port ${p.targetPort}`);
    assert.deepEqual(at(service, "spec.selector"), at(deployment, "spec.selector.matchLabels"));
    assert.equal(at(object(PRODUCTION, "service.yaml"), "spec.type"), "LoadBalancer");
  });

  it("stores a given certificate as a kubernetes.io/tls Secret", () => {
    assert.equal(DEFAULTS.get("secret-tls.yaml"), undefined);
    const secret = object(OWN_TLS, "secret-tls.yaml");
    assert.equal(secret.type, "kubernetes.io/tls");
    assert.deepEqual(Object.keys(secret.data as object), ["tls.crt", "tls.key"]);
  });

  it("stores the admin token, generating one once and keeping it on upgrades", () => {
    const generated = object(DEFAULTS, "secret-admin-token.yaml");
    assert.deepEqual(Object.keys(generated.data as object), ["token"]);
    const token = Buffer.from((generated.data as Record<string, string>).token!, "base64");
    assert.match(token.toString(), /^[A-Za-z0-9]{48}$/, "randAlphaNum 48 when none is given");
    const given = object(OWN_TLS, "secret-admin-token.yaml");
    assert.equal(
      Buffer.from((given.data as Record<string, string>).token!, "base64").toString(),
      "an-admin-token-of-32-characters-x",
    );
    // `lookup` finds nothing outside a cluster; on an upgrade it returns the existing Secret.
    const text = template("secret-admin-token.yaml");
    assert.match(text, /lookup "v1" "Secret" \.Release\.Namespace \$name/);
    assert.match(text, /\$token = index \$existing\.data "token" \| b64dec/);
  });
});
