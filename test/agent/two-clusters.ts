// Two kubesim clusters with real agents at a real hub: "a" runs payments/payments-api,
// "b" runs web/frontend. For tests of what the agents report to the hub.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Agent, createAgent, createMemoryIdentityStore } from "@isthmus/agent";
import { istioScene, type KubeSim, sampleApp, startKubeSim } from "@isthmus/kubesim";
import { silentLogger } from "@isthmus/logging";
import { Action } from "@isthmus/proto";
import { frontendToPayments as frontendToPaymentsFrom } from "../helpers/fixtures.js";
import { admin, type HubFixture, startHub } from "../helpers/hub-fixture.js";
import { noDelay } from "./cluster.js";

export interface TwoClusters {
  hub: HubFixture;
  a: KubeSim;
  b: KubeSim;
  agents: Record<"a" | "b", Agent>;
  /** A kubeconfig file per cluster, for kubectl. */
  kubeconfigs: Record<"a" | "b", string>;
  dir: string;
  close(): Promise<void>;
}

/** A kubesim cluster with Istio installed, trust domain `<id>.example`. */
export async function startIstioCluster(id: string, address: string): Promise<KubeSim> {
  const sim = await startKubeSim({ name: id });
  sim.load(
    istioScene({
      clusterId: id,
      network: `net-${id}`,
      trustDomain: `${id}.example`,
      eastWestAddress: address,
    }),
  );
  return sim;
}

/** `b` gets the namespace payments (where its import goes) unless `paymentsInB` is false. */
export async function startTwoClusters(
  options: { paymentsInB?: boolean; retryIntervalMs?: number } = {},
): Promise<TwoClusters> {
  const dir = mkdtempSync(join(tmpdir(), "isthmus-two-clusters-"));
  const hub = await startHub();
  const a = await startIstioCluster("a", "198.51.100.1");
  const b = await startIstioCluster("b", "198.51.100.2");
  a.load(sampleApp({ name: "payments-api", namespace: "payments", podIpPrefix: "10.1.0" }));
  b.load(sampleApp({ name: "frontend", namespace: "web", podIpPrefix: "10.2.0" }));
  if (options.paymentsInB !== false) b.create(paymentsNamespace);
  const agents = {} as Record<"a" | "b", Agent>;
  const kubeconfigs = {} as Record<"a" | "b", string>;
  for (const [id, sim] of [
    ["a", a],
    ["b", b],
  ] as const) {
    kubeconfigs[id] = await sim.writeKubeconfig(join(dir, `kubeconfig-${id}`));
    const created = await hub.admin.createCluster({ cluster: { id } }, admin);
    agents[id] = createAgent({
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
      ...(options.retryIntervalMs === undefined
        ? {}
        : { retryIntervalMs: options.retryIntervalMs }),
    });
    await agents[id].start();
  }
  return {
    hub,
    a,
    b,
    agents,
    kubeconfigs,
    dir,
    async close() {
      for (const agent of Object.values(agents)) await agent.stop();
      await hub.close();
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const paymentsNamespace = {
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name: "payments", labels: { "istio-injection": "enabled" } },
};

/** b/web may call payments-api (an import in b, an export and an ALLOW policy in a). */
export const frontendToPayments = frontendToPaymentsFrom("b");

/** b/web may not call payments-api (a DENY above the ALLOW). */
export const denyFrontendToPayments = {
  ...frontendToPayments,
  name: "deny-frontend-to-payments",
  priority: 10,
  action: Action.DENY,
};

/**
 * `kubectl edit -o json` as a person would do it, the editor replacing text in the file
 * (each `[from, to]` must occur): kubectl sends what changed as a patch, with its own field
 * manager, and keeps every annotation.
 */
export function kubectlEdit(
  c: TwoClusters,
  cluster: "a" | "b",
  resource: string,
  namespace: string,
  replacements: [string, string][],
): Promise<void> {
  const editor = join(c.dir, "edit.mjs");
  writeFileSync(
    editor,
    `import { readFileSync, writeFileSync } from "node:fs";
const file = process.argv[2];
let text = readFileSync(file, "utf8");
for (const [from, to] of JSON.parse(process.env.EDITS)) {
  if (!text.includes(from)) { console.error("not in the object: " + from); process.exit(3); }
  text = text.replaceAll(from, to);
}
writeFileSync(file, text);
`,
  );
  return new Promise((resolve, reject) => {
    execFile(
      "kubectl",
      [
        "--kubeconfig",
        c.kubeconfigs[cluster],
        "--cache-dir",
        join(c.dir, "cache"),
        "edit",
        "-o",
        "json",
        "-n",
        namespace,
        resource,
      ],
      {
        env: {
          ...process.env,
          HOME: c.dir,
          KUBECONFIG: "",
          KUBE_EDITOR: `${process.execPath} ${editor}`,
          EDITS: JSON.stringify(replacements),
        },
        timeout: 20_000,
      },
      (err, stdout, stderr) =>
        err === null
          ? resolve()
          : reject(new Error(`kubectl edit ${resource}: ${stderr}${stdout}`)),
    );
  });
}
