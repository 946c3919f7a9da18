// Admin routes under `/kubesim/`: seeding objects and the fault engine (see the package
// README). Not part of the Kubernetes API; tests and the sandbox drive them.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FailOptions } from "../faults.js";
import { isPlainObject } from "../object.js";
import { badRequest, methodNotAllowed, pathNotFound } from "../status.js";
import { JSON_TYPE, parseBody, readBody, writeJson } from "./encoding.js";
import type { ServerContext } from "./server-context.js";

/** The fail options of an admin request body, ignoring unknown keys. */
function failOptions(args: Record<string, unknown>): FailOptions {
  const o: FailOptions = {};
  if (args.code === 500 || args.code === 503 || args.code === 429) o.code = args.code;
  else if (args.code !== undefined) {
    throw badRequest(`fault fail: code must be 500, 503 or 429, got ${String(args.code)}`);
  }
  if (typeof args.retryAfterSeconds === "number") o.retryAfterSeconds = args.retryAfterSeconds;
  if (typeof args.method === "string") o.method = args.method;
  if (typeof args.pathPrefix === "string") o.pathPrefix = args.pathPrefix;
  if (typeof args.watch === "boolean") o.watch = args.watch;
  return o;
}

/** Serves `/kubesim/seed` and `/kubesim/faults[/<action>]`. */
export async function handleAdmin(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  segments: string[],
): Promise<void> {
  const { faults } = ctx;
  const method = req.method ?? "GET";
  const raw = method === "POST" ? await readBody(req) : Buffer.alloc(0);
  const ok = (extra: Record<string, unknown> = {}) =>
    writeJson(res, 200, JSON.stringify({ ok: true, ...extra }));
  if (segments[1] === "seed" && method === "POST") {
    return ok({ loaded: ctx.seed(raw.toString("utf8")).length });
  }
  const body = parseBody(raw, JSON_TYPE);
  if (segments[1] !== "faults") throw pathNotFound();
  const action = segments[2];
  const args = isPlainObject(body) ? body : {};
  if (action === undefined) {
    if (method === "GET") return writeJson(res, 200, JSON.stringify(faults.state()));
    if (method === "DELETE") {
      faults.reset();
      return ok();
    }
  }
  if (method !== "POST") throw methodNotAllowed("admin faults take POST");
  switch (action) {
    case "close-watches":
      return ok({ closed: faults.closeWatches() });
    case "fail":
      faults.failNext(Number(args.count ?? 1), failOptions(args));
      return ok();
    case "latency":
      faults.setLatency(Number(args.ms ?? 0));
      return ok();
    case "compact":
      faults.compact();
      return ok({ resourceVersion: String(ctx.store.rv) });
    case "pause":
      faults.pause();
      return ok();
    case "resume":
      faults.resume();
      return ok();
    case "reset":
      faults.reset();
      return ok();
    default:
      throw pathNotFound();
  }
}
