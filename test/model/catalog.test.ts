import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createCatalog, createRandom, intern, principalOf } from "@isthmus/model";
import { ServiceSchema, WorkloadIdentitySchema } from "@isthmus/proto";

const facts = (id: string, trustDomain: string) => ({
  id,
  labels: { env: "prod" },
  network: `net-${id}`,
  trustDomain,
  gateways: [
    { address: "b", port: 15443 },
    { address: "a", port: 15443 },
    { address: "a", port: 15443 },
  ],
  locality: "",
});
const svc = (namespace: string, name: string, serviceAccounts: string[]) =>
  create(ServiceSchema, {
    namespace,
    name,
    serviceAccounts,
    selector: { app: name },
    inMesh: true,
  });
const wid = (namespace: string, serviceAccount: string) =>
  create(WorkloadIdentitySchema, { namespace, serviceAccount });

describe("catalog", () => {
  it("indexes services and identities for the compiler", () => {
    const c = createCatalog();
    c.upsertCluster(facts("a", ""));
    c.upsertCluster(facts("b", "b.mesh"));
    assert.equal(c.cluster("a")?.trustDomain, "cluster.local");
    assert.deepEqual(c.cluster("a")?.gateways, [
      { address: "a", port: 15443 },
      { address: "b", port: 15443 },
    ]);
    c.upsertService("a", svc("pay", "api", ["api"]));
    c.upsertService("b", svc("pay", "api", ["api", "batch"]));
    c.upsertService("b", svc("web", "ui", ["ui"]));
    c.upsertIdentity("a", wid("pay", "api"));
    c.upsertIdentity("b", wid("pay", "api"));
    assert.deepEqual(c.backingClusters("pay", "api"), ["a", "b"]);
    assert.deepEqual([...c.servicesNamed("api")].map((s) => s.key).sort(), [
      "a/pay/api",
      "b/pay/api",
    ]);
    assert.deepEqual(
      [...c.servicesInNamespace("web")].map((s) => s.key),
      ["b/web/ui"],
    );
    assert.deepEqual(
      [...c.servicesWithServiceAccount("b", "pay", "batch")].map((s) => s.key),
      ["b/pay/api"],
    );
    assert.equal(c.identity("b", "pay", "api")?.principal, "b.mesh/ns/pay/sa/api");
    assert.deepEqual(
      [...c.identitiesWithNamespaceAndAccount("pay", "api")].map((i) => i.key).sort(),
      ["a/pay/api", "b/pay/api"],
    );
    assert.equal(c.serviceCount, 3);
    assert.equal(c.identityCount, 2);
    assert.equal(principalOf("", "ns", "sa"), "cluster.local/ns/ns/sa/sa");
  });

  it("re-keys principals when a trust domain changes and tracks shared trust domains", () => {
    const c = createCatalog();
    c.upsertCluster(facts("a", "one"));
    c.upsertCluster(facts("b", "two"));
    c.upsertIdentity("a", wid("pay", "api"));
    c.upsertIdentity("b", wid("pay", "api"));
    assert.equal(c.identitiesWithPrincipal("one/ns/pay/sa/api").length, 1);
    assert.equal(c.sharedTrustDomains, 0);
    c.upsertCluster(facts("b", "one"));
    assert.deepEqual([...c.clustersWithTrustDomain("one")].sort(), ["a", "b"]);
    assert.equal(c.identitiesWithPrincipal("one/ns/pay/sa/api").length, 2);
    assert.equal(c.identitiesWithPrincipal("two/ns/pay/sa/api").length, 0);
    assert.equal(c.sharedTrustDomains, 1);
    c.upsertCluster(facts("c", "one"));
    assert.equal(c.sharedTrustDomains, 1);
    c.removeCluster("a");
    c.removeCluster("b");
    assert.equal(c.sharedTrustDomains, 0);
    c.upsertCluster(facts("c", "two"));
    c.upsertCluster(facts("d", "two"));
    assert.equal(c.sharedTrustDomains, 1);
  });

  it("removing a cluster removes its services and identities from every index", () => {
    const c = createCatalog();
    c.upsertCluster(facts("a", "one"));
    c.upsertService("a", svc("pay", "api", ["api"]));
    c.upsertIdentity("a", wid("pay", "api"));
    assert.equal(c.removeCluster("a")?.id, "a");
    assert.equal(c.cluster("a"), undefined);
    assert.deepEqual([...c.logicalServiceKeys()], []);
    assert.equal(c.servicesNamed("api").size, 0);
    assert.equal(c.identitiesWithPrincipal("one/ns/pay/sa/api").length, 0);
    assert.equal(c.clustersWithTrustDomain("one").size, 0);
    assert.equal(c.serviceCount + c.identityCount, 0);
  });

  it("refuses entries of unknown clusters and entries without names", () => {
    const c = createCatalog();
    assert.throws(() => c.upsertService("x", svc("pay", "api", [])), {
      name: "ModelError",
      code: "unknown-cluster",
      message: 'service x/pay/api: unknown cluster "x"',
    });
    c.upsertCluster(facts("x", ""));
    assert.throws(() => c.upsertIdentity("x", wid("pay", "")), {
      code: "invalid-entry",
      message: "workload identity x/pay/: serviceAccount is empty",
    });
  });

  it("draws the same sequence for the same seed", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      Array.from({ length: 5 }, () => b.next()),
      xs,
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notEqual(createRandom(43).next(), xs[0]);
    const r = createRandom(1);
    for (let i = 0; i < 100; i++) assert.ok(r.int(3) < 3);
    assert.throws(() => r.pick([]), RangeError);
  });
});

describe("intern", () => {
  it("returns a string of the same content, whatever the content", () => {
    const built = ["c001", "ns-1", "svc-7"].join("/");
    for (const s of [built, "", "123", "__proto__", "constructor", "é/ü", "a".repeat(300)]) {
      assert.equal(intern(s), s);
    }
  });
});
