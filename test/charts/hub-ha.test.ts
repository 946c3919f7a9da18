// The hub chart's replicas: the schema and the template refuse replicas on the file store;
// on etcd, the Deployment rolls one replica at a time, spreads them over nodes, gets a
// PodDisruptionBudget, and hub.yaml carries the lease the hub accepts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveHubConfig } from "@isthmus/hub";
import { parse } from "yaml";
import { at, CHARTS_DIR, loadChart, mergeValues, type Values, valuesValidator } from "./chart.js";
import { ensureRenderer, renderChart } from "./render.js";

const chart = loadChart("isthmus-hub");
const validate = valuesValidator(chart);
const withValues = (override: Values) => validate(mergeValues(chart.values, override));
const valuesFile = (f: string) => fileURLToPath(new URL(`./testdata/values/${f}`, import.meta.url));

describe("chart isthmus-hub: replicas", () => {
  it("accepts replicas on etcd and refuses them on the file store", () => {
    assert.deepEqual(
      withValues({ replicas: 3, store: { type: "etcd", etcd: { endpoints: ["http://e:2379"] } } }),
      [],
    );
    assert.deepEqual(withValues({ replicas: 3 }), [
      "/store/type: must be equal to constant",
      '(root): must match "then" schema',
    ]);
    assert.ok(withValues({ replicas: 0 }).includes("/replicas: must be >= 1"));
    assert.ok(
      withValues({ config: { leaderLeaseSeconds: 1 } }).includes(
        "/config/leaderLeaseSeconds: must be >= 2",
      ),
    );
  });

  it("renders three replicas that roll one at a time, spread over nodes, with a budget", () => {
    ensureRenderer();
    const rendered = renderChart(join(CHARTS_DIR, "isthmus-hub"), [
      valuesFile("hub-ha.yaml"),
    ]).byTemplate;
    const deployment = rendered.get("deployment.yaml")![0]!;
    assert.equal(at(deployment, "spec.replicas"), 3);
    assert.deepEqual(at(deployment, "spec.strategy"), {
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    const term = at(
      deployment,
      "spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
    ) as { podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Values } } }[];
    assert.equal(term[0]?.podAffinityTerm.topologyKey, "kubernetes.io/hostname");
    assert.deepEqual(
      term[0]?.podAffinityTerm.labelSelector.matchLabels,
      at(deployment, "spec.selector.matchLabels"),
    );
    // Each replica tells the others its pod IP, for the crashed-leader probe.
    const container = (at(deployment, "spec.template.spec.containers") as Values[])[0]!;
    const args = container.args as string[];
    assert.equal(args[args.indexOf("--peer-address") + 1], "$(POD_IP):8443");
    assert.deepEqual(
      (container.env as Values[]).find((e) => e.name === "POD_IP"),
      {
        name: "POD_IP",
        valueFrom: { fieldRef: { fieldPath: "status.podIP" } },
      },
    );
    const pdb = rendered.get("poddisruptionbudget.yaml")![0]!;
    assert.equal(at(pdb, "spec.maxUnavailable"), 1);
    assert.deepEqual(
      at(pdb, "spec.selector.matchLabels"),
      at(deployment, "spec.selector.matchLabels"),
    );
    const [hub] = at(deployment, "spec.template.spec.containers") as Values[];
    assert.equal(at(hub, "readinessProbe.httpGet.path"), "/readyz");
    const hubYaml = parse(
      (rendered.get("configmap.yaml")![0]!.data as Values)["hub.yaml"] as string,
    ) as Values;
    const config = resolveHubConfig(
      { ...hubYaml, adminTokens: [{ name: "admin", role: "admin", token: "t".repeat(32) }] },
      "hub.yaml",
    );
    assert.equal(config.leaderLeaseSeconds, 3);
  });

  it("keeps one replica, recreated, and no budget by default", () => {
    ensureRenderer();
    const rendered = renderChart(join(CHARTS_DIR, "isthmus-hub")).byTemplate;
    const deployment = rendered.get("deployment.yaml")![0]!;
    assert.equal(at(deployment, "spec.replicas"), 1);
    assert.deepEqual(at(deployment, "spec.strategy"), { type: "Recreate" });
    assert.equal(at(deployment, "spec.template.spec.affinity"), undefined);
    assert.equal(rendered.get("poddisruptionbudget.yaml"), undefined);
  });

  it("fails the render of replicas on the file store, naming the value", () => {
    ensureRenderer();
    assert.throws(
      () => renderChart(join(CHARTS_DIR, "isthmus-hub"), [valuesFile("hub-ha-file.yaml")]),
      /replicas: more than one hub replica needs store.type etcd/,
    );
  });
});
