// The hub.yaml the chart renders, checked by the hub's own config loader, so that the chart
// and packages/hub cannot drift apart unnoticed.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultHubConfig, resolveHubConfig } from "@isthmus/hub";
import { parse } from "yaml";
import { CHARTS_DIR, loadChart, type Values } from "./chart.js";
import { ensureRenderer, renderChart } from "./render.js";

const chart = loadChart("isthmus-hub");

/** hub.yaml as the Go template engine renders it for release "isthmus" in namespace
 * "isthmus-system", with a server certificate given (testdata/values/hub-own-tls.yaml). */
function renderedHubYaml(): Values {
  ensureRenderer();
  const values = fileURLToPath(new URL("./testdata/values/hub-own-tls.yaml", import.meta.url));
  const rendered = renderChart(join(CHARTS_DIR, "isthmus-hub"), [values]).byTemplate;
  const [configMap] = rendered.get("configmap.yaml")!;
  return parse((configMap!.data as Values)["hub.yaml"] as string) as Values;
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
      "isthmus-isthmus-hub",
      "isthmus-isthmus-hub.isthmus-system",
      "isthmus-isthmus-hub.isthmus-system.svc",
      "isthmus-isthmus-hub.isthmus-system.svc.cluster.local",
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
