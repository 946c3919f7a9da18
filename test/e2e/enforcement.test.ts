// The hub's decisions against the mesh model over the live objects of a sandbox run: hub,
// three kubesim clusters, real agents (issue 16).
import assert from "node:assert/strict";
import { defaultScene, type Sandbox } from "@isthmus/cli/sandbox";
import type { KubeObject, KubeSim } from "@isthmus/kubesim";
import { buildMesh, type ClusterInput, connect } from "@isthmus/mesh-model";
import { Action } from "@isthmus/proto";
import { parse, stringify } from "yaml";
import { sandboxPolicies } from "../helpers/fixtures.js";
import { type QuickSandbox, startQuickSandbox } from "../helpers/quick-sandbox.js";
import {
  decisionOf,
  describeMismatch,
  judge,
  MismatchClasses,
} from "../mesh-model/differential.js";

const policies = [
  ...sandboxPolicies,
  {
    name: "shop-across-prod",
    priority: 50,
    action: Action.ALLOW,
    from: [{ clusters: ["prod-*"], namespaces: ["shop"] }],
    to: [{ namespaces: ["shop"], services: ["catalog"] }],
  },
];

/** Every object of a cluster, read through kubesim's own access, type by type. */
function everyObject(sim: KubeSim): KubeObject[] {
  return sim
    .resourceTypes()
    .flatMap((t) =>
      sim.list(t.group === "" ? t.versions[0]! : `${t.group}/${t.versions[0]}`, t.kind),
    );
}

function liveMesh(sandbox: Sandbox): { inputs: ClusterInput[] } {
  return { inputs: sandbox.clusters.map((c) => ({ id: c.id, objects: everyObject(c.sim) })) };
}

describe("e2e: the hub's decisions hold in Istio (mesh model over live objects)", function () {
  this.timeout(180_000);
  let quick: QuickSandbox;
  let sandbox: Sandbox;
  before(async () => {
    const scene = defaultScene(3);
    scene.clusters[0]!.apps!.push({ name: "cart", namespace: "shop" });
    scene.clusters[1]!.apps!.push({ name: "catalog", namespace: "shop" });
    scene.clusters[2]!.apps!.push({ name: "catalog", namespace: "shop" });
    quick = await startQuickSandbox("enforcement", { scene, policies });
    sandbox = quick.sandbox;
  });
  after(async () => {
    await quick?.close();
  });

  it("every identity x service x port: the model's verdict equals the hub's explain", async () => {
    const { inputs } = liveMesh(sandbox);
    const mesh = buildMesh(inputs);
    const classes = new MismatchClasses();
    let compared = 0;
    let skipped = 0;
    const { client, call } = sandbox.admin();
    try {
      const catalog = await client.listCatalog({}, call);
      const identities = new Set<string>();
      for (const c of inputs)
        for (const o of c.objects)
          if (o.kind === "Pod")
            identities.add(
              `${c.id}/${o.metadata?.namespace}/${(o.spec as { serviceAccountName?: string }).serviceAccountName ?? "default"}`,
            );
      for (const id of [...identities].sort()) {
        const [cluster, namespace, serviceAccount] = id.split("/") as [string, string, string];
        for (const s of catalog.services) {
          const svc = s.service!;
          for (const p of svc.ports) {
            const ex = await client.explain(
              {
                source: { clusterId: cluster, namespace, serviceAccount },
                destination: {
                  clusterId: s.clusterId,
                  namespace: svc.namespace,
                  service: svc.name,
                  port: p.port,
                },
              },
              call,
            );
            const decided = decisionOf(ex);
            if (decided === undefined) {
              skipped++;
              continue;
            }
            compared++;
            const target = {
              cluster: s.clusterId,
              namespace: svc.namespace,
              service: svc.name,
              port: p.port,
            };
            const m = judge(
              mesh,
              undefined,
              { cluster, namespace, serviceAccount },
              target,
              decided,
            );
            if (m !== undefined) {
              classes.add([m]);
              process.stdout.write(`      ${describeMismatch(m)}\n`);
            }
          }
        }
      }
    } finally {
      client.close();
    }
    process.stdout.write(
      `      ${compared} pairs compared, ${skipped} skipped (not enforced), ${classes.total} mismatches\n`,
    );
    assert.ok(compared > 20, `only ${compared} pairs compared`);
    assert.equal(classes.total, 0, `mismatches by class:\n${classes.report()}`);
  });

  it("the cross-cluster ALLOW needs the trust domains in caCertificates: without them the model reports TLS_FAILED", () => {
    const frontend = { cluster: "prod-eu", namespace: "web", serviceAccount: "frontend" };
    const payments = {
      cluster: "prod-us",
      namespace: "payments",
      service: "payments-api",
      port: 8443,
    };
    assert.equal(connect(buildMesh(liveMesh(sandbox).inputs), frontend, payments).outcome, "ALLOW");
    const us = sandbox.clusters.find((c) => c.id === "prod-us")!.sim;
    const cm = us.get("v1", "ConfigMap", "istio", "istio-system");
    const data = cm.data as Record<string, string>;
    const meshConfig = parse(data.mesh!) as Record<string, unknown>;
    assert.ok(meshConfig.caCertificates !== undefined, data.mesh);
    delete meshConfig.caCertificates;
    us.update({ ...cm, data: { ...data, mesh: stringify(meshConfig) } });
    const r = connect(buildMesh(liveMesh(sandbox).inputs), frontend, payments);
    assert.equal(r.outcome, "TLS_FAILED", r.reason);
    assert.equal(r.stage, "trust-domain");
    assert.match(
      r.reason,
      /peer trust domain prod-eu.local different from local trust domain prod-us.local/,
    );
  });
});
