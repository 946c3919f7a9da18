// Which clusters `isthmus check` and `isthmus verify` read, from their flags:
// `--cluster id=kubeconfig[:context]` (repeatable), or `--kubeconfig` (repeatable) with
// `--context` (repeatable, with one kubeconfig only), or the default kubeconfig's current
// context.
import { type Command, Option } from "commander";
import { UsageError } from "../connection.js";

/** One cluster to check: where its API server is and what to call it in the report. */
export interface CheckTarget {
  /** The cluster id (`--cluster id=…`) or, without one, the kubeconfig context's name. */
  id: string;
  /** The kubeconfig file; undefined: KUBECONFIG or ~/.kube/config. */
  kubeconfig: string | undefined;
  /** The context; undefined: the kubeconfig's current context. */
  context: string | undefined;
}

export interface TargetFlags {
  cluster: string[];
  kubeconfig: string[];
  context: string[];
  istioNamespace: string;
  output: "text" | "json";
}

const collect = (v: string, previous: string[]) => [...previous, v];

/** The flags that name the clusters a command reads (`what`: "to check", "to read"), the
 * Istio namespace and the report format. */
export function withTargetOptions(command: Command, what: string): Command {
  return command
    .option(
      "--cluster <id=kubeconfig[:context]>",
      `a cluster ${what}, by its Isthmus id; repeatable (the kubeconfig path ends at the first ':')`,
      collect,
      [],
    )
    .option(
      "--kubeconfig <file>",
      `a kubeconfig whose current context (or each --context) is a cluster ${what}, named by the context; repeatable`,
      collect,
      [],
    )
    .option(
      "--context <name>",
      `a context of the one --kubeconfig (or of the default kubeconfig) ${what}; repeatable`,
      collect,
      [],
    )
    .option("--istio-namespace <ns>", "Istio's system namespace", "istio-system")
    .addOption(
      new Option("-o, --output <format>", "report format")
        .choices(["text", "json"])
        .default("text"),
    );
}

/** The same syntax as cluster ids everywhere in Isthmus (DNS-1123 label). */
const CLUSTER_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `id=kubeconfig[:context]`; the kubeconfig path ends at the first ':' (contexts such as
 * EKS ARNs contain ':', paths seldom do). */
export function parseClusterFlag(value: string): CheckTarget {
  const m = /^([^=]*)=([^:]*)(?::(.*))?$/.exec(value);
  if (m === null || m[2] === "")
    throw new UsageError(`--cluster ${value}: expected id=kubeconfig[:context]`);
  const id = m[1]!;
  if (!CLUSTER_ID.test(id))
    throw new UsageError(
      `--cluster ${value}: invalid cluster id "${id}": expected a DNS label (lowercase letters, digits, '-')`,
    );
  if (m[3] === "") throw new UsageError(`--cluster ${value}: empty context after ':'`);
  return { id, kubeconfig: m[2]!, context: m[3] };
}

/** Every cluster the flags name, before any kubeconfig is read. */
export function targetsOf(flags: TargetFlags): {
  explicit: CheckTarget[];
  fromKubeconfigs: Omit<CheckTarget, "id">[];
} {
  const explicit = flags.cluster.map(parseClusterFlag);
  if (flags.context.length > 0 && flags.kubeconfig.length > 1)
    throw new UsageError(
      "--context: ambiguous with several --kubeconfig files; use --cluster id=kubeconfig:context for each",
    );
  const fromKubeconfigs: Omit<CheckTarget, "id">[] = [];
  const files: (string | undefined)[] =
    flags.kubeconfig.length > 0
      ? flags.kubeconfig
      : explicit.length === 0 || flags.context.length > 0
        ? [undefined]
        : [];
  for (const kubeconfig of files) {
    if (flags.context.length === 0) fromKubeconfigs.push({ kubeconfig, context: undefined });
    for (const context of flags.context) fromKubeconfigs.push({ kubeconfig, context });
  }
  return { explicit, fromKubeconfigs };
}

/** Refuses two targets with one id: the report and the trust-domain check key on it. */
export function assertDistinctIds(targets: readonly CheckTarget[]): void {
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.id))
      throw new UsageError(
        `cluster "${t.id}" is given twice: name each with --cluster id=kubeconfig[:context]`,
      );
    seen.add(t.id);
  }
}

/** `kubectl` with the flags that reach this cluster, for the fix lines. */
export function kubectlFor(t: Pick<CheckTarget, "kubeconfig" | "context">): string {
  return [
    "kubectl",
    ...(t.kubeconfig === undefined ? [] : ["--kubeconfig", t.kubeconfig]),
    ...(t.context === undefined ? [] : ["--context", t.context]),
  ].join(" ");
}

/** Targets with ids, each with a client; kubeconfig problems are usage errors naming the
 * file. */
export async function resolveTargets(flags: TargetFlags) {
  const { createKubeClient, kubeConfigFromDefault } = await import("@isthmus/agent");
  const { explicit, fromKubeconfigs } = targetsOf(flags);
  const load = (t: Omit<CheckTarget, "id">, id: string | undefined) => {
    const where = t.kubeconfig ?? "the default kubeconfig";
    let kc: ReturnType<typeof kubeConfigFromDefault>;
    try {
      kc = kubeConfigFromDefault(t.kubeconfig);
    } catch (err) {
      throw new UsageError(`kubeconfig ${where}: ${(err as Error).message}`);
    }
    if (t.context !== undefined) {
      if (kc.getContextObject(t.context) === null)
        throw new UsageError(`kubeconfig ${where}: no context "${t.context}"`);
      kc.setCurrentContext(t.context);
    }
    const context = kc.getCurrentContext();
    if (!context) throw new UsageError(`kubeconfig ${where}: no current context`);
    let kube: ReturnType<typeof createKubeClient>;
    try {
      kube = createKubeClient(kc);
    } catch (err) {
      throw new UsageError(`kubeconfig ${where}, context ${context}: ${(err as Error).message}`);
    }
    return { target: { ...t, id: id ?? context }, kube };
  };
  const resolved = [
    ...explicit.map((t) => load(t, t.id)),
    ...fromKubeconfigs.map((t) => load(t, undefined)),
  ];
  assertDistinctIds(resolved.map((r) => r.target));
  return resolved;
}
