import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parsePolicyYaml, policyToYaml } from "@isthmus/policy";
import {
  Action,
  ApplyPoliciesResponseSchema,
  type ConnectionPolicy,
  Decision,
  type DecisionChange,
  DeletePolicyResponseSchema,
  type ExplainResponse,
  ExplainResponseSchema,
  GetPolicyResponseSchema,
  ListPoliciesResponseSchema,
} from "@isthmus/proto";
import type { Command } from "commander";
import { conflictLine } from "../conflicts.js";
import {
  type ConnectionFlags,
  UsageError,
  withAdmin,
  withConnectionOptions,
} from "../connection.js";
import { type OutputFormat, outputOption, print, table } from "../output.js";

type ReadFlags = ConnectionFlags & { output: OutputFormat };

/** Reads policies from a file or every *.yaml / *.yml file of a folder (sorted by name). */
export function readPolicyFiles(path: string): ConnectionPolicy[] {
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(path, f))
      : [path];
  } catch (err) {
    throw new UsageError(`${path}: ${(err as Error).message}`);
  }
  if (files.length === 0) throw new UsageError(`${path}: no .yaml or .yml files`);
  return files.flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new UsageError(`${file}: ${(err as Error).message}`);
    }
    return parsePolicyYaml(text, file);
  });
}

const decisionName = (d: Decision) =>
  d === Decision.ALLOW ? "ALLOW" : d === Decision.DENY ? "DENY" : "-";

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

/**
 * Namespace sameness, said where it matters: a caller in another cluster reaches the service
 * through an import, which lives in the service's namespace in the caller's cluster.
 */
function importNote(source: string, namespace: string, res: ExplainResponse): string[] {
  const remote = res.backends.some((b) => b.clusterId !== source && b.decision === Decision.ALLOW);
  return remote
    ? [
        `note: the import lives in namespace "${namespace}" of ${source} (the service's namespace), which must exist there`,
      ]
    : [];
}

function parseRef(value: string, flag: string, withPort: boolean) {
  const m = withPort
    ? /^([^/]*)\/([^/]+)\/([^/:]+)(?::(\d+))?$/.exec(value)
    : /^([^/]+)\/([^/]+)\/([^/]+)$/.exec(value);
  if (m === null) {
    throw new UsageError(
      withPort
        ? `${flag} "${value}": expected <cluster>/<namespace>/<service>[:port] (cluster may be empty)`
        : `${flag} "${value}": expected <cluster>/<namespace>/<service-account>`,
    );
  }
  return m;
}

export function registerPolicyCommand(program: Command): void {
  const policy = program.command("policy").description("write and inspect connection policies");

  withConnectionOptions(policy.command("apply"))
    .description("create or update the policies of a file or folder as one batch (all or nothing)")
    .requiredOption("-f, --file <path>", "policy YAML file or folder")
    .option("--dry-run", "print the connections whose decision would change; store nothing")
    .option("--force", "also replace policies that the policy source cluster owns")
    .addOption(outputOption())
    .action(async (flags: ReadFlags & { file: string; dryRun?: boolean; force?: boolean }) => {
      const policies = readPolicyFiles(flags.file);
      const res = await withAdmin(flags, (c, call) =>
        c.applyPolicies(
          { policies, dryRun: flags.dryRun ?? false, force: flags.force ?? false },
          call,
        ),
      );
      print(flags.output, ApplyPoliciesResponseSchema, res, () =>
        [
          ...res.policies.map(
            (p) =>
              `policy ${p.name} ${flags.dryRun ? "would be applied" : `applied (version ${p.resourceVersion})`}`,
          ),
          impactTable(res.impact),
        ].join("\n"),
      );
    });

  withConnectionOptions(policy.command("list"))
    .description("list policies in evaluation order")
    .addOption(outputOption())
    .action(async (flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.listPolicies({}, call));
      print(flags.output, ListPoliciesResponseSchema, res, () =>
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
      );
    });

  withConnectionOptions(policy.command("get <name>"))
    .description("show one policy (as YAML by default)")
    .addOption(outputOption().default("yaml"))
    .action(async (name: string, flags: ReadFlags) => {
      const res = await withAdmin(flags, (c, call) => c.getPolicy({ name }, call));
      if (flags.output === "yaml") process.stdout.write(policyToYaml(res.policy!));
      else print(flags.output, GetPolicyResponseSchema, res, () => policyToYaml(res.policy!));
    });

  withConnectionOptions(policy.command("delete <name>"))
    .description("delete one policy")
    .option("--dry-run", "print the connections whose decision would change; delete nothing")
    .option("--force", "also delete a policy that the policy source cluster owns")
    .addOption(outputOption())
    .action(async (name: string, flags: ReadFlags & { dryRun?: boolean; force?: boolean }) => {
      const res = await withAdmin(flags, (c, call) =>
        c.deletePolicy({ name, dryRun: flags.dryRun ?? false, force: flags.force ?? false }, call),
      );
      print(flags.output, DeletePolicyResponseSchema, res, () =>
        [
          `policy ${name} ${flags.dryRun ? "would be deleted" : "deleted"}`,
          impactTable(res.impact),
        ].join("\n"),
      );
    });

  withConnectionOptions(policy.command("explain"))
    .description("explain the decision for one source identity and one destination")
    .requiredOption("--from <cluster/ns/serviceaccount>", "the calling workload identity")
    .requiredOption(
      "--to <cluster/ns/service[:port]>",
      "the destination (empty cluster: any backing cluster)",
    )
    .addOption(outputOption())
    .action(async (flags: ReadFlags & { from: string; to: string }) => {
      const [, fc, fns, fsa] = parseRef(flags.from, "--from", false);
      const [, tc, tns, tsvc, tport] = parseRef(flags.to, "--to", true);
      const res = await withAdmin(flags, (c, call) =>
        c.explain(
          {
            source: { clusterId: fc!, namespace: fns!, serviceAccount: fsa! },
            destination: {
              clusterId: tc ?? "",
              namespace: tns!,
              service: tsvc!,
              port: tport === undefined ? 0 : Number(tport),
            },
          },
          call,
        ),
      );
      print(flags.output, ExplainResponseSchema, res, () =>
        [
          `decision: ${decisionName(res.decision)}`,
          `decided by: ${res.rule ? `policy ${res.rule}` : `default (${res.defaultReason})`}`,
          `principal: ${res.principal}`,
          ...res.backends.flatMap((b) => [
            `  via ${b.clusterId}: ${decisionName(b.decision)} (${b.rule || "default"})`,
            ...b.conflicts.map(
              (c) => `  conflict in ${b.clusterId}: ${conflictLine(c)}; ${c.reason}`,
            ),
          ]),
          ...res.warnings.map((w) => `warning ${w.code}: ${w.message}`),
          ...importNote(fc!, tns!, res),
        ].join("\n"),
      );
    });
}
