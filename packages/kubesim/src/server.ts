// The HTTP layer of one simulated cluster: the router (authentication, admin routes, fault
// injection, health and discovery), resource routes (http/resource-routes.ts), watch fan-out
// and bookmarks (http/watch.ts), encoding (http/encoding.ts), admin routes
// (http/admin-routes.ts).
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  apiGroupDoc,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openApiGroupVersion,
  openApiRoot,
  serverVersion,
} from "./discovery.js";
import type { FaultEngine } from "./faults.js";
import { handleAdmin } from "./http/admin-routes.js";
import { writeJson, writeStatus } from "./http/encoding.js";
import { truthy } from "./http/request.js";
import { handleResource, parseResourcePath } from "./http/resource-routes.js";
import type { ServerContext } from "./http/server-context.js";
import { closeWatches, createWatchFanOut, sendBookmarks, type WatchFanOut } from "./http/watch.js";
import { KubeSimError, pathNotFound, statusFailure } from "./status.js";

export { parseObjects } from "./http/encoding.js";
export type { ServerContext } from "./http/server-context.js";

/** A failure the fault engine injects into one request. */
type InjectedFailure = NonNullable<ReturnType<FaultEngine["takeFailure"]>>;

/** Paths served without a token, as the real server serves them to anyone. */
const OPEN_PATHS = ["/healthz", "/livez", "/readyz", "/version"];

/** The HTTP layer: discovery, REST, watch, admin endpoints; created once per simulated cluster. */
export function createHandler(ctx: ServerContext): {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  closeWatches: () => number;
  openWatches: () => number;
  sendBookmarks: () => void;
  shutdown: () => void;
} {
  const fanOut = createWatchFanOut(ctx);
  return {
    handle: (req, res) => {
      route(ctx, fanOut, req, res).catch((err: unknown) => {
        const e = KubeSimError.from(err);
        if (res.headersSent) {
          res.end();
          return;
        }
        writeStatus(res, e.status);
      });
    },
    closeWatches: () => closeWatches(fanOut),
    openWatches: () => fanOut.watchers.size,
    sendBookmarks: () => sendBookmarks(fanOut),
    shutdown: () => {
      fanOut.stop();
      closeWatches(fanOut);
    },
  };
}

async function route(
  ctx: ServerContext,
  fanOut: WatchFanOut,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://kubesim");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const segments = path.split("/").filter((s) => s !== "");
  const q = url.searchParams;
  const method = req.method ?? "GET";
  const open = OPEN_PATHS.includes(path);
  if (ctx.token !== undefined && !open && req.headers.authorization !== `Bearer ${ctx.token}`) {
    writeStatus(res, statusFailure(401, "Unauthorized", "Unauthorized"));
    return;
  }
  if (segments[0] === "kubesim") return handleAdmin(ctx, req, res, segments);
  await ctx.faults.gate();
  const failure = ctx.faults.takeFailure(method, path, truthy(q.get("watch")));
  if (failure !== undefined) {
    writeInjectedFailure(res, failure);
    return;
  }
  if (method === "GET" && serveDiscovery(ctx, res, path, segments)) return;
  const p = parseResourcePath(segments, ctx.store);
  if (p === undefined) throw pathNotFound();
  return handleResource(ctx, fanOut, req, res, p, q);
}

/** The answer of a failure the fault engine injects, as the real server words it. */
function writeInjectedFailure(res: ServerResponse, failure: InjectedFailure): void {
  if (failure.code === 429) {
    const s = statusFailure(429, "TooManyRequests", "Too many requests, please try again later.", {
      retryAfterSeconds: failure.retryAfterSeconds,
    });
    writeStatus(res, s, { "Retry-After": String(failure.retryAfterSeconds) });
  } else if (failure.code === 503) {
    const s = statusFailure(
      503,
      "ServiceUnavailable",
      "the server is currently unable to handle the request",
      { retryAfterSeconds: failure.retryAfterSeconds },
    );
    writeStatus(res, s, { "Retry-After": String(failure.retryAfterSeconds) });
  } else {
    writeStatus(
      res,
      statusFailure(500, "InternalError", "Internal error occurred: kubesim: injected fault", {
        causes: [{ message: "kubesim: injected fault" }],
      }),
    );
  }
}

/** Health, version, discovery and OpenAPI documents; false when the path is none of them. */
function serveDiscovery(
  ctx: ServerContext,
  res: ServerResponse,
  path: string,
  segments: string[],
): boolean {
  const { store } = ctx;
  const send = (doc: unknown) => {
    if (doc === undefined) throw pathNotFound();
    writeJson(res, 200, JSON.stringify(doc));
    return true;
  };
  switch (path) {
    case "/healthz":
    case "/livez":
    case "/readyz":
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
      return true;
    case "/version":
      return send(serverVersion);
    case "/api":
      return send(apiVersions(ctx.serverAddress()));
    case "/apis":
      return send(apiGroupList(store.types.values()));
    case "/openapi/v3":
      return send(openApiRoot(store.types.values(), store.typesGeneration));
  }
  if (path.startsWith("/openapi/v3/")) {
    return send(openApiGroupVersion(path.slice("/openapi/v3/".length), store.types.values()));
  }
  if (segments[0] === "api" && segments.length === 2) {
    return send(apiResourceList("", segments[1]!, store.types.values()));
  }
  if (segments[0] === "apis" && segments.length === 2) {
    return send(apiGroupDoc(segments[1]!, store.types.values()));
  }
  if (segments[0] === "apis" && segments.length === 3) {
    return send(apiResourceList(segments[1]!, segments[2]!, store.types.values()));
  }
  return false;
}
