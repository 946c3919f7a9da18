import type { KubeObject } from "./object.js";
import { readJsonPath } from "./object.js";
import type { ResourceType } from "./resources.js";

/** Kubernetes' short human durations: `5s`, `3m`, `2h`, `4d`, `2y`. */
export function humanAge(since: string | undefined, now: Date): string {
  if (since === undefined) return "<unknown>";
  const seconds = Math.max(0, Math.floor((now.getTime() - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return `${minutes}m${seconds % 60 > 0 ? `${seconds % 60}s` : ""}`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 730) return `${days}d`;
  return `${Math.floor(days / 365)}y`;
}

export function columnDefinitions(t: ResourceType): unknown[] {
  return [
    {
      name: "Name",
      type: "string",
      format: "name",
      description: "Name must be unique within a namespace.",
      priority: 0,
    },
    ...t.columns.map((c) => ({
      name: c.name,
      type: c.type,
      format: "",
      description: c.description ?? "",
      priority: 0,
    })),
    {
      name: "Age",
      type: "string",
      format: "",
      description:
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
      priority: 0,
    },
  ];
}

function cell(v: unknown): unknown {
  if (v === undefined || v === null) return "<none>";
  if (typeof v === "object") return JSON.stringify(v);
  return v;
}

export function tableRow(
  t: ResourceType,
  obj: KubeObject,
  now: Date,
  includeObject: string,
): unknown {
  const cells = [
    obj.metadata.name,
    ...t.columns.map((c) => cell(readJsonPath(obj, c.jsonPath))),
    humanAge(obj.metadata.creationTimestamp, now),
  ];
  const row: Record<string, unknown> = { cells };
  if (includeObject === "Object") row.object = obj;
  else if (includeObject !== "None") {
    row.object = {
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1",
      metadata: obj.metadata,
    };
  }
  return row;
}

export function table(
  t: ResourceType,
  objs: KubeObject[],
  meta: Record<string, unknown>,
  now: Date,
  includeObject: string,
): unknown {
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: meta,
    columnDefinitions: columnDefinitions(t),
    rows: objs.map((o) => tableRow(t, o, now, includeObject)),
  };
}
