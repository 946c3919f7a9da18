// The one shape of objects that `-o json` and `-o yaml` print: the proto3 JSON mapping with
// enum values as plain words (`ALLOW`, not `ACTION_ALLOW`; `DENY`, not `DECISION_DENY`),
// and every ConnectionPolicy as the Kubernetes-style document `policy apply` reads back.
import {
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonValue,
  type MessageShape,
  toJson,
} from "@bufbuild/protobuf";
import { policyToObject } from "@isthmus/policy";
import { type ConnectionPolicy, ConnectionPolicySchema } from "@isthmus/proto";
import { stringify } from "yaml";

type JsonObject = { [key: string]: JsonValue };

/** `ACTION_ALLOW` -> `ALLOW`: the value's name without the prefix its enum's values share. */
function plainEnumWord(desc: DescEnum, value: JsonValue): JsonValue {
  // protobuf-es keeps the prefix in snake case ("decision_"); value names are upper case.
  const prefix = desc.sharedPrefix;
  if (typeof value !== "string" || prefix === undefined) return value;
  return value.toLowerCase().startsWith(prefix) ? value.slice(prefix.length) : value;
}

function plainValue(
  field: DescField,
  value: JsonValue,
  one: (v: JsonValue) => JsonValue,
): JsonValue {
  if (field.fieldKind === "list" && Array.isArray(value)) return value.map(one);
  if (field.fieldKind === "map" && typeof value === "object" && value !== null) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = one(v as JsonValue);
    return out;
  }
  return one(value);
}

/** A field's value in a message, a oneof member's too. */
function fieldValue(message: Record<string, unknown>, field: DescField): unknown {
  if (field.oneof === undefined) return message[field.localName];
  const group = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return group?.case === field.localName ? group.value : undefined;
}

/** Rewrites the JSON of a message of `desc` in place of `json`: enums and policies. */
function plain(desc: DescMessage, json: JsonValue, message: unknown): JsonValue {
  if (desc.typeName === ConnectionPolicySchema.typeName)
    return policyToObject(message as ConnectionPolicy) as JsonValue;
  // Well-known types (Timestamp...) map to strings or numbers: nothing inside to rewrite.
  if (typeof json !== "object" || json === null || Array.isArray(json)) return json;
  const out: JsonObject = { ...json };
  const source = message as Record<string, unknown>;
  for (const field of desc.fields) {
    const value = out[field.jsonName];
    if (value === undefined) continue;
    const enumDesc =
      field.fieldKind === "enum"
        ? field.enum
        : field.fieldKind === "list" && field.listKind === "enum"
          ? field.enum
          : field.fieldKind === "map" && field.mapKind === "enum"
            ? field.enum
            : undefined;
    const messageDesc =
      field.fieldKind === "message"
        ? field.message
        : field.fieldKind === "list" && field.listKind === "message"
          ? field.message
          : field.fieldKind === "map" && field.mapKind === "message"
            ? field.message
            : undefined;
    const inner = fieldValue(source, field);
    if (enumDesc !== undefined) {
      out[field.jsonName] = plainValue(field, value, (v) => plainEnumWord(enumDesc, v));
    } else if (messageDesc !== undefined) {
      if (field.fieldKind === "list") {
        const items = inner as unknown[];
        out[field.jsonName] = (value as JsonValue[]).map((v, i) => plain(messageDesc, v, items[i]));
      } else if (field.fieldKind === "map") {
        const entries = inner as Record<string, unknown>;
        const map: JsonObject = {};
        for (const [k, v] of Object.entries(value as JsonObject))
          map[k] = plain(messageDesc, v, entries[k]);
        out[field.jsonName] = map;
      } else out[field.jsonName] = plain(messageDesc, value, inner);
    }
  }
  return out;
}

/** A message as `-o json|yaml` print it (see the top of this file). */
export function plainJson<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): JsonValue {
  return plain(schema, toJson(schema, message, { alwaysEmitImplicit: false }), message);
}

/** Writes an object as indented JSON or as YAML. */
export function writeObject(format: "json" | "yaml", object: unknown): void {
  process.stdout.write(
    format === "json"
      ? `${JSON.stringify(object, null, 2)}\n`
      : stringify(object, { lineWidth: 0 }),
  );
}
