/** What went wrong, as a stable machine-readable code. */
export type PolicyErrorCode =
  | "invalid-yaml"
  | "invalid-document"
  | "invalid-policy"
  | "duplicate-policy"
  | "not-found"
  | "internal";

/** The one error class of `@isthmus/policy`. Messages are lowercase and context first. */
export class PolicyError extends Error {
  override name = "PolicyError" as const;
  readonly code: PolicyErrorCode;

  constructor(message: string, code: PolicyErrorCode, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Wraps anything thrown into a PolicyError, keeping PolicyErrors as they are. */
  static from(reason: unknown, code: PolicyErrorCode = "internal"): PolicyError {
    if (isPolicyError(reason)) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new PolicyError(message, code, { cause: reason });
  }
}

/** Checks the name rather than `instanceof`, so that errors from another copy still match. */
export function isPolicyError(reason: unknown): reason is PolicyError {
  return (
    reason instanceof Error &&
    reason.name === "PolicyError" &&
    typeof (reason as { code?: unknown }).code === "string"
  );
}
