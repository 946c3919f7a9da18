// `policy explain`: one connection (--from/--to), or many in one ExplainBatch call: pairs
// from a file (--pairs) and the matrix of two selectors (--from-selector/--to-selector).
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Decision,
  type DestinationRef,
  DestinationRefSchema,
  type ExplainBatchRequestSchema,
  type ExplainBatchResponse,
  type ExplainRequestSchema,
  type SourceRef,
  SourceRefSchema,
} from "@isthmus/proto";
import { parse } from "yaml";
import { UsageError } from "./connection.js";
import { table } from "./output.js";
import { readInputs } from "./policy-files.js";

export const decisionName = (d: Decision) =>
  d === Decision.ALLOW ? "ALLOW" : d === Decision.DENY ? "DENY" : "-";

/** `cluster/ns/serviceaccount` (withPort false) or `cluster/ns/service[:port]`. */
function parseRef(value: string, what: string, withPort: boolean) {
  const m = withPort
    ? /^([^/]*)\/([^/]+)\/([^/:]+)(?::(\d+))?$/.exec(value)
    : /^([^/]+)\/([^/]+)\/([^/]+)$/.exec(value);
  if (m === null) {
    throw new UsageError(
      withPort
        ? `${what} "${value}": expected <cluster>/<namespace>/<service>[:port] (cluster may be empty)`
        : `${what} "${value}": expected <cluster>/<namespace>/<service-account>`,
    );
  }
  const port = m[4] === undefined ? 0 : Number(m[4]);
  if (port > 65535) throw new UsageError(`${what} "${value}": port ${port} is above 65535`);
  return { cluster: m[1] ?? "", namespace: m[2]!, name: m[3]!, port };
}

export function sourceRef(value: string, what: string): SourceRef {
  const r = parseRef(value, what, false);
  return create(SourceRefSchema, {
    clusterId: r.cluster,
    namespace: r.namespace,
    serviceAccount: r.name,
  });
}

export function destinationRef(value: string, what: string): DestinationRef {
  const r = parseRef(value, what, true);
  return create(DestinationRefSchema, {
    clusterId: r.cluster,
    namespace: r.namespace,
    service: r.name,
    port: r.port,
  });
}

/**
 * The pairs of a --pairs file (`-`: standard input): a YAML or JSON list of
 * `{from: cluster/ns/sa, to: cluster/ns/service[:port]}`. Problems name the file and index.
 */
export function readPairs(path: string): MessageInitShape<typeof ExplainRequestSchema>[] {
  const [[name, text]] = readInputs([path]) as [[string, string]];
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new UsageError(`${name}: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (!Array.isArray(data)) throw new UsageError(`${name}: expected a list of {from, to} pairs`);
  return data.map((item: unknown, i) => {
    const at = `${name}: [${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item))
      throw new UsageError(`${at}: expected a mapping with from and to`);
    const { from, to, ...rest } = item as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0)
      throw new UsageError(`${at}.${extra[0]}: unknown field (expected from, to)`);
    if (typeof from !== "string") throw new UsageError(`${at}.from: required, a string`);
    if (typeof to !== "string") throw new UsageError(`${at}.to: required, a string`);
    return { source: sourceRef(from, `${at}.from`), destination: destinationRef(to, `${at}.to`) };
  });
}

export interface ExplainFlags {
  from?: string;
  to?: string;
  pairs?: string;
  fromSelector?: string;
  toSelector?: string;
}

/** The batch request of the flags, or undefined for one --from/--to connection. */
export function batchRequest(
  flags: ExplainFlags,
): MessageInitShape<typeof ExplainBatchRequestSchema> | undefined {
  const one = flags.from !== undefined || flags.to !== undefined;
  const matrix = flags.fromSelector !== undefined || flags.toSelector !== undefined;
  if (one && (matrix || flags.pairs !== undefined))
    throw new UsageError(
      "--from/--to explain one connection: use them without --pairs and selectors",
    );
  if (one) {
    if (flags.from === undefined || flags.to === undefined)
      throw new UsageError("--from and --to go together");
    return undefined;
  }
  if (matrix && (flags.fromSelector === undefined || flags.toSelector === undefined))
    throw new UsageError("--from-selector and --to-selector go together");
  if (!matrix && flags.pairs === undefined)
    throw new UsageError(
      "give --from and --to, --pairs <file>, or --from-selector and --to-selector",
    );
  return {
    pairs: flags.pairs === undefined ? [] : readPairs(flags.pairs),
    ...(matrix
      ? {
          fromSelector: sourceRef(flags.fromSelector!, "--from-selector"),
          toSelector: destinationRef(flags.toSelector!, "--to-selector"),
        }
      : {}),
  };
}

const sourceText = (s: SourceRef | undefined) =>
  `${s?.clusterId}/${s?.namespace}/${s?.serviceAccount}`;
const destinationText = (d: DestinationRef | undefined) =>
  `${d?.clusterId}/${d?.namespace}/${d?.service}${d?.port ? `:${d.port}` : ""}`;

/** One row per connection; an error row says why it could not be explained. */
export function batchTable(res: ExplainBatchResponse): string {
  return table(
    ["SOURCE", "DESTINATION", "DECISION", "DECIDED BY", "WARNINGS"],
    res.results.map((r) => {
      const e = r.explanation;
      if (r.error !== "" || e === undefined)
        return [sourceText(r.source), destinationText(r.destination), "-", `error: ${r.error}`, 0];
      return [
        sourceText(r.source),
        destinationText(r.destination),
        decisionName(e.decision),
        e.rule ? `policy ${e.rule}` : `default (${e.defaultReason})`,
        e.warnings.length,
      ];
    }),
  );
}

/** The errors of a batch, one line each, naming the connection. */
export function batchErrors(res: ExplainBatchResponse): string[] {
  return res.results
    .filter((r) => r.error !== "")
    .map((r) => `${sourceText(r.source)} -> ${destinationText(r.destination)}: ${r.error}`);
}
