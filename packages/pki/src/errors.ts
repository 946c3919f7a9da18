/** What went wrong, as a stable machine-readable code. */
export type PkiErrorCode =
  | "missing-file"
  | "partial-set"
  | "unreadable"
  | "invalid-pem"
  | "invalid-certificate"
  | "invalid-key"
  | "key-mismatch"
  | "not-self-signed"
  | "not-signed-by-root"
  | "not-ca"
  | "key-usage"
  | "expired"
  | "not-yet-valid"
  | "chain-mismatch"
  | "root-mismatch"
  | "not-writable"
  | "file-exists"
  | "invalid-option"
  | "invalid-csr"
  | "invalid-identity"
  | "internal";

/** The one error class of `@isthmus/pki`. Messages are lowercase and name the file first. */
export class PkiError extends Error {
  override name = "PkiError" as const;
  readonly code: PkiErrorCode;

  constructor(message: string, code: PkiErrorCode, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  /** Wraps anything thrown into a PkiError, keeping PkiErrors as they are. */
  static from(reason: unknown, code: PkiErrorCode = "internal"): PkiError {
    if (isPkiError(reason)) {
      return reason;
    }
    const message = reason instanceof Error ? reason.message : String(reason);
    return new PkiError(message, code, { cause: reason });
  }
}

/** Checks the name rather than `instanceof`, so that errors from another copy still match. */
export function isPkiError(reason: unknown): reason is PkiError {
  return (
    reason instanceof Error &&
    reason.name === "PkiError" &&
    typeof (reason as { code?: unknown }).code === "string"
  );
}

/** `ENOENT`, `EACCES`… of a Node system error, or its message. */
export function describeSystemError(reason: unknown): string {
  if (reason instanceof Error) {
    const code = (reason as NodeJS.ErrnoException).code;
    return code ?? reason.message;
  }
  return String(reason);
}
