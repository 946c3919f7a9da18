// Which clusters `isthmus check` looks at, from its flags: `--cluster id=kubeconfig[:context]`
// (repeatable), or `--kubeconfig` (repeatable) with `--context` (repeatable, with one
// kubeconfig only), or the default kubeconfig's current context.
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
