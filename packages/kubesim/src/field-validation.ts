// Server-side field validation: the `fieldValidation` query parameter of create, update and
// patch (kubectl sends `Strict` by default, `--validate=warn|ignore` the others). A field the
// schema does not declare is refused (Strict), dropped with a `Warning` header (Warn, the
// server's default), or dropped silently (Ignore), in the API server's words. kubesim knows the
// fields of Istio's kinds (generated from Istio's CRDs) and of every object's metadata; other
// kinds' bodies are not checked below their metadata.
import { type FieldTree, istioFields } from "./gen/istio-fields.js";
import { isPlainObject } from "./object.js";
import { badRequest, KubeSimError, statusFailure } from "./status.js";

export type FieldValidation = "Strict" | "Warn" | "Ignore";

const ownerReferences: FieldTree = {
  i: { p: { apiVersion: 0, kind: 0, name: 0, uid: 0, controller: 0, blockOwnerDeletion: 0 } },
};
const managedField: FieldTree = {
  i: {
    p: {
      manager: 0,
      operation: 0,
      apiVersion: 0,
      time: 0,
      fieldsType: 0,
      fieldsV1: 1,
      subresource: 0,
    },
  },
};
/** ObjectMeta as the API server declares it. */
const objectMeta: FieldTree = {
  p: {
    name: 0,
    generateName: 0,
    namespace: 0,
    selfLink: 0,
    uid: 0,
    resourceVersion: 0,
    generation: 0,
    creationTimestamp: 0,
    deletionTimestamp: 0,
    deletionGracePeriodSeconds: 0,
    labels: 0,
    annotations: 0,
    ownerReferences,
    finalizers: 0,
    managedFields: managedField,
  },
};

/** The group, version and kind a body is checked as (a patch body may name none). */
export interface Gvk {
  group: string;
  version: string;
  kind: string;
}

/** Walks `value` against `tree`, reporting each undeclared field's path and, when `prune`,
 * deleting it (values are request bodies: plain JSON). */
function walk(
  value: unknown,
  tree: FieldTree,
  path: string,
  found: string[],
  prune: boolean,
): void {
  if (tree === 0 || tree === 1 || value === null || typeof value !== "object") return;
  if ("i" in tree) {
    if (Array.isArray(value)) {
      for (let n = 0; n < value.length; n++) walk(value[n], tree.i, `${path}[${n}]`, found, prune);
    }
    return;
  }
  if (!isPlainObject(value)) return;
  if ("m" in tree) {
    for (const k of Object.keys(value)) walk(value[k], tree.m, `${path}.${k}`, found, prune);
    return;
  }
  for (const k of Object.keys(value)) {
    // `$patch`, `$retainKeys` and friends are strategic merge patch directives, not fields.
    if (k.startsWith("$")) continue;
    const sub = k in tree.p ? tree.p[k] : undefined;
    if (sub === undefined) {
      found.push(path === "" ? k : `${path}.${k}`);
      if (prune) delete value[k];
    } else {
      walk(value[k], sub, path === "" ? k : `${path}.${k}`, found, prune);
    }
  }
}

/** Paths of the fields of `body` (an object of kind `gvk`, or a patch of one) that the kind
 * does not declare, such as `spec.endpoint` or `spec.ports[0].nmae`; with `prune`, they are
 * deleted from it. */
export function unknownFields(body: Record<string, unknown>, gvk: Gvk, prune = false): string[] {
  const found: string[] = [];
  const tree = istioFields[`${gvk.group}/${gvk.version}/${gvk.kind}`];
  if (typeof tree === "object" && "p" in tree) {
    walk(
      body,
      { p: { ...tree.p, apiVersion: 0, kind: 0, metadata: objectMeta } },
      "",
      found,
      prune,
    );
  } else {
    // Other kinds: only metadata is checked, since kubesim does not hold their schemas.
    walk(body.metadata, objectMeta, "metadata", found, prune);
  }
  return found;
}

/** The request's directive: `fieldValidation`, `Warn` when absent (the server's default). */
export function fieldValidationOf(q: URLSearchParams): FieldValidation {
  const v = q.get("fieldValidation");
  if (v === null || v === "") return "Warn";
  if (v === "Strict" || v === "Warn" || v === "Ignore") return v;
  throw badRequest(
    `fieldValidation: Unsupported value: ${JSON.stringify(v)}: supported values: "Ignore", "Strict", "Warn"`,
  );
}

const strictMessage = (fields: string[]) =>
  `strict decoding error: ${fields.map((f) => `unknown field ${JSON.stringify(f)}`).join(", ")}`;

/**
 * Applies the directive to a create or update body, or to a merge or strategic merge patch:
 * throws the API server's BadRequest under Strict, otherwise drops the unknown fields and
 * returns the warnings to send (none under Ignore). A create or update body is named in the
 * message as the server's decoder names it (`ServiceEntry in version "v1" cannot be handled
 * as a ServiceEntry: …`); a patch is not.
 */
export function checkBodyFields(
  body: Record<string, unknown>,
  gvk: Gvk,
  directive: FieldValidation,
  decoding: "object" | "patch",
): string[] {
  const fields = unknownFields(body, gvk, directive !== "Strict");
  if (fields.length === 0 || directive === "Ignore") return [];
  if (directive === "Warn") return fields.map((f) => `unknown field ${JSON.stringify(f)}`);
  const message =
    decoding === "patch"
      ? strictMessage(fields)
      : `${gvk.kind} in version ${JSON.stringify(gvk.version)} cannot be handled as a ${gvk.kind}: ${strictMessage(fields)}`;
  throw badRequest(message);
}

/**
 * A server-side apply body with undeclared fields fails whatever the directive: the API server
 * cannot build the typed patch. It answers 500 with this message (a known upstream wart that
 * clients see as is; kubectl prints "Error from server: failed to create typed patch object …").
 */
export function checkApplyFields(
  body: Record<string, unknown>,
  gvk: Gvk,
  target: { namespace: string | undefined; name: string },
): void {
  const fields = unknownFields(body, gvk);
  if (fields.length === 0) return;
  const errors = fields.map((f) => `.${f}: field not declared in schema`);
  const detail = errors.length === 1 ? errors[0] : `errors:\n  ${errors.join("\n  ")}`;
  const kind = `${gvk.group}/${gvk.version}, Kind=${gvk.kind}`;
  throw new KubeSimError(
    statusFailure(
      500,
      "",
      `failed to create typed patch object (${target.namespace ?? ""}/${target.name}; ${kind}): ${detail}`,
    ),
  );
}
