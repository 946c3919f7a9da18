import assert from "node:assert/strict";
import { type Agent, createAgent, createMemoryIdentityStore } from "@isthmus/agent";
import { type KubeSim, sampleApp } from "@isthmus/kubesim";
import { silentLogger } from "@isthmus/logging";
import { frontendToPayments } from "../helpers/fixtures.js";
import { admin, type HubFixture, startHub } from "../helpers/hub-fixture.js";
import { eventually, noDelay } from "./cluster.js";
import { startIstioCluster } from "./two-clusters.js";

describe("agent e2e with the real hub", () => {
  let hub: HubFixture;
  const sims: KubeSim[] = [];
  const agents: Agent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await hub?.close();
    for (const s of sims.splice(0)) await s.close();
  });

  it("enrolls two agents, reports their catalogs and applies the intents a policy yields", async () => {
    hub = await startHub();
    const a = await startIstioCluster("a", "198.51.100.1");
    const b = await startIstioCluster("b", "198.51.100.2");
    sims.push(a, b);
    a.load(sampleApp({ name: "payments-api", namespace: "payments", podIpPrefix: "10.1.0" }));
    b.load(sampleApp({ name: "frontend", namespace: "web", podIpPrefix: "10.2.0" }));
    b.create({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "payments", labels: { "istio-injection": "enabled" } },
    });

    for (const [id, sim] of [
      ["a", a],
      ["b", b],
    ] as const) {
      const created = await hub.admin.createCluster({ cluster: { id } }, admin);
      const agent = createAgent({
        clusterId: id,
        hubAddress: hub.address,
        hubCaPem: created.hubCaPem,
        bootstrapToken: created.bootstrapToken,
        kubeconfig: sim.kubeconfig(),
        identityStore: createMemoryIdentityStore(),
        logger: silentLogger,
        delay: noDelay,
        debounceMs: 5,
        maxDebounceMs: 20,
      });
      agents.push(agent);
      await agent.start();
    }
    await eventually(async () => {
      const catalog = await hub.admin.listCatalog({}, admin);
      const names = catalog.services.map(
        (s) => `${s.clusterId}/${s.service?.namespace}/${s.service?.name}`,
      );
      assert.ok(
        names.includes("a/payments/payments-api") && names.includes("b/web/frontend"),
        names.join(),
      );
    }, "both catalogs at the hub");

    await hub.admin.applyPolicies(
      {
        policies: [frontendToPayments("b")],
      },
      admin,
    );
    await eventually(() => {
      const se = b.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-import-payments-api",
        "payments",
      );
      assert.ok(se, "import ServiceEntry in b");
      const eps = (se.spec as { endpoints: { address: string; network?: string }[] }).endpoints;
      assert.ok(
        eps.some((e) => e.address === "198.51.100.1" && e.network === "net-a"),
        JSON.stringify(eps),
      );
    }, "import in b");
    await eventually(() => {
      const se = a.find(
        "networking.istio.io/v1",
        "ServiceEntry",
        "isthmus-export-payments-api",
        "payments",
      );
      assert.ok(se, "export ServiceEntry in a");
      const ap = a.find(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "isthmus-allow-payments-api",
        "payments",
      );
      assert.ok(ap, "allow policy in a");
      assert.match(JSON.stringify(ap.spec), /b\.example\/ns\/web\/sa\/frontend/);
    }, "export and access in a");
    await eventually(() => {
      for (const agent of agents)
        assert.notEqual(agent.status().systemVersion, "", `${agent.status().clusterId} acked`);
    }, "ACKs");
  });
});
