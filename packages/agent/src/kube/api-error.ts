// A failed Kubernetes API call: the HTTP status, the Status reason, and whether a retry may
// succeed.
/** A failed Kubernetes API call, with the HTTP status and the Status reason. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";

  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly retryAfterSeconds: number | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Conflicts, throttling, server errors and network failures: worth a retry. */
  get transient(): boolean {
    return this.code === 0 || this.code === 409 || this.code === 429 || this.code >= 500;
  }

  static from(err: unknown): KubeApiError {
    if (isKubeApiError(err)) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new KubeApiError(0, "NetworkError", message, undefined, { cause: err });
  }
}

export function isKubeApiError(err: unknown): err is KubeApiError {
  return err instanceof Error && err.name === "KubeApiError";
}

/** The error of an answer with `status` and body `text` (a Status object, or not). */
export function parseError(
  status: number,
  text: string,
  retryAfterHeader: string | undefined,
  what: string,
): KubeApiError {
  let reason = "";
  let message = text.slice(0, 500);
  let retryAfter: number | undefined;
  try {
    const parsed = JSON.parse(text) as {
      reason?: string;
      message?: string;
      details?: { retryAfterSeconds?: number };
    };
    reason = parsed.reason ?? "";
    message = parsed.message ?? message;
    retryAfter = parsed.details?.retryAfterSeconds;
  } catch {
    // not a Status object: keep the raw text
  }
  if (
    retryAfter === undefined &&
    retryAfterHeader !== undefined &&
    /^[0-9]+$/.test(retryAfterHeader)
  )
    retryAfter = Number(retryAfterHeader);
  return new KubeApiError(
    status,
    reason,
    `${what}: ${status} ${reason} ${message}`.replace(/\s+/g, " ").trim(),
    retryAfter,
  );
}
