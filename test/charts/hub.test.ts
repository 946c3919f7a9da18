import assert from "node:assert/strict";
import { basename, dirname } from "node:path";
import { parse } from "yaml";
import { at, loadChart, mergeValues, skeleton, type Values, valuesValidator } from "./chart.js";

const chart = loadChart("isthmus-hub");
const validate = valuesValidator(chart);
const withValues = (override: Values) => validate(mergeValues(chart.values, override));
const template = (file: string) => {
  const text = chart.templates.get(file);
  assert.ok(text, `templates/${file} exists`);
  return text;
};
const object = (file: string) => skeleton(template(file), file)[0]!;

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

const deployment = object("deployment.yaml");
const podSpec = at(deployment, "spec.template.spec") as {
  containers: Container[];
  volumes: Volume[];
  automountServiceAccountToken: boolean;
};
const container = podSpec.containers[0]!;
const mountOf = (volume: string) => container.volumeMounts.find((m) => m.name === volume);
const volumeOf = (volume: string) => podSpec.volumes.find((v) => v.name === volume);
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

describe("chart isthmus-hub: templates", () => {
  it("has templates of a Deployment, Service, ServiceAccount, ConfigMap, PVC, two Secrets and the opt-in objects", () => {
    const kinds = [...chart.templates]
      .filter(([file]) => file.endsWith(".yaml"))
      .flatMap(([file, text]) => skeleton(text, file).map((d) => d.kind))
      .sort();
    // Both branches of every condition: the opt-in objects included.
    assert.deepEqual(kinds, [
      "ConfigMap",
      "Deployment",
      "NetworkPolicy",
      "PersistentVolumeClaim",
      "PodDisruptionBudget",
      "PodMonitor",
      "Secret",
      "Secret",
      "Service",
      "ServiceAccount",
      "ServiceMonitor",
    ]);
  });

  it("runs one `isthmus hub --config /etc/isthmus/hub.yaml`, recreated on change", () => {
    assert.equal(at(deployment, "spec.replicas"), 1);
    assert.deepEqual(at(deployment, "spec.strategy"), { type: "Recreate" });
    // The image's entrypoint is `isthmus hub`.
    assert.deepEqual(container.args.slice(0, 2), ["--config", "/etc/isthmus/hub.yaml"]);
    assert.deepEqual(mountOf("config"), {
      name: "config",
      mountPath: "/etc/isthmus/hub.yaml",
      subPath: "hub.yaml",
      readOnly: true,
    });
    assert.match(
      template("deployment.yaml"),
      /checksum\/config: \{\{ include \(print \$\.Template\.BasePath "\/configmap\.yaml"\) \. \| sha256sum \}\}/,
    );
    // The hub needs no Kubernetes API access.
    assert.equal(podSpec.automountServiceAccountToken, false);
    assert.equal(at(object("serviceaccount.yaml"), "automountServiceAccountToken"), false);
  });

  it("hub.yaml agrees with the pod: ports, data directory, certificate and token files", () => {
    const configMap = object("configmap.yaml");
    const hubYaml = parse((configMap.data as Values)["hub.yaml"] as string) as Values;
    const text = template("configmap.yaml");
    // The config settings are appended whole, at the same indentation as the other keys.
    assert.match(text, /^ {4}\{\{- toYaml \.Values\.config \| nindent 4 \}\}$/m);
    assert.deepEqual(Object.keys(hubYaml), [
      "listen",
      "metricsListen",
      "dataDir",
      "tls",
      "serverNames",
      "adminTokens",
    ]);
    assert.equal(hubYaml.listen, `0.0.0.0:${portOf("grpc")}`);
    assert.equal(portOf("grpc"), 8443);
    assert.equal(hubYaml.metricsListen, `0.0.0.0:${portOf("metrics")}`);
    assert.equal(hubYaml.dataDir, "/var/lib/isthmus");
    assert.equal(mountOf("data")?.mountPath, hubYaml.dataDir);

    const tls = hubYaml.tls as { certFile: string; keyFile: string };
    assert.match(text, /\{\{- if include "isthmus-hub\.tlsSecretName" \. \}\}\n {4}tls:/);
    for (const file of [tls.certFile, tls.keyFile]) {
      assert.equal(dirname(file), mountOf("tls")?.mountPath);
      assert.ok(
        volumeOf("tls")?.secret?.items.some((i) => i.path === basename(file)),
        file,
      );
    }
    const [token] = hubYaml.adminTokens as { name: string; role: string; tokenFile: string }[];
    assert.deepEqual(token, {
      name: "admin",
      role: "admin",
      tokenFile: "/etc/isthmus/admin/token",
    });
    assert.equal(dirname(token!.tokenFile), mountOf("admin-token")?.mountPath);
    assert.deepEqual(volumeOf("admin-token")?.secret?.items, [{ key: "TPL", path: "token" }]);

    // The self-issued certificate names the Service in every form a client may dial, then
    // the serverNames value (the last item, inside a range).
    assert.deepEqual(hubYaml.serverNames, [
      "TPL",
      "TPL.TPL",
      "TPL.TPL.svc",
      "TPL.TPL.svc.TPL",
      "TPL",
    ]);
    assert.match(
      text,
      /- \{\{ \$fullname \}\}\.\{\{ \.Release\.Namespace \}\}\.svc\.\{\{ \.Values\.clusterDomain \}\}/,
    );
    assert.match(text, /\{\{- range \.Values\.serverNames \}\}\n {6}- \{\{ \. \| quote \}\}/);
  });

  it("keeps the data directory on the claim, or an emptyDir without persistence", () => {
    assert.deepEqual(volumeOf("data"), {
      name: "data",
      persistentVolumeClaim: { claimName: "TPL" },
      emptyDir: {},
    });
    assert.match(
      template("deployment.yaml"),
      / {8}- name: data\n {10}\{\{- if \.Values\.persistence\.enabled \}\}\n {10}persistentVolumeClaim:\n {12}claimName: \{\{ include "isthmus-hub\.claimName" \. \}\}\n {10}\{\{- else \}\}\n {10}emptyDir: \{\}\n {10}\{\{- end \}\}/,
    );
    const pvc = template("pvc.yaml");
    assert.match(
      pvc,
      /^\{\{- if and \.Values\.persistence\.enabled \(not \.Values\.persistence\.existingClaim\) \}\}\n/,
    );
    assert.deepEqual(at(object("pvc.yaml"), "spec.resources.requests"), { storage: "TPL" });
    assert.match(pvc, /storage: \{\{ \.Values\.persistence\.size \| quote \}\}/);
    // "-" asks for no storage class at all; empty leaves the cluster default.
    assert.match(
      pvc,
      /\{\{- if eq "-" \.Values\.persistence\.storageClass \}\}\n {2}storageClassName: ""/,
    );
  });

  it("the Service exposes the gRPC and metrics container ports", () => {
    const service = object("service.yaml");
    const ports = at(service, "spec.ports") as { name: string; targetPort: string; port: string }[];
    assert.deepEqual(
      ports.map((p) => [p.name, p.targetPort, p.port]),
      [
        ["tls-grpc", "grpc", "TPL"],
        ["http-metrics", "metrics", "TPL"],
      ],
    );
    for (const p of ports) assert.ok(portOf(p.targetPort), `container port ${p.targetPort}`);
    const text = template("service.yaml");
    assert.match(text, /port: \{\{ \.Values\.service\.grpcPort \}\}/);
    assert.match(text, /port: \{\{ \.Values\.service\.metricsPort \}\}/);
    assert.match(
      text,
      /selector:\n {4}\{\{- include "isthmus-hub\.selectorLabels" \. \| nindent 4 \}\}/,
    );
    assert.match(
      template("deployment.yaml"),
      /matchLabels:\n {6}\{\{- include "isthmus-hub\.selectorLabels" \. \| nindent 6 \}\}/,
    );
  });

  it("stores a given certificate as a kubernetes.io/tls Secret", () => {
    const secret = object("secret-tls.yaml");
    assert.equal(secret.type, "kubernetes.io/tls");
    assert.deepEqual(Object.keys(secret.data as object), ["tls.crt", "tls.key"]);
    assert.match(
      template("secret-tls.yaml"),
      /^\{\{- if and \(not \.Values\.tls\.existingSecret\) \.Values\.tls\.certPem \}\}\n/,
    );
  });

  it("stores the admin token, generating one once and keeping it on upgrades", () => {
    const secret = object("secret-admin-token.yaml");
    assert.deepEqual(Object.keys(secret.data as object), ["token"]);
    const text = template("secret-admin-token.yaml");
    assert.match(text, /^\{\{- if not \.Values\.adminToken\.existingSecret \}\}\n/);
    assert.match(text, /lookup "v1" "Secret" \.Release\.Namespace \$name/);
    assert.match(text, /\$token = index \$existing\.data "token" \| b64dec/);
    assert.match(text, /\$token = randAlphaNum 48/);
  });
});
