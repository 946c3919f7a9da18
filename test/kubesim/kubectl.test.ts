import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { sampleApp } from "@isthmus/kubesim";
import { parse, parseAllDocuments } from "yaml";
import type { Harness } from "./helpers.js";
import { kubectl, startHarness } from "./helpers.js";

const manifests = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: shop}
data:
  color: blue
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: payments
  namespace: shop
spec:
  hosts: ["payments.example.com"]
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
`;

for (const secure of [false, true]) {
  describe(`kubesim with the real kubectl (${secure ? "HTTPS and bearer token" : "HTTP"})`, function () {
    this.timeout(60000);
    let h: Harness;
    let file: string;
    beforeEach(async () => {
      h = await startHarness(secure ? { tls: true, token: "kubectl-token" } : {});
      file = join(h.dir, "shop.yaml");
      await writeFile(file, manifests);
    });
    afterEach(() => h.close());

    it("applies server-side with validation, gets tables and YAML, and deletes", async () => {
      const applied = await kubectl(h, ["apply", "--server-side", "-f", file]);
      assert.equal(applied.stderr, "");
      assert.equal(applied.code, 0);
      assert.deepEqual(applied.stdout.trim().split("\n"), [
        "namespace/shop serverside-applied",
        "configmap/settings serverside-applied",
        "serviceentry.networking.istio.io/payments serverside-applied",
      ]);
      const again = await kubectl(h, ["apply", "--server-side", "-f", file]);
      assert.equal(again.code, 0, again.stderr);

      const table = await kubectl(h, ["get", "configmaps", "-n", "shop"]);
      assert.equal(table.code, 0, table.stderr);
      const [header, row] = table.stdout.trim().split("\n");
      assert.deepEqual(header?.split(/\s+/), ["NAME", "AGE"]);
      assert.equal(row?.split(/\s+/)[0], "settings");

      const yaml = await kubectl(h, [
        "get",
        "serviceentry",
        "payments",
        "-n",
        "shop",
        "-o",
        "yaml",
      ]);
      assert.equal(yaml.code, 0, yaml.stderr);
      const se = parse(yaml.stdout) as {
        kind: string;
        spec: unknown;
        metadata: Record<string, unknown>;
      };
      assert.equal(se.kind, "ServiceEntry");
      assert.deepEqual(se.spec, parse(manifests.split("---")[2]!).spec);
      assert.equal(se.metadata.generation, 1);

      const seTable = await kubectl(h, ["get", "se", "-n", "shop"]);
      assert.deepEqual(
        seTable.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(/\s+/).slice(0, 4)),
        [
          ["NAME", "HOSTS", "LOCATION", "RESOLUTION"],
          ["payments", '["payments.example.com"]', "MESH_EXTERNAL", "DNS"],
        ],
      );

      const byLabel = await kubectl(h, ["get", "cm", "-A", "-l", "app=shop", "-o", "name"]);
      assert.equal(byLabel.stdout.trim(), "configmap/settings");

      const deleted = await kubectl(h, ["delete", "configmap", "settings", "-n", "shop"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(deleted.stdout.trim(), 'configmap "settings" deleted');
      const gone = await kubectl(h, ["get", "configmap", "settings", "-n", "shop"]);
      assert.equal(gone.code, 1);
      assert.equal(
        gone.stderr.trim(),
        'Error from server (NotFound): configmaps "settings" not found',
      );
    });

    it("applies client-side (last-applied annotation, merge patch for Istio) and registers CRDs for kubectl", async () => {
      const first = await kubectl(h, ["apply", "-f", file]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /serviceentry.networking.istio.io\/payments created/);
      await writeFile(file, manifests.replace("resolution: DNS", "resolution: NONE"));
      const second = await kubectl(h, ["apply", "-f", file]);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stderr, "", "no warning about patches computed from OpenAPI");
      assert.match(second.stdout, /serviceentry.networking.istio.io\/payments configured/);
      assert.match(second.stdout, /configmap\/settings unchanged/);
      const se = h.sim.get("networking.istio.io/v1", "ServiceEntry", "payments", "shop");
      assert.equal((se.spec as { resolution: string }).resolution, "NONE");
      assert.equal(se.metadata.generation, 2);
      assert.ok(se.metadata.annotations?.["kubectl.kubernetes.io/last-applied-configuration"]);

      // Core types: kubectl computes a strategic merge patch from its built-in types.
      const pod = join(h.dir, "pod.yaml");
      const podYaml =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: shop}\nspec:\n  containers: [{name: a, image: a:1}, {name: b, image: b:1}]\n";
      await writeFile(pod, podYaml);
      assert.equal((await kubectl(h, ["apply", "-f", pod])).code, 0);
      await writeFile(pod, podYaml.replace("a:1", "a:2"));
      const diff = await kubectl(h, ["diff", "-f", pod]);
      assert.equal(diff.code, 1, "kubectl diff exits 1 when there are differences");
      assert.match(diff.stdout, /^-\s+- image: a:1$/m);
      assert.match(diff.stdout, /^\+\s+- image: a:2$/m);
      assert.equal(diff.stderr, "");
      const repatched = await kubectl(h, ["apply", "-f", pod]);
      assert.equal(repatched.stdout.trim(), "pod/p1 configured");
      const images = await kubectl(h, [
        "get",
        "pod",
        "p1",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.containers[*].image}",
      ]);
      assert.equal(images.stdout, "a:2 b:1");

      const crd = join(h.dir, "crd.yaml");
      await writeFile(
        crd,
        `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: meshpolicies.isthmus.dev}
