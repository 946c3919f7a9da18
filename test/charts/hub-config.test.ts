// The hub.yaml the chart renders, checked by the hub's own config loader, so that the chart
// and packages/hub cannot drift apart unnoticed.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultHubConfig, resolveHubConfig } from "@isthmus/hub";
import { parse } from "yaml";
import { loadChart, PLACEHOLDER, skeleton, type Values } from "./chart.js";

const chart = loadChart("isthmus-hub");

/** hub.yaml as the chart renders it with the default values, for release "isthmus-hub" in
 * namespace "isthmus": the skeleton with its placeholders filled in, plus `config` (which
 * the template appends whole with toYaml). */
function renderedHubYaml(): Values {
  const [configMap] = skeleton(chart.templates.get("configmap.yaml")!, "configmap.yaml");
  const text = (configMap!.data as Values)["hub.yaml"] as string;
  // In each name the placeholders stand for the full name, the namespace, the cluster domain.
  const fill = ["isthmus-hub", "isthmus", "cluster.local"];
  const hubYaml = parse(text) as Values;
  const names = hubYaml.serverNames as string[];
  // The last item comes from `range .Values.serverNames`, empty by default.
  hubYaml.serverNames = names.slice(0, -1).map((name) => {
    const parts = name.split(PLACEHOLDER);
    return parts.reduce((out, part, k) => out + fill[k - 1]! + part);
  });
  return { ...hubYaml, ...(chart.values.config as Values) };
}

describe("chart isthmus-hub: hub.yaml and packages/hub", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "hub-yaml-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("the hub's config loader accepts the rendered hub.yaml", async () => {
    const hubYaml = renderedHubYaml();
    // The token file is mounted from a Secret in the pod; here it is a temporary file.
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, `${"t".repeat(48)}\n`);
    const [admin] = hubYaml.adminTokens as Values[];
    assert.equal(admin!.tokenFile, "/etc/isthmus/admin/token");
    hubYaml.adminTokens = [{ ...admin, tokenFile }];

    const config = resolveHubConfig(hubYaml, "hub.yaml");
    assert.equal(config.listen, "0.0.0.0:8443");
    assert.equal(config.metricsListen, "0.0.0.0:9090");
    assert.equal(config.dataDir, "/var/lib/isthmus");
    assert.deepEqual(config.tls, {
      certFile: "/etc/isthmus/tls/tls.crt",
      keyFile: "/etc/isthmus/tls/tls.key",
    });
    assert.deepEqual(config.serverNames, [
      "isthmus-hub",
      "isthmus-hub.isthmus",
      "isthmus-hub.isthmus.svc",
      "isthmus-hub.isthmus.svc.cluster.local",
    ]);
    assert.deepEqual(config.adminTokens, [{ name: "admin", role: "admin", token: "t".repeat(48) }]);
    assert.equal(config.insecure, false);
  });

  it("config.* defaults are the hub's own defaults, and the schema knows exactly those keys", () => {
    const values = chart.values.config as Values;
    const hubDefaults = defaultHubConfig as unknown as Values;
    for (const [key, value] of Object.entries(values))
      assert.deepEqual(value, hubDefaults[key], `config.${key}`);
    const schemaKeys = Object.keys(
      (chart.schema.properties as Record<string, { properties: object }>).config.properties,
    );
    assert.deepEqual(schemaKeys, Object.keys(values));
  });
});
