// Parts of `isthmus install` beside the certificates: which agent chart, the values it gets
// from flags, how they are shown, and istiod's restart after the cacerts Secret changed.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { KubeClient, Resource } from "@isthmus/agent";
import { UsageError } from "../connection.js";

/** The agent chart the installed package ships (`npm run build` copies charts/ there). */
export const PACKAGED_CHART = resolve(import.meta.dirname, "../../charts/isthmus-agent");

/** --chart (a chart folder, or an `oci://` reference helm pulls), else the packaged chart. */
export function agentChart(flag: string | undefined): string {
  if (flag?.startsWith("oci://")) return flag;
  const dir = flag === undefined ? PACKAGED_CHART : resolve(flag);
  if (!existsSync(join(dir, "Chart.yaml"))) {
    throw new UsageError(
      flag === undefined
        ? `the isthmus-agent chart is not in this installation (${dir}); pass --chart <folder|oci://…>`
        : `--chart ${flag}: no Chart.yaml in that folder; give a chart folder or an oci:// reference`,
    );
  }
  return dir;
}

/** `--image repository[:tag][@sha256:…]` as the chart's image values. */
export function imageValues(ref: string): Record<string, string> {
  const m = /^([a-z0-9][a-z0-9._\-/:]*?)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(
    ref,
  );
  if (m === null || m[1]!.endsWith(":")) {
    throw new UsageError(
      `invalid --image "${ref}": expected repository[:tag][@sha256:<64 hex digits>]`,
    );
  }
  const image: Record<string, string> = { repository: m[1]! };
  if (m[2] !== undefined) image.tag = m[2];
  if (m[3] !== undefined) image.digest = m[3];
  return image;
}

/** Puts `--set a.b=value` into `values` (a string value at a dotted path). */
export function setValue(values: Record<string, unknown>, assignment: string): void {
  const m = /^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)=(.*)$/s.exec(assignment);
  if (m === null) throw new UsageError(`invalid --set "${assignment}": expected key.path=value`);
  const path = m[1]!.split(".");
  let node = values;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next !== undefined && (typeof next !== "object" || next === null || Array.isArray(next)))
      throw new UsageError(`invalid --set "${assignment}": ${key} is not a mapping`);
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = m[2]!;
}

/** Every value as `path=value`, certificates and the token described rather than shown. */
export function describeValues(values: Record<string, unknown>, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    if (typeof value === "object" && value !== null && !Array.isArray(value))
      out.push(...describeValues(value as Record<string, unknown>, path));
    else if (path === "bootstrapToken") out.push(`${path}=<secret, in the values file>`);
    else if (typeof value === "string" && value.includes("-----BEGIN "))
      out.push(`${path}=<PEM certificate>`);
    else out.push(`${path}=${String(value)}`);
  }
  return out;
}

const DEPLOYMENTS: Resource = {
  group: "apps",
  version: "v1",
  plural: "deployments",
  kind: "Deployment",
  namespaced: true,
};

interface Container {
  env?: { name: string; value?: string }[];
}

/**
 * After the cacerts Secret changed: istiod reads the plug-in CA at start only, unless
 * AUTO_RELOAD_PLUGIN_CERTS is set. Restarts it with `restart` (what `kubectl rollout restart`
 * does: a new pod-template annotation), else says that it must be restarted.
 */
export async function afterCacertsChange(
  kube: KubeClient,
  restart: boolean,
  say: (line: string) => void,
): Promise<void> {
  const istiod = await kube.get(DEPLOYMENTS, "istiod", "istio-system");
  if (istiod === undefined) {
    say("istio: no Deployment istio-system/istiod yet; it reads cacerts when it starts");
    return;
  }
  const spec = istiod.spec as { template?: { spec?: { containers?: Container[] } } } | undefined;
  const containers = spec?.template?.spec?.containers ?? [];
  const autoReload = containers.some((c) =>
    c.env?.some((e) => e.name === "AUTO_RELOAD_PLUGIN_CERTS" && e.value === "true"),
  );
  if (autoReload) {
    say("istio: istiod has AUTO_RELOAD_PLUGIN_CERTS=true and loads the new CA itself");
  } else if (restart) {
    const patch = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "istiod", namespace: "istio-system" },
      spec: {
        template: {
          metadata: { annotations: { "isthmus.dev/restartedAt": new Date().toISOString() } },
        },
      },
    };
    await kube.apply(DEPLOYMENTS, patch as never, { fieldManager: "isthmus-install", force: true });
    say("istio: restarted istio-system/istiod so that it signs with the new CA");
  } else {
    say(
      "istio: istiod must be restarted to sign with the new CA: " +
        "kubectl -n istio-system rollout restart deployment/istiod (or re-run with --restart-istiod)",
    );
  }
}
