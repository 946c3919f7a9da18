// The hub chart's store values: schema checks, and the hub.yaml and pod they render, checked
// by the hub's own config loader and against the Secrets the pod mounts.
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveHubConfig } from "@isthmus/hub";
import { parse } from "yaml";
import { at, CHARTS_DIR, loadChart, mergeValues, type Values, valuesValidator } from "./chart.js";
import { ensureRenderer, type K8sObject, renderChart } from "./render.js";

const chart = loadChart("isthmus-hub");
const validate = valuesValidator(chart);
const withValues = (override: Values) => validate(mergeValues(chart.values, override));
const etcd = (values: Values) => withValues({ store: { type: "etcd", etcd: values } });

interface Pod {
  containers: { volumeMounts: { name: string; mountPath: string }[] }[];
  volumes: {
    name: string;
    secret?: { secretName: string; items: { key: string; path: string }[] };
    emptyDir?: unknown;
    persistentVolumeClaim?: unknown;
  }[];
}

function render(...files: string[]): Map<string, K8sObject[]> {
  ensureRenderer();
  const paths = files.map((f) => fileURLToPath(new URL(`./testdata/values/${f}`, import.meta.url)));
  return renderChart(join(CHARTS_DIR, "isthmus-hub"), paths).byTemplate;
}
const hubYamlOf = (r: Map<string, K8sObject[]>) =>
  parse((r.get("configmap.yaml")![0]!.data as Values)["hub.yaml"] as string) as Values;
const podOf = (r: Map<string, K8sObject[]>) =>
  at(r.get("deployment.yaml")![0]!, "spec.template.spec") as Pod;

describe("chart isthmus-hub: store values", () => {
  it("accepts the file store by default, and etcd with endpoints, TLS and a user", () => {
    assert.deepEqual(validate(chart.values), []);
    assert.deepEqual(etcd({ endpoints: ["http://etcd:2379"] }), []);
    assert.deepEqual(
      etcd({
        endpoints: ["https://etcd-0:2379"],
        tlsSecret: "tls",
        clientCertificate: true,
        username: "isthmus",
        passwordSecret: "auth",
      }),
      [],
    );
  });

  it("names what is wrong in the store values", () => {
    assert.deepEqual(withValues({ store: { type: "etcd" } }), [
      "/store/etcd/endpoints: must NOT have fewer than 1 items",
      '/store: must match "then" schema',
    ]);
    assert.ok(
      etcd({ endpoints: ["etcd:2379"] }).includes(
        '/store/etcd/endpoints/0: must match pattern "^https?://[^/\\s]+:[0-9]+$"',
      ),
    );
    assert.ok(
      etcd({ endpoints: ["http://etcd:2379"], tlsSecret: "tls" }).includes(
        '/store/etcd/endpoints/0: must match pattern "^https://"',
      ),
    );
    assert.ok(
      etcd({ endpoints: ["https://etcd:2379"], clientCertificate: true }).includes(
        "/store/etcd/tlsSecret: must NOT have fewer than 1 characters",
      ),
    );
    assert.ok(
      etcd({ endpoints: ["https://etcd:2379"], username: "u" }).includes(
        "/store/etcd/passwordSecret: must NOT have fewer than 1 characters",
      ),
    );
    assert.deepEqual(withValues({ store: { type: "consul" } }), [
      "/store/type: must be equal to one of the allowed values",
    ]);
    assert.deepEqual(withValues({ store: { etcd: { endpoint: [] } } }), [
      '/store/etcd: unknown value "endpoint"',
    ]);
  });

  it("renders no store keys for the file store, and keeps the claim", () => {
    const defaults = render();
    assert.equal(hubYamlOf(defaults).store, undefined);
    assert.ok(defaults.get("pvc.yaml")?.[0], "the data volume's claim");
  });

  it("renders hub.yaml for etcd that the hub accepts, naming files the pod mounts", () => {
    const rendered = render("hub-etcd.yaml");
    const hubYaml = hubYamlOf(rendered);
    const config = resolveHubConfig(
      { ...hubYaml, adminTokens: [{ name: "admin", role: "admin", token: "t".repeat(32) }] },
      "hub.yaml",
    );
    assert.equal(config.store, "etcd");
    assert.deepEqual(config.etcd, {
      endpoints: [
        "https://etcd-0.etcd:2379",
        "https://etcd-1.etcd:2379",
        "https://etcd-2.etcd:2379",
      ],
      prefix: "/prod/",
      requestTimeoutMs: 5000,
      maxTxnOps: 128,
      caFile: "/etc/isthmus/etcd-tls/ca.crt",
      certFile: "/etc/isthmus/etcd-tls/tls.crt",
      keyFile: "/etc/isthmus/etcd-tls/tls.key",
      username: "isthmus",
      passwordFile: "/etc/isthmus/etcd-auth/password",
    });
    const pod = podOf(rendered);
    const mounted = (file: string) => {
      const mount = pod.containers[0]!.volumeMounts.find((m) => m.mountPath === dirname(file));
      assert.ok(mount, `${file}: no volume mounted at ${dirname(file)}`);
      const volume = pod.volumes.find((v) => v.name === mount.name);
      const item = volume?.secret?.items.find((i) => i.path === basename(file));
      assert.ok(item, `${file}: not in volume ${mount.name}`);
      return [volume!.secret!.secretName, item.key];
    };
    const etcdConfig = config.etcd;
    assert.deepEqual(mounted(etcdConfig.caFile!), ["hub-etcd-tls", "ca.crt"]);
    assert.deepEqual(mounted(etcdConfig.certFile!), ["hub-etcd-tls", "tls.crt"]);
    assert.deepEqual(mounted(etcdConfig.keyFile!), ["hub-etcd-tls", "tls.key"]);
    assert.deepEqual(mounted(etcdConfig.passwordFile!), ["hub-etcd-auth", "pw"]);
    // Nothing on the data volume is needed again: no claim, an emptyDir.
    assert.deepEqual(
      pod.volumes.find((v) => v.name === "data"),
      { name: "data", emptyDir: {} },
    );
    assert.equal(rendered.get("pvc.yaml"), undefined);
  });
});
