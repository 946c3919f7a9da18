import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { stringify } from "yaml";
import { defaultScene, type Sandbox, type Scene, startSandbox, waitConverged } from "../sandbox.js";
import { impactTable } from "./policy.js";

const POLICIES = `apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: frontend-to-payments }
spec:
  priority: 100
  action: ALLOW
  from:
    - clusters: [prod-eu]
      namespaces: [web]
  to:
    - namespaces: [payments]
      services: [payments-api]
      ports: [8443]
---
apiVersion: isthmus.dev/v1alpha1
kind: ConnectionPolicy
metadata: { name: no-dev-to-prod }
spec:
  priority: 10
  action: DENY
  from:
    - clusterLabels: { env: dev }
  to:
    - clusterLabels: { env: prod }
`;

/** `isthmus demo`: the whole system on this machine, start to finish, then exits. */
export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "generate a root of trust, start a hub and three simulated clusters with agents, apply sample policies, print what each cluster got",
    )
    .option("--keep", "keep the temporary folder (certificates, kubeconfigs)")
    .action(runDemo);
}

type Say = (line?: string) => void;
type Admin = ReturnType<Sandbox["admin"]>;

async function runDemo(flags: { keep?: boolean }): Promise<void> {
  const say: Say = (line = "") => process.stdout.write(`${line}\n`);
  const dir = await mkdtemp(join(tmpdir(), "isthmus-demo-"));
  const scene = defaultScene(3);
  const cacerts = await showRootOfTrust(dir, say);

  say();
  say("== 2. a hub and three clusters (kubesim) with Istio, sample workloads and an agent each");
  const sandbox = await startSandbox({
    scene,
    dir,
    hub: { debounce: { windowMs: 20, maxMs: 200 } },
    agentDebounceMs: 20,
    extraObjects: Object.fromEntries(scene.clusters.map((c) => [c.id, [cacerts as never]])),
    // Every mesh accepts the other clusters' trust domains under this root.
    rootCertPem: await readFile(join(dir, "certs", "root-cert.pem"), "utf8"),
  });
  try {
    await waitConverged(sandbox, 60_000);
    const admin = sandbox.admin();
    try {
      showClusters(sandbox, scene, say);
      await showPolicies(sandbox, admin, say);
      showObjects(sandbox, say);
      await showExplain(admin, say);
      const status = await admin.client.getStatus({}, admin.call);
      say();
      say(
        `== done: ${status.clusters.filter((c) => c.inSync).length}/${status.clusters.length} clusters in sync at system version ${status.systemVersion}`,
      );
    } finally {
      admin.client.close();
    }
  } finally {
    await sandbox.close();
    if (flags.keep) say(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

/** Step 1: the mesh CA under `dir`/certs; returns the cacerts Secret every cluster gets. */
async function showRootOfTrust(dir: string, say: Say) {
  const { ensureMeshCa, renderCacertsSecret } = await import("@isthmus/pki");
  say(`== 1. one root of trust for every cluster (isthmus certs -c ${join(dir, "certs")})`);
  const mesh = await ensureMeshCa(join(dir, "certs"));
  say(`   root ${mesh.root.subject}, CA ${mesh.ca.subject} (${mesh.status})`);
  const cacerts = await renderCacertsSecret(join(dir, "certs"));
  say(
    "   istio-system/cacerts installed in prod-eu, prod-us and dev (same root-cert.pem everywhere)",
  );
  return cacerts;
}

function showClusters(sandbox: Sandbox, scene: Scene, say: Say): void {
  for (const c of sandbox.clusters) {
    const apps = scene.clusters.find((s) => s.id === c.id)?.apps ?? [];
    const labels = Object.entries(c.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    say(
      `   ${c.id.padEnd(8)} ${labels.padEnd(20)} runs ${apps.map((a) => `${a.namespace}/${a.name}`).join(", ")}`,
    );
  }
}

/** Step 3: a dry run of the sample policies, then the policies applied and converged. */
async function showPolicies(sandbox: Sandbox, { client, call }: Admin, say: Say): Promise<void> {
  const { parsePolicyYaml } = await import("@isthmus/policy");
  say();
  say("== 3. policies (isthmus policy apply -f policies.yaml)");
  for (const line of POLICIES.trimEnd().split("\n")) say(`   ${line}`);
  const policies = parsePolicyYaml(POLICIES, "policies.yaml");
  const preview = await client.applyPolicies({ policies, dryRun: true }, call);
  say("   dry run, connections whose decision changes:");
  for (const line of impactTable(preview.impact).split("\n")) say(`   ${line}`);
  await client.applyPolicies({ policies }, call);
  await waitConverged(sandbox, 60_000);
}

/** Step 4: the objects Isthmus wrote into each cluster. */
function showObjects(sandbox: Sandbox, say: Say): void {
  say();
  say("== 4. what each cluster got (objects managed by isthmus)");
  for (const c of sandbox.clusters) {
    const objects = sandbox.owned(c.id);
    say(`--- ${c.id}: ${objects.length === 0 ? "nothing" : `${objects.length} objects`}`);
    for (const o of objects) {
      say(`   ${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`);
      for (const line of stringify({ spec: o.spec }).trimEnd().split("\n")) say(`     ${line}`);
    }
  }
}

/** Step 5: why a prod and a dev frontend may or may not reach payments. */
async function showExplain({ client, call }: Admin, say: Say): Promise<void> {
  const { Decision } = await import("@isthmus/proto");
  say();
  say(
    "== 5. explain (isthmus policy explain --from <cluster/ns/serviceaccount> --to <cluster/ns/service:port>)",
  );
  for (const from of ["prod-eu/web/frontend", "dev/web/frontend"]) {
    const [clusterId, namespace, serviceAccount] = from.split("/") as [string, string, string];
    const res = await client.explain(
      {
        source: { clusterId, namespace, serviceAccount },
        destination: {
          clusterId: "prod-us",
          namespace: "payments",
          service: "payments-api",
          port: 8443,
        },
      },
      call,
    );
    const by = res.rule ? `policy ${res.rule}` : `default (${res.defaultReason})`;
    say(
      `   ${from} -> prod-us/payments/payments-api:8443: ${Decision[res.decision]} by ${by}, principal ${res.principal}`,
    );
  }
}
