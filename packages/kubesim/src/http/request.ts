// What a request asks for beyond its path: query parameters and headers shared by routes.
import type { IncomingMessage } from "node:http";
import type { ResourceType } from "../resources.js";
import type { Selector } from "../selectors.js";
import { both, parseFieldSelector, parseLabelSelector } from "../selectors.js";

/** Whether the client asks for a Table (kubectl get). */
export function wantsTable(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? "";
  return accept.split(",")[0]!.includes("as=Table");
}

/** A boolean query parameter as the real server reads it. */
export function truthy(v: string | null): boolean {
  return v === "true" || v === "1";
}

/** The label and field selectors of a list, watch or collection delete. */
export function selectorsOf(q: URLSearchParams, t: ResourceType): Selector {
  return both(
    parseLabelSelector(q.get("labelSelector") ?? undefined),
    parseFieldSelector(q.get("fieldSelector") ?? undefined, t.kind),
  );
}

/** The field manager of a write without `fieldManager`: the client's name. */
export function defaultManager(req: IncomingMessage): string {
  const ua = req.headers["user-agent"] ?? "unknown";
  return ua.split("/")[0]!.trim() || "unknown";
}
