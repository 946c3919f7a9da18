import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Path } from "@bufbuild/protobuf/reflect";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import { RE2JS } from "@bufbuild/re2";
import { status } from "@grpc/grpc-js";
import { GrpcError } from "./errors.js";

/** Inputs up to this long are matched with the platform's RegExp, longer ones with RE2. */
const NATIVE_MAX_INPUT = 1024;
const nativePatterns = new Map<string, RegExp | null>();
const re2Patterns = new Map<string, RE2JS>();

/**
 * protovalidate's `string.pattern` rules, matched with the platform's RegExp for short inputs:
 * its default RE2 engine (pure JavaScript) took 17-34 s to check a snapshot of 10,000
 * services and 10,000 identities against the contract's label and name patterns, against
 * 0.2-0.5 s here. The patterns are the contract's constants, not input, and none backtracks
 * worse than quadratically in the input; bounding the input to 1,024 characters bounds that
 * (every pattern-checked field of the contract is shorter; a longer value fails its length
 * rule anyway). Longer inputs, and a pattern RegExp cannot compile, go to RE2 (linear time).
 */
function regexMatch(pattern: string, against: string): boolean {
  if (against.length <= NATIVE_MAX_INPUT) {
    let re = nativePatterns.get(pattern);
    if (re === undefined) {
      try {
        re = new RegExp(pattern, "u");
      } catch {
        re = null;
      }
      nativePatterns.set(pattern, re);
    }
    if (re !== null) return re.test(against);
  }
  let re2 = re2Patterns.get(pattern);
  if (re2 === undefined) {
    re2 = RE2JS.compile(pattern);
    re2Patterns.set(pattern, re2);
  }
  return re2.test(against);
}

const validator = createValidator({ regexMatch });

/** Fields whose values an error must not repeat (they are logged). */
const SECRET_FIELD = /token|secret|password|key|pem/i;

/** The value at `path` in a decoded message, or undefined when the path does not lead to one. */
function valueAt(message: unknown, path: Path): unknown {
  let at: unknown = message;
  for (const e of path) {
    if (at === null || typeof at !== "object") return undefined;
    const o = at as Record<string, unknown>;
    if (e.kind === "field") {
      if (SECRET_FIELD.test(e.name)) return undefined;
      at =
        e.oneof === undefined
          ? o[e.localName]
          : (o[e.oneof.localName] as { value?: unknown })?.value;
    } else if (e.kind === "list_sub") at = (at as unknown[])[e.index];
    else if (e.kind === "map_sub") at = o[String(e.key)];
    else return undefined;
  }
  return at;
}

/**
 * `field: problem [rule]: got <value>`: the value is named when it is a scalar (a map key for
 * a key's violation), quoted as JSON so that control characters show as escapes, and cut
 * to 64 characters.
 */
function describe(message: unknown, v: Violation): string {
  const value = v.forKey
    ? (() => {
        const last = v.field.at(-1);
        return last?.kind === "map_sub" ? last.key : undefined;
      })()
    : valueAt(message, v.field);
  const scalar = ["string", "number", "bigint", "boolean"].includes(typeof value);
  if (!scalar) return v.toString();
  const text = typeof value === "string" ? value : String(value);
  const shown = JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
  return `${v.toString()}: got ${typeof value === "string" ? shown : text}`;
}

/**
 * Checks a message against the protovalidate rules of its schema. Throws an
 * INVALID_ARGUMENT GrpcError listing every violation as `field: problem`.
 */
export function validateMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): void {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return;
  if (result.kind === "error") {
    throw new GrpcError(
      status.INTERNAL,
      `cannot validate ${schema.typeName}: ${result.error.message}`,
      {
        cause: result.error,
      },
    );
  }
  // A map key's violation repeats the key in the field path as is: escape control characters
  // there too, since these errors are logged and printed.
  const problems = result.violations
    .map((v) => describe(message, v))
    .join("; ")
    .replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  throw new GrpcError(status.INVALID_ARGUMENT, `invalid ${schema.typeName}: ${problems}`);
}
