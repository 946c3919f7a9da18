import { type Metadata, status } from "@grpc/grpc-js";

/** Status codes of gRPC, re-exported so that callers need no grpc-js import. */
export { status as Code } from "@grpc/grpc-js";

/**
 * An error with a gRPC status code. Handlers throw it to answer with that code;
 * clients receive it for every failed call.
 */
export class GrpcError extends Error {
  override readonly name = "GrpcError";

  /** Trailing metadata of a failed call a client received (e.g. `retry-after`). */
  readonly metadata: Metadata | undefined;

  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown; metadata?: Metadata },
  ) {
    super(message, options);
    this.metadata = options?.metadata;
  }

  /** The status name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return status[this.code] ?? `CODE_${this.code}`;
  }

  /** Converts anything thrown into a GrpcError; unknown errors become INTERNAL. */
  static from(err: unknown): GrpcError {
    if (isGrpcError(err)) return err;
    if (isServiceError(err))
      return new GrpcError(err.code, err.details || err.message, {
        cause: err,
        ...(err.metadata !== undefined ? { metadata: err.metadata } : {}),
      });
    const message = err instanceof Error ? err.message : String(err);
    return new GrpcError(status.INTERNAL, message, { cause: err });
  }
}

/** Checks by name, so that copies of this module in other bundles are recognized. */
export function isGrpcError(err: unknown): err is GrpcError {
  return (
    err instanceof Error && err.name === "GrpcError" && typeof (err as GrpcError).code === "number"
  );
}

function isServiceError(
  err: unknown,
): err is Error & { code: status; details: string; metadata?: Metadata } {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === "number" &&
    typeof (err as { details?: unknown }).details === "string"
  );
}
