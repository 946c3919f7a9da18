// Renders a chart with the real Go template engine (tools/chart-render: text/template,
// sprig and Helm's functions) and checks the manifests the way a cluster and a reviewer
// would: every document parses, carries the chart's labels, runs with the restricted
// security context and the probes, and its RBAC stays within a least-privilege list.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { at } from "./chart.js";

export { at };

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const RENDERER = join(ROOT, ".tmp/bin/chart-render");

/** Builds the renderer when a source is newer than the binary (tools/chart-render/build.sh). */
export function ensureRenderer(): void {
  const built = spawnSync(join(ROOT, "tools/chart-render/build.sh"), { encoding: "utf8" });
  if (built.status !== 0 || !existsSync(RENDERER)) {
    throw new Error(
      `could not build tools/chart-render (Debian golang-go and golang-github-masterminds-sprig-dev, as .ci/run installs): ${built.stderr}`,
    );
  }
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface Rendered {
  /** Every object, in output order. */
  objects: K8sObject[];
  /** The objects of each template, by its file name ("deployment.yaml"). */
  byTemplate: Map<string, K8sObject[]>;
  /** The renderer's output as it is. */
  text: string;
}

export const RELEASE = "isthmus";
export const NAMESPACE = "isthmus-system";

/** Renders `chartDir` with its values.yaml and then `valuesFiles`, as `helm template` would. */
export function renderChart(chartDir: string, valuesFiles: readonly string[] = []): Rendered {
  const args = ["-chart", chartDir, "-name", RELEASE, "-namespace", NAMESPACE];
  for (const file of valuesFiles) args.push("-f", file);
  const text = execFileSync(RENDERER, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const sourced = parseSourcedManifests(text);
  const byTemplate = new Map<string, K8sObject[]>();
  for (const { source, object } of sourced) {
    const file = source.slice(source.lastIndexOf("/") + 1);
    byTemplate.set(file, [...(byTemplate.get(file) ?? []), object]);
  }
  return { text, objects: sourced.map((d) => d.object), byTemplate };
}

/** Renders NOTES.txt. */
export function renderNotes(chartDir: string, valuesFiles: readonly string[] = []): string {
  const args = ["-chart", chartDir, "-name", RELEASE, "-namespace", NAMESPACE, "-notes"];
  for (const file of valuesFiles) args.push("-f", file);
  return execFileSync(RENDERER, args, { encoding: "utf8" });
}

/** Parses a multi-document manifest (YAML 1.1, as Kubernetes reads it: 0440 is octal); a
 * document that is not YAML, or not a Kubernetes object, throws naming its source. */
export function parseManifests(text: string): K8sObject[] {
  return parseSourcedManifests(text).map((d) => d.object);
}

function parseSourcedManifests(text: string): { source: string; object: K8sObject }[] {
  const objects: { source: string; object: K8sObject }[] = [];
  for (const chunk of text.split(/^---$/m)) {
    const source = /^# Source: (\S+)$/m.exec(chunk)?.[1] ?? "(no source line)";
    const doc = parseDocument(chunk, { version: "1.1" });
    if (doc.errors.length > 0) throw new Error(`${source}: not YAML: ${doc.errors[0]!.message}`);
    const js = doc.toJS() as K8sObject | null;
    if (js === null) continue;
    for (const field of ["apiVersion", "kind"] as const) {
      if (typeof js[field] !== "string") throw new Error(`${source}: ${field} is missing`);
    }
    if (typeof js.metadata?.name !== "string")
      throw new Error(`${source}: metadata.name is missing`);
    objects.push({ source, object: js });
  }
  return objects;
}

export const CLUSTER_SCOPED = new Set([
  "ClusterRole",
  "ClusterRoleBinding",
  "Namespace",
  "CustomResourceDefinition",
]);

const LABEL_KEYS = [
  "helm.sh/chart",
  "app.kubernetes.io/name",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/component",
  "app.kubernetes.io/version",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/part-of",
];

function describeObject(o: K8sObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
}

/** Every object carries the chart's labels; every selector selects the pod template's labels. */
export function checkLabels(objects: readonly K8sObject[], chartName: string): void {
  const deployment = objects.find((o) => o.kind === "Deployment");
  assert.ok(deployment, "a Deployment is rendered");
  const podLabels = at(deployment, "spec.template.metadata.labels") as Record<string, string>;
  for (const o of objects) {
    const labels = o.metadata.labels ?? {};
    for (const key of LABEL_KEYS) assert.ok(labels[key], `${describeObject(o)}: label ${key}`);
    assert.equal(labels["app.kubernetes.io/name"], chartName, `${describeObject(o)}: name label`);
    assert.equal(labels["app.kubernetes.io/instance"], RELEASE, `${describeObject(o)}: instance`);
    const selector = selectorOf(o);
    if (selector !== undefined) {
      for (const [k, v] of Object.entries(selector))
        assert.equal(podLabels[k], v, `${describeObject(o)}: selector ${k}=${v} selects the pod`);
      assert.ok(Object.keys(selector).length >= 3, `${describeObject(o)}: selector is specific`);
    }
  }
}

function selectorOf(o: K8sObject): Record<string, string> | undefined {
  if (o.kind === "Service") return at(o, "spec.selector") as Record<string, string>;
  if (o.kind === "NetworkPolicy")
    return at(o, "spec.podSelector.matchLabels") as Record<string, string>;
  if (["Deployment", "PodDisruptionBudget", "ServiceMonitor", "PodMonitor"].includes(o.kind))
    return at(o, "spec.selector.matchLabels") as Record<string, string>;
  return undefined;
}

/** The restricted Pod Security Standard, and the probes on the metrics port. */
export function checkPod(deployment: K8sObject): void {
  const pod = at(deployment, "spec.template.spec") as Record<string, unknown>;
  assert.equal(at(pod, "securityContext.runAsNonRoot"), true, "pod runAsNonRoot");
  assert.equal(at(pod, "securityContext.seccompProfile.type"), "RuntimeDefault", "pod seccomp");
  const containers = pod.containers as Record<string, unknown>[];
  assert.equal(containers.length, 1, "one container");
  const c = containers[0]!;
  assert.equal(at(c, "securityContext.allowPrivilegeEscalation"), false, "no privilege escalation");
  assert.equal(at(c, "securityContext.readOnlyRootFilesystem"), true, "read-only root filesystem");
  assert.deepEqual(at(c, "securityContext.capabilities.drop"), ["ALL"], "drops ALL capabilities");
  assert.equal(at(c, "securityContext.privileged"), undefined, "not privileged");
  const ports = c.ports as { name: string; containerPort: number }[];
  assert.ok(
    ports.some((p) => p.name === "metrics"),
    "a port named metrics",
  );
  assert.deepEqual(at(c, "livenessProbe.httpGet"), { path: "/healthz", port: "metrics" });
  assert.deepEqual(at(c, "readinessProbe.httpGet"), { path: "/readyz", port: "metrics" });
  const mounts = (c.volumeMounts as { name: string }[]).map((m) => m.name);
  const volumes = (pod.volumes as { name: string }[]).map((v) => v.name);
  for (const mount of mounts) assert.ok(volumes.includes(mount), `volume ${mount} exists`);
  assert.ok(mounts.includes("tmp"), "a writable /tmp beside the read-only root");
}

/** One allowed rule: these verbs on these resources of one API group (optionally only the
 * named objects). A rendered rule passes when a single allowed entry covers it whole. */
export interface AllowedRule {
  apiGroup: string;
  resources: readonly string[];
  verbs: readonly string[];
  resourceNames?: readonly string[];
  /** Only in Roles (namespaced), never in ClusterRoles. */
  namespacedOnly?: boolean;
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Every rule of every Role and ClusterRole lies within `allowed`; no wildcards. */
export function checkRbac(objects: readonly K8sObject[], allowed: readonly AllowedRule[]): void {
  for (const role of objects.filter((o) => o.kind === "Role" || o.kind === "ClusterRole")) {
    for (const [i, rule] of (role.rules as Rule[]).entries()) {
      const where = `${describeObject(role)}: rules[${i}]`;
      for (const list of [rule.apiGroups, rule.resources, rule.verbs])
        assert.ok(!list.includes("*"), `${where}: no wildcard`);
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources) {
          const ok = allowed.some(
            (a) =>
              a.apiGroup === group &&
              a.resources.includes(resource) &&
              rule.verbs.every((v) => a.verbs.includes(v)) &&
              (a.namespacedOnly !== true || role.kind === "Role") &&
              (a.resourceNames === undefined ||
                rule.resourceNames?.every((n) => a.resourceNames!.includes(n)) === true),
          );
          assert.ok(
            ok,
            `${where}: ${rule.verbs.join(",")} on ${group || "core"}/${resource} is not in the least-privilege list`,
          );
        }
      }
    }
  }
}
