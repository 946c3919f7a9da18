import {
  type LabelSelector,
  parseLabelSelector,
  policyListObject,
  policyToObject,
  policyToYaml,
} from "@isthmus/policy";
import {
  Action,
  type ApplyPoliciesResponse,
  ApplyPoliciesResponseSchema,
  type ConnectionPolicy,
  type DecisionChange,
  DeletePolicyResponseSchema,
  ExplainBatchResponseSchema,
  ExplainResponseSchema,
  GetPolicyResponseSchema,
  ListPoliciesResponseSchema,
} from "@isthmus/proto";
import type { Command } from "commander";
import {
  type ConnectionFlags,
  UsageError,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { ExitCode, type OutputFormat, outputOption, print, table } from "../output.js";
import {
  batchErrors,
  batchRequest,
  batchTable,
  decisionName,
  destinationRef,
  type ExplainFlags,
  sourceRef,
} from "../policy-explain.js";
import { readPolicyFiles } from "../policy-files.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

type ApplyFlags = ReadFlags & {
  file?: string[];
  dryRun?: boolean;
  prune?: boolean;
  selector?: string;
};

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** The policies of the -f inputs that -l selects; the others are named on stderr. */
function selectedPolicies(flags: ApplyFlags): ConnectionPolicy[] {
  const files = flags.file ?? [];
  if (files.length === 0) throw new UsageError("-f <file|folder|-> is required");
  if (flags.prune && flags.selector === undefined)
    throw new UsageError("--prune needs -l <selector>: the stored policies it may delete");
  let selector: LabelSelector | undefined;
  if (flags.selector !== undefined) {
    try {
      selector = parseLabelSelector(flags.selector);
    } catch (err) {
      throw new UsageError(`-l: ${(err as Error).message}`);
    }
  }
  const located = readPolicyFiles(files);
  if (located.length === 0 && !flags.prune)
    throw new Error(`no policies in ${files.join(", ")}: nothing to apply`);
  const out: ConnectionPolicy[] = [];
  for (const { policy, where } of located) {
    if (selector === undefined || selector.matches(policy.labels)) out.push(policy);
    else
      process.stderr.write(
        `isthmus: warning: ${where}: policy "${policy.name}" skipped: its labels do not match -l ${flags.selector}\n`,
      );
  }
  if (out.length === 0 && !flags.prune)
    throw new UsageError(`-l ${flags.selector}: selects none of the policies given`);
  return out;
}

/** The lines `policy apply` prints for people: what each policy became, then the impact. */
function applySummary(res: ApplyPoliciesResponse, dryRun: boolean): string {
  const unchanged = new Set(res.unchanged);
  return [
    ...res.policies.map((p) =>
      unchanged.has(p.name)
        ? `policy ${p.name} unchanged`
        : `policy ${p.name} ${dryRun ? "would be applied" : `applied (version ${p.resourceVersion})`}`,
    ),
    ...res.pruned.map((name) => `policy ${name} ${dryRun ? "would be pruned" : "pruned"}`),
    impactTable(res.impact),
  ].join("\n");
}

export function impactTable(impact: DecisionChange[]): string {
  if (impact.length === 0) return "no connection changes its decision";
  return table(
    ["SOURCE", "DESTINATION", "BEFORE", "AFTER", "RULE AFTER"],
    impact.map((c) => [
      `${c.source?.clusterId}/${c.source?.namespace}/${c.source?.serviceAccount}`,
      `${c.destination?.clusterId}/${c.destination?.namespace}/${c.destination?.service}${c.destination?.port ? `:${c.destination.port}` : ""}`,
      decisionName(c.before),
      decisionName(c.after),
      c.ruleAfter || "(default)",
    ]),
  );
}

export function registerPolicyCommand(program: Command): void {
  const policy = program.command("policy").description("write and inspect connection policies");

  withConnectionOptions(policy.command("apply"))
    .description(
      "create or update the policies of files and folders as one batch (all or nothing); with --prune, delete the stored policies -l selects that they no longer hold",
    )
    .option(
      "-f, --file <path>",
      "policy file (YAML or JSON, ConnectionPolicy or List), folder (read recursively: *.yaml, *.yml, *.json) or - for standard input; repeatable",
      collect,
    )
    .option("--dry-run", "print what would change (policies, prunes, connections); store nothing")
    .option(
      "-l, --selector <selector>",
      "label selector (k=v, k!=v, k in (a,b), k notin (a,b), k, !k; comma: and): apply only the policies of the files it selects",
    )
    .option(
      "--prune",
      "also delete stored policies that -l selects and the files no longer hold, in the same batch",
    )
    .addOption(outputOption())
    .action(async (flags: ApplyFlags) => {
      const policies = selectedPolicies(flags);
      const res = await withAdmin(flags, (c, call) =>
        c.applyPolicies(
          {
            policies,
            dryRun: flags.dryRun ?? false,
            pruneSelector: flags.prune ? flags.selector! : "",
          },
          call,
        ),
      );
      // Selectors that match nothing: likely typos, said on stderr so that -o stays parseable.
      for (const w of res.warnings)
        process.stderr.write(`isthmus: warning: policy "${w.policy}": ${w.path}: ${w.message}\n`);
      print(flags.output, ApplyPoliciesResponseSchema, res, () =>
        applySummary(res, flags.dryRun ?? false),
      );
    });

  withConnectionOptions(policy.command("list"))
    .description("list policies in evaluation order")
    .addOption(outputOption())
    .action(async (flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.listPolicies({}, call));
      print(
        flags.output,
        ListPoliciesResponseSchema,
        res,
        () =>
          table(
            ["NAME", "PRIORITY", "ACTION", "FROM", "TO", "VERSION"],
            res.policies.map((p) => [
              p.name,
              p.priority,
              p.action === Action.ALLOW ? "ALLOW" : "DENY",
              p.from.length,
              p.to.length,
              p.resourceVersion,
            ]),
          ),
        // The shape `policy apply -f -` reads back: list -o yaml | apply -f - round-trips.
        () => policyListObject(res.policies),
      );
    });

  withConnectionOptions(policy.command("get <name>"))
    .description("show one policy (as YAML by default)")
    .addOption(outputOption().default("yaml"))
    .action(async (name: string, flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.getPolicy({ name }, call));
      print(
        flags.output,
        GetPolicyResponseSchema,
        res,
        () => policyToYaml(res.policy!).trimEnd(),
        () => policyToObject(res.policy!),
      );
    });

  withConnectionOptions(policy.command("delete <name>"))
    .description("delete one policy")
    .option("--dry-run", "print the connections whose decision would change; delete nothing")
    .addOption(outputOption())
    .action(async (name: string, flags: ReadFlags & { dryRun?: boolean }) => {
      const res = await withAdmin(flags, (c, call) =>
        c.deletePolicy({ name, dryRun: flags.dryRun ?? false }, call),
      );
      print(flags.output, DeletePolicyResponseSchema, res, () =>
        [
          `policy ${name} ${flags.dryRun ? "would be deleted" : "deleted"}`,
          impactTable(res.impact),
        ].join("\n"),
      );
    });

  withConnectionOptions(policy.command("explain"))
    .description(
      "explain the decision for one connection, or for many in one call (--pairs, --from-selector/--to-selector)",
    )
    .option("--from <cluster/ns/serviceaccount>", "the calling workload identity")
    .option(
      "--to <cluster/ns/service[:port]>",
      "the destination (empty cluster: any backing cluster)",
    )
    .option(
      "--pairs <file>",
      "many connections: a YAML or JSON list of {from, to} in the syntax of --from and --to (- for standard input)",
    )
    .option(
      "--from-selector <cluster/ns/serviceaccount>",
      "with --to-selector: every catalog identity these names or globs match is a source",
    )
    .option(
      "--to-selector <cluster/ns/service[:port]>",
      "with --from-selector: every catalog service these names or globs match is a destination (empty cluster: each service once, any backing cluster)",
    )
    .addOption(outputOption())
    .action(async (flags: ReadFlags & ExplainFlags) => {
      const batch = batchRequest(flags);
      if (batch !== undefined) {
        const res = await withAdmin(flags, (c, call) => c.explainBatch(batch, call));
        print(flags.output, ExplainBatchResponseSchema, res, () => batchTable(res));
        const errors = batchErrors(res);
        for (const e of errors) process.stderr.write(`isthmus: ${e}\n`);
        if (errors.length > 0) throw new ExitCode(1);
        return;
      }
      const source = sourceRef(flags.from!, "--from");
      const destination = destinationRef(flags.to!, "--to");
      const res = await withAdmin(flags, (c, call) => c.explain({ source, destination }, call));
      print(flags.output, ExplainResponseSchema, res, () =>
        [
          `decision: ${decisionName(res.decision)}`,
          `decided by: ${res.rule ? `policy ${res.rule}` : `default (${res.defaultReason})`}`,
          `principal: ${res.principal}`,
          ...res.backends.map(
            (b) => `  via ${b.clusterId}: ${decisionName(b.decision)} (${b.rule || "default"})`,
          ),
          ...res.warnings.map((w) => `warning ${w.code}: ${w.message}`),
        ].join("\n"),
      );
    });
}
