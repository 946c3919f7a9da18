import { createHash } from "node:crypto";
import type { ResourceType } from "./resources.js";

const verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/** The Kubernetes version the simulator reports (kubectl v1.32 is within skew). */
export const serverVersion = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-kubesim",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "go1.23.0",
  compiler: "gc",
  platform: "linux/amd64",
};

function groupsOf(types: Iterable<ResourceType>): Map<string, ResourceType[]> {
  const groups = new Map<string, ResourceType[]>();
  for (const t of types) {
    const list = groups.get(t.group) ?? [];
    list.push(t);
    groups.set(t.group, list);
  }
  return groups;
}

function versionsOf(types: ResourceType[]): string[] {
  const versions: string[] = [];
  for (const t of types) for (const v of t.versions) if (!versions.includes(v)) versions.push(v);
  return versions;
}

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

function apiGroup(group: string, types: ResourceType[]): Record<string, unknown> {
  const versions = versionsOf(types).map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions, preferredVersion: versions[0] };
}

export function apiGroupList(types: Iterable<ResourceType>): unknown {
  const groups = [...groupsOf(types)].filter(([g]) => g !== "").map(([g, ts]) => apiGroup(g, ts));
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

export function apiGroupDoc(group: string, types: Iterable<ResourceType>): unknown | undefined {
  const ts = groupsOf(types).get(group);
  if (ts === undefined || group === "") return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, ts) };
}

export function apiResourceList(
  group: string,
  version: string,
  types: Iterable<ResourceType>,
): unknown | undefined {
  const ts = [...types].filter((t) => t.group === group && t.versions.includes(version));
  if (ts.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const t of ts) {
    const r: Record<string, unknown> = {
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs,
      storageVersionHash: createHash("sha256")
        .update(`${t.group}/${t.resource}`)
        .digest("base64")
        .slice(0, 11),
    };
    if (t.shortNames.length > 0) r.shortNames = t.shortNames;
    if (t.categories.length > 0) r.categories = t.categories;
    resources.push(r);
    if (t.statusSubresource) {
      resources.push({
        name: `${t.resource}/status`,
        singularName: "",
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: ["get", "patch", "update"],
      });
    }
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group === "" ? version : `${group}/${version}`,
    resources,
  };
}

function gvPath(group: string, version: string): string {
  return group === "" ? `api/${version}` : `apis/${group}/${version}`;
}

/** `/openapi/v3`: one entry per group-version, each linking to its document. */
export function openApiRoot(types: Iterable<ResourceType>, generation: number): unknown {
  const paths: Record<string, unknown> = {};
  for (const [group, ts] of groupsOf(types)) {
    for (const v of versionsOf(ts)) {
      const p = gvPath(group, v);
      const hash = createHash("sha256")
        .update(`${p}:${generation}`)
        .digest("hex")
        .slice(0, 32)
        .toUpperCase();
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
    }
  }
  return { paths };
}

const queryParam = (name: string, description: string) => ({
  name,
  in: "query",
  description,
  schema: { type: "string", uniqueItems: true },
});

/**
 * The OpenAPI v3 document of one group-version. Schemas are open objects (kubesim validates
 * on the server); what kubectl needs from it is the PATCH operation per kind with the
 * `fieldValidation` parameter, which tells it to leave validation to the server.
 */
export function openApiGroupVersion(
  path: string,
  types: Iterable<ResourceType>,
): unknown | undefined {
  const m = /^(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (!m) return undefined;
  const group = m[2] ?? "";
  const version = m[1] ?? m[3]!;
  const ts = [...types].filter((t) => t.group === group && t.versions.includes(version));
  if (ts.length === 0) return undefined;
  const prefix = group === "" ? `/api/${version}` : `/apis/${group}/${version}`;
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  const groupId = group === "" ? "io.k8s.api.core" : group.split(".").reverse().join(".");
  for (const t of ts) {
    const gvk = { group, version, kind: t.kind };
    const schemaName = `${groupId}.${version}.${t.kind}`;
    schemas[schemaName] = {
      type: "object",
      "x-kubernetes-group-version-kind": [gvk],
      "x-kubernetes-preserve-unknown-fields": true,
      properties: {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      },
    };
    const ref = { $ref: `#/components/schemas/${schemaName}` };
    const itemPath = t.namespaced
      ? `${prefix}/namespaces/{namespace}/${t.resource}/{name}`
      : `${prefix}/${t.resource}/{name}`;
    // Strategic merge patch is served for core types but not advertised here: kubectl would
    // then compute client-side apply patches from these open schemas (and warn that it cannot
    // find the fields) instead of from its built-in types, which carry the merge keys.
    const content = Object.fromEntries(
      [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
      ].map((ct) => [ct, { schema: { type: "object" } }]),
    );
    paths[itemPath] = {
      get: {
        operationId: `read${t.kind}`,
        responses: {
          "200": { description: "OK", content: { "application/json": { schema: ref } } },
        },
        "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": gvk,
      },
      patch: {
        operationId: `patch${t.kind}`,
        parameters: [
          queryParam(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
          ),
          queryParam(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
          ),
          queryParam(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
          ),
          {
            name: "force",
            in: "query",
            description: "Force is going to force Apply requests.",
            schema: { type: "boolean", uniqueItems: true },
          },
        ],
        requestBody: { content, required: true },
        responses: {
          "200": { description: "OK", content: { "application/json": { schema: ref } } },
        },
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk,
      },
    };
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: serverVersion.gitVersion },
    paths,
    components: { schemas },
  };
}
