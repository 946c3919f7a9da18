import type { KubeObject } from "./object.js";

/**
 * Decodes the Kubernetes protobuf request bodies that kubectl's typed `create` generators
 * send (`kubectl create namespace|configmap|secret|serviceaccount`): the `k8s\0` envelope
 * (runtime.Unknown) around the core v1 message. Only the fields those commands set are read;
 * other kinds return undefined so the server can answer 415.
 */
export function decodeProtobufObject(body: Buffer): KubeObject | undefined {
  if (body.length < 4 || body.subarray(0, 4).toString("latin1") !== "k8s\0") return undefined;
  const unknown = fields(body.subarray(4));
  const typeMeta = fields(one(unknown, 1) ?? Buffer.alloc(0));
  const apiVersion = str(one(typeMeta, 1));
  const kind = str(one(typeMeta, 2));
  const raw = one(unknown, 2);
  if (apiVersion !== "v1" || raw === undefined) return undefined;
  const msg = fields(raw);
  const metadata = objectMeta(one(msg, 1));
  switch (kind) {
    case "Namespace": {
      const spec = fields(one(msg, 2) ?? Buffer.alloc(0));
      const finalizers = all(spec, 1).map(str);
      return {
        apiVersion,
        kind,
        metadata,
        ...(finalizers.length > 0 ? { spec: { finalizers } } : {}),
      };
    }
    case "ConfigMap": {
      const obj: KubeObject = { apiVersion, kind, metadata };
      const data = map(all(msg, 2), str);
      const binaryData = map(all(msg, 3), (b) => b.toString("base64"));
      if (data !== undefined) obj.data = data;
      if (binaryData !== undefined) obj.binaryData = binaryData;
      if (one(msg, 4) !== undefined) obj.immutable = bool(one(msg, 4));
      return obj;
    }
    case "Secret": {
      const obj: KubeObject = { apiVersion, kind, metadata };
      const data = map(all(msg, 2), (b) => b.toString("base64"));
      const stringData = map(all(msg, 4), str);
      if (data !== undefined) obj.data = data;
      if (one(msg, 3) !== undefined) obj.type = str(one(msg, 3));
      if (stringData !== undefined) obj.stringData = stringData;
      if (one(msg, 5) !== undefined) obj.immutable = bool(one(msg, 5));
      return obj;
    }
    case "ServiceAccount": {
      const obj: KubeObject = { apiVersion, kind, metadata };
      const pullSecrets = all(msg, 3).map((b) => ({ name: str(one(fields(b), 1)) }));
      if (pullSecrets.length > 0) obj.imagePullSecrets = pullSecrets;
      if (one(msg, 4) !== undefined) obj.automountServiceAccountToken = bool(one(msg, 4));
      return obj;
    }
    default:
      return undefined;
  }
}

type Fields = Map<number, (Buffer | number)[]>;

function varint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error("protobuf: truncated varint");
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7;
  }
}

/** Top-level fields of a message: length-delimited ones as Buffers, varints as numbers. */
function fields(buf: Buffer): Fields {
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = varint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let value: Buffer | number;
    if (wire === 0) {
      [value, pos] = varint(buf, p1);
    } else if (wire === 2) {
      const [len, p2] = varint(buf, p1);
      value = buf.subarray(p2, p2 + len);
      pos = p2 + len;
    } else if (wire === 1) {
      value = 0;
      pos = p1 + 8;
    } else if (wire === 5) {
      value = 0;
      pos = p1 + 4;
    } else {
      throw new Error(`protobuf: unsupported wire type ${wire}`);
    }
    const list = out.get(field) ?? [];
    list.push(value);
    out.set(field, list);
  }
  return out;
}

function one(f: Fields, n: number): Buffer | undefined {
  const v = f.get(n)?.at(-1);
  return Buffer.isBuffer(v) ? v : typeof v === "number" ? Buffer.from([v ? 1 : 0]) : undefined;
}

function all(f: Fields, n: number): Buffer[] {
  return (f.get(n) ?? []).filter((v): v is Buffer => Buffer.isBuffer(v));
}

function str(b: Buffer | undefined): string {
  return b === undefined ? "" : b.toString("utf8");
}

function bool(b: Buffer | undefined): boolean {
  return b !== undefined && b[0] === 1;
}

/** A `map<string, X>` field: repeated entries with key = 1 and value = 2. */
function map<T>(entries: Buffer[], value: (b: Buffer) => T): Record<string, T> | undefined {
  if (entries.length === 0) return undefined;
  const out: Record<string, T> = {};
  for (const e of entries) {
    const f = fields(e);
    out[str(one(f, 1))] = value(one(f, 2) ?? Buffer.alloc(0));
  }
  return out;
}

function objectMeta(b: Buffer | undefined): KubeObject["metadata"] {
  const f = fields(b ?? Buffer.alloc(0));
  const meta: KubeObject["metadata"] = { name: str(one(f, 1)) };
  if (one(f, 2) !== undefined) meta.generateName = str(one(f, 2));
  if (one(f, 3) !== undefined) meta.namespace = str(one(f, 3));
  const labels = map(all(f, 11), str);
  const annotations = map(all(f, 12), str);
  if (labels !== undefined) meta.labels = labels;
  if (annotations !== undefined) meta.annotations = annotations;
  const finalizers = all(f, 14).map(str);
  if (finalizers.length > 0) meta.finalizers = finalizers;
  return meta;
}
