/** A `Status` cause, as in `details.causes` of a real API server response. */
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** The `Status` object the API server writes for failures. */
export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

/**
 * An API error carrying the `Status` body that the HTTP layer writes. The in-process
 * API throws it too, so callers see the same reason and code as over HTTP.
 */
export class KubeSimError extends Error {
  override readonly name = "KubeSimError";
  readonly status: Status;

  constructor(status: Status, options?: { cause?: unknown }) {
    super(status.message, options);
    this.status = status;
  }

  get code(): number {
    return this.status.code;
  }

  get reason(): string {
    return this.status.reason;
  }

  static from(err: unknown): KubeSimError {
    if (isKubeSimError(err)) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new KubeSimError(statusFailure(500, "InternalError", `internal error: ${message}`), {
      cause: err,
    });
  }
}

export function isKubeSimError(err: unknown): err is KubeSimError {
  return err instanceof Error && err.name === "KubeSimError" && "status" in err;
}

export function statusFailure(
  code: number,
  reason: string,
  message: string,
  details?: Status["details"],
): Status {
  const status: Status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details !== undefined) status.details = details;
  return status;
}

/** `<resource>.<group>` or `<resource>` for the core group, as the server names kinds in messages. */
export function qualifiedResource(resource: string, group: string): string {
  return group === "" ? resource : `${resource}.${group}`;
}

export function notFound(group: string, resource: string, name: string): KubeSimError {
  return new KubeSimError(
    statusFailure(404, "NotFound", `${qualifiedResource(resource, group)} "${name}" not found`, {
      name,
      group,
      kind: resource,
    }),
  );
}

export function alreadyExists(group: string, resource: string, name: string): KubeSimError {
  return new KubeSimError(
    statusFailure(
      409,
      "AlreadyExists",
      `${qualifiedResource(resource, group)} "${name}" already exists`,
      { name, group, kind: resource },
    ),
  );
}

export function conflict(
  group: string,
  resource: string,
  name: string,
  why: string,
  causes?: StatusCause[],
): KubeSimError {
  const details: Status["details"] = { name, group, kind: resource };
  if (causes !== undefined) details.causes = causes;
  return new KubeSimError(
    statusFailure(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": ${why}`,
      details,
    ),
  );
}

/** 422 Invalid, with one cause per field error, worded like the real server. */
export function invalid(
  group: string,
  kind: string,
  name: string,
  causes: StatusCause[],
): KubeSimError {
  const list = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : (c.message ?? "")));
  const summary = list.length === 1 ? list[0] : `[${list.join(", ")}]`;
  const qualifiedKind = group === "" ? kind : `${kind}.${group}`;
  return new KubeSimError(
    statusFailure(422, "Invalid", `${qualifiedKind} "${name}" is invalid: ${summary}`, {
      name,
      group,
      kind,
      causes,
    }),
  );
}

export function badRequest(message: string): KubeSimError {
  return new KubeSimError(statusFailure(400, "BadRequest", message));
}

export function methodNotAllowed(message: string): KubeSimError {
  return new KubeSimError(statusFailure(405, "MethodNotAllowed", message));
}

export function unsupportedMediaType(message: string): KubeSimError {
  return new KubeSimError(statusFailure(415, "UnsupportedMediaType", message));
}

export function gone(message: string): KubeSimError {
  return new KubeSimError(statusFailure(410, "Expired", message));
}

export function pathNotFound(): KubeSimError {
  return new KubeSimError(
    statusFailure(404, "NotFound", "the server could not find the requested resource", {}),
  );
}