spec:
  group: isthmus.dev
  scope: Namespaced
  names: {plural: meshpolicies, singular: meshpolicy, kind: MeshPolicy, shortNames: [mp]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {name: Target, type: string, jsonPath: .spec.target}
`,
      );
      assert.equal((await kubectl(h, ["apply", "--server-side", "-f", crd])).code, 0);
      const established = await kubectl(h, [
        "wait",
        "--for=condition=Established",
        "crd/meshpolicies.isthmus.dev",
      ]);
      assert.equal(established.code, 0, established.stderr);
      const cr = join(h.dir, "cr.yaml");
      await writeFile(
        cr,
        "apiVersion: isthmus.dev/v1alpha1\nkind: MeshPolicy\nmetadata: {name: p1, namespace: shop}\nspec: {target: reviews}\n",
      );
      const created = await kubectl(h, ["apply", "--server-side", "-f", cr]);
      assert.equal(created.code, 0, created.stderr);
      const table = await kubectl(h, ["get", "mp", "-n", "shop"]);
      assert.deepEqual(
        table.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(/\s+/).slice(0, 2)),
        [
          ["NAME", "TARGET"],
          ["p1", "reviews"],
        ],
      );
    });

    it("refuses an invalid Istio object with the field path, as Istio's schema does", async () => {
      const bad = join(h.dir, "bad.yaml");
      await writeFile(
        bad,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad, namespace: default}\nspec:\n  hosts: [a.example.com]\n  resolution: SOMETIMES\n",
      );
      const res = await kubectl(h, ["apply", "--server-side", "-f", bad]);
      assert.equal(res.code, 1);
      assert.match(
        res.stderr,
        /The ServiceEntry "bad" is invalid: spec.resolution: Unsupported value: "SOMETIMES"/,
      );
    });

    it("prints pods with status columns and lists all namespaces", async () => {
      h.sim.load(sampleApp({ name: "web", namespace: "shop", replicas: 2 }));
      const res = await kubectl(h, ["get", "pods", "-A"]);
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/));
      assert.deepEqual(lines[0], ["NAMESPACE", "NAME", "STATUS", "IP", "AGE"]);
      assert.deepEqual(
        lines.slice(1).map((l) => l.slice(0, 4)),
        [
          ["shop", "web-0", "Running", "10.244.0.10"],
          ["shop", "web-1", "Running", "10.244.0.11"],
        ],
      );
    });

    it("watches with kubectl get -w across a change", async () => {
      h.sim.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "first" } });
      const child = spawn(
        "kubectl",
        [
          "--kubeconfig",
          h.kubeconfigPath,
          "--cache-dir",
          join(h.dir, "cache"),
          "get",
          "configmaps",
          "-w",
        ],
        { env: { ...process.env, HOME: h.dir, KUBECONFIG: "" } },
      );
      let out = "";
      let notify = () => {};
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        notify();
      });
      const waitFor = async (re: RegExp) => {
        while (!re.test(out)) await new Promise<void>((r) => (notify = r));
      };
      try {
        await waitFor(/^first\s+\S+\n/m);
        h.sim.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "second" } });
        await waitFor(/^second\s+\S+\n/m);
        h.sim.delete("v1", "ConfigMap", "first", "default");
        await waitFor(/^first[^\n]*\n[\s\S]*^first\s+\S+\n/m);
      } finally {
        child.kill();
      }
      const names = out
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/)[0]);
      assert.deepEqual(names, ["NAME", "first", "second", "first"]);
    });

    it("shows watch events with --output-watch-events and YAML output", async () => {
      h.sim.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "seen" } });
      const res = await kubectl(h, [
        "get",
        "configmaps",
        "-o",
        "yaml",
        "--watch",
        "--output-watch-events",
        "--request-timeout=2s",
      ]);
      const docs = parseAllDocuments(res.stdout).map(
        (d) => d.toJS() as { type: string; object: { metadata: { name: string } } },
      );
      assert.deepEqual(
        docs.map((d) => `${d.type} ${d.object.metadata.name}`),
        ["ADDED seen"],
      );
    });
  });
}

describe("kubesim with kubectl's typed create generators (protobuf bodies)", function () {
  this.timeout(60000);
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(() => h.close());

  it("creates namespaces, config maps, secrets and service accounts", async () => {
    const run = async (args: string[]) => {
      const r = await kubectl(h, args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    assert.equal(await run(["create", "namespace", "team-a"]), "namespace/team-a created");
    assert.equal(
      await run([
        "create",
        "configmap",
        "cfg",
        "-n",
        "team-a",
        "--from-literal=color=blue",
        "--from-literal=size=2",
      ]),
      "configmap/cfg created",
    );
    assert.equal(
      await run([
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team-a",
        "--from-literal=token=s3cret",
      ]),
      "secret/creds created",
    );
    assert.equal(
      await run(["create", "serviceaccount", "robot", "-n", "team-a"]),
      "serviceaccount/robot created",
    );
    assert.equal(h.sim.get("v1", "Namespace", "team-a").status !== undefined, true);
    assert.deepEqual(h.sim.get("v1", "ConfigMap", "cfg", "team-a").data, {
      color: "blue",
      size: "2",
    });
    const secret = h.sim.get("v1", "Secret", "creds", "team-a");
    assert.equal(secret.type, "Opaque");
    assert.deepEqual(secret.data, { token: Buffer.from("s3cret").toString("base64") });
    assert.ok(h.sim.find("v1", "ServiceAccount", "robot", "team-a"));
    const dup = await kubectl(h, ["create", "namespace", "team-a"]);
    assert.equal(dup.code, 1);
    assert.equal(
      dup.stderr.trim(),
      'Error from server (AlreadyExists): namespaces "team-a" already exists',
    );
  });
});
