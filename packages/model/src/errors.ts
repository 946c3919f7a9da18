/** What went wrong, as a stable machine-readable code. */
export type ModelErrorCode = "unknown-cluster" | "invalid-entry" | "internal";

/** The one error class of `@isthmus/model`. Messages are lowercase and name the object first. */
export class ModelError extends Error {
  override name = "ModelError" as const;
  readonly code: ModelErrorCode;

  constructor(message: string, code: ModelErrorCode, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Wraps anything thrown into a ModelError, keeping ModelErrors as they are. */
  static from(reason: unknown, code: ModelErrorCode = "internal"): ModelError {
    if (isModelError(reason)) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new ModelError(message, code, { cause: reason });
  }
}

/** Checks the name rather than `instanceof`, so that errors from another copy still match. */
export function isModelError(reason: unknown): reason is ModelError {
  return (
    reason instanceof Error &&
    reason.name === "ModelError" &&
    typeof (reason as { code?: unknown }).code === "string"
  );
}
