// The optional policy source: with `--policy-source`, the agent watches the cluster's
// ConnectionPolicy objects (isthmus.dev/v1alpha1, cluster-scoped, the CRD of the hub chart)
// and forwards all of them to the hub whenever they change. The hub takes them only from the
// cluster its config names (policySource.cluster) and checks them like any policy.
import { type Logger, silentLogger } from "@isthmus/logging";
import { createInformer, type Delay } from "./discovery/informer.js";
import type { KubeClient } from "./kube/client.js";
import type { Resource } from "./kube/resources.js";
import type { KubeObject } from "./kube-object.js";
import { canonicalJson } from "./kube-object.js";

export const CONNECTION_POLICIES: Resource = {
  group: "isthmus.dev",
  version: "v1alpha1",
  plural: "connectionpolicies",
  kind: "ConnectionPolicy",
  namespaced: false,
};

export interface PolicySource {
  /** Resolves after the first list (the CRD must be installed). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Every ConnectionPolicy as the document the hub reads, sorted by name. */
  documents(): string[];
  /** The documents changed (after a short quiet window). */
  onChange(cb: () => void): void;
}

/** What a policy document holds: no uid, timestamps, managedFields or status. */
function document(o: KubeObject): string {
  const metadata: Record<string, unknown> = { name: o.metadata.name };
  if (o.metadata.labels !== undefined) metadata.labels = o.metadata.labels;
  const annotations = { ...(o.metadata.annotations ?? {}) };
  delete annotations["kubectl.kubernetes.io/last-applied-configuration"];
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  return JSON.stringify({
    apiVersion: "isthmus.dev/v1alpha1",
    kind: "ConnectionPolicy",
    metadata,
    spec: o.spec,
  });
}

export function createPolicySource(options: {
  client: KubeClient;
  logger?: Logger;
  delay?: Delay;
  windowMs?: number;
}): PolicySource {
  const logger = (options.logger ?? silentLogger).child({ module: "policy-source" });
  const informer = createInformer({
    client: options.client,
    resource: CONNECTION_POLICIES,
    logger,
    ...(options.delay === undefined ? {} : { delay: options.delay }),
  });
  const listeners: (() => void)[] = [];
  let last = "";
  let timer: NodeJS.Timeout | undefined;
  const documents = () =>
    [...informer.list()]
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map(document);
  const changed = () => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      const key = canonicalJson(documents());
      if (key === last) return;
      last = key;
      logger.info("connection policies changed", { policies: informer.list().length });
      for (const cb of listeners) cb();
    }, options.windowMs ?? 100);
    timer.unref();
  };
  for (const ev of ["add", "update", "delete"] as const) informer.on(ev, changed);
  return {
    async start() {
      await informer.start();
      last = canonicalJson(documents());
    },
    async stop() {
      if (timer !== undefined) clearTimeout(timer);
      await informer.stop();
    },
    documents,
    onChange: (cb) => void listeners.push(cb),
  };
}
