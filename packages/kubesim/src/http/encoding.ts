// Encoding: request bodies in (JSON, YAML, protobuf objects), responses out (JSON bytes,
// Status objects, lists, watch event lines, Tables). Stored objects are encoded once per
// version and the bytes reused, so that lists and watch fan-out copy rather than encode.
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import type { KubeObject } from "../object.js";
import { isPlainObject } from "../object.js";
import { decodeProtobufObject } from "../protobuf.js";
import type { ResourceType } from "../resources.js";
import { apiVersionOf } from "../resources.js";
import type { Status } from "../status.js";
import { badRequest, KubeSimError, statusFailure } from "../status.js";
import type { Stored } from "../store.js";

export const JSON_TYPE = "application/json";

function parseJsonOrYaml(text: string): unknown {
  if (text.trimStart().startsWith("{")) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // flow-style YAML such as `{a: b}`: not JSON
    }
  }
  return parseYaml(text) as unknown;
}

export function writeJson(
  res: ServerResponse,
  code: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, {
    "Content-Type": JSON_TYPE,
    "Content-Length": typeof body === "string" ? Buffer.byteLength(body) : body.length,
    ...headers,
  });
  res.end(body);
}

export function writeStatus(
  res: ServerResponse,
  status: Status,
  headers: Record<string, string> = {},
): void {
  writeJson(res, status.code, JSON.stringify(status), headers);
}

/** The request body (events rather than `for await`, whose async iterator costs more than
 * reading a small body). */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new Error("the client closed the connection before the body"));
    });
  });
}

export function parseBody(raw: Buffer, contentType: string): unknown {
  const decoded = contentType.includes("protobuf") ? decodeProtobufObject(raw) : undefined;
  if (decoded !== undefined) return decoded;
  if (contentType.includes("protobuf") || contentType.includes("cbor")) {
    throw new KubeSimError(
      statusFailure(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (kubesim does not decode ${contentType})`,
      ),
    );
  }
  const text = raw.toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    // JSON is YAML, and clients (client-node, kubectl) send apply patches as JSON: try the
    // JSON parser first, an order of magnitude faster than the YAML one.
    if (contentType.includes("yaml")) return parseJsonOrYaml(text);
    return JSON.parse(text) as unknown;
  } catch (err: unknown) {
    throw badRequest(
      `could not decode the request body as ${contentType.includes("yaml") ? "YAML" : "JSON"}: ${(err as Error).message}`,
    );
  }
}

/** The object's JSON at a version; cached as bytes, so lists and fan-out copy, not encode. */
export function serialize(s: Stored, t: ResourceType, version: string): Buffer {
  const apiVersion = apiVersionOf(t.group, version);
  if (s.obj.apiVersion === apiVersion) {
    s.json ??= Buffer.from(JSON.stringify(s.obj));
    return s.json;
  }
  return Buffer.from(JSON.stringify({ ...s.obj, apiVersion }));
}

/** A list of stored objects, assembled from their cached bytes. */
export function listBody(
  t: ResourceType,
  version: string,
  meta: Record<string, unknown>,
  items: Stored[],
): Buffer {
  const head = JSON.stringify({
    kind: t.listKind,
    apiVersion: apiVersionOf(t.group, version),
    metadata: meta,
  });
  const parts: Buffer[] = [Buffer.from(`${head.slice(0, -1)},"items":[`)];
  const comma = Buffer.from(",");
  items.forEach((s, i) => {
    if (i > 0) parts.push(comma);
    parts.push(serialize(s, t, version));
  });
  parts.push(Buffer.from("]}"));
  return Buffer.concat(parts);
}

/** One line of a watch stream. */
export function eventLine(type: string, object: Buffer | string): Buffer {
  return Buffer.concat([
    Buffer.from(`{"type":"${type}","object":`),
    typeof object === "string" ? Buffer.from(object) : object,
    Buffer.from("}\n"),
  ]);
}

/** The object at the requested version (a copy when it differs). */
export function withVersion(obj: KubeObject, t: ResourceType, version: string): KubeObject {
  const apiVersion = apiVersionOf(t.group, version);
  return obj.apiVersion === apiVersion ? obj : { ...obj, apiVersion };
}

/** Parses multi-document YAML into objects, skipping empty documents and expanding `List`s. */
export function parseObjects(yaml: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    if (!isPlainObject(v)) throw new Error("invalid YAML: each document must be an object");
    if (typeof v.kind === "string" && v.kind.endsWith("List") && Array.isArray(v.items)) {
      out.push(...(v.items as KubeObject[]));
    } else {
      out.push(v as KubeObject);
    }
  }
  return out;
}
