// CustomResourceDefinitions as the API server handles them: a created CRD becomes a served
// type (refused when its names are invalid or name a built-in resource) with the status
// conditions NamesAccepted and Established; a changed one changes what is served, its group
// and plural name excepted.
import type { KubeObject } from "./object.js";
import { deepEqual } from "./object.js";
import type { ResourceType } from "./resources.js";
import { resourceKey, resourceTypeFromCrd } from "./resources.js";
import { invalid } from "./status.js";

/**
 * For a CRD about to be created (`obj`, of type `t`), the type it serves, after setting its
 * status as the API server does (`now`: the conditions' lastTransitionTime); undefined for
 * any other object. `types`: the served types, by `resourceKey`.
 */
export function crdTypeOnCreate(
  t: ResourceType,
  obj: KubeObject,
  types: ReadonlyMap<string, ResourceType>,
  now: () => string,
): ResourceType | undefined {
  if (t.kind !== "CustomResourceDefinition" || t.group !== "apiextensions.k8s.io") return undefined;
  const r = resourceTypeFromCrd(obj);
  if (typeof r === "string") {
    const [field, ...rest] = r.split(": ");
    throw invalid(t.group, t.kind, obj.metadata.name, [
      { reason: "FieldValueInvalid", field: field!, message: rest.join(": ") },
    ]);
  }
  const existing = types.get(resourceKey(r.group, r.resource));
  if (existing !== undefined && existing.crdName === undefined) {
    throw invalid(t.group, t.kind, obj.metadata.name, [
      {
        reason: "FieldValueInvalid",
        field: "spec.names.plural",
        message: `Invalid value: "${r.resource}": the resource is built in`,
      },
    ]);
  }
  obj.status = {
    conditions: [
      {
        type: "NamesAccepted",
        status: "True",
        reason: "NoConflicts",
        message: "no conflicts found",
        lastTransitionTime: now(),
      },
      {
        type: "Established",
        status: "True",
        reason: "InitialNamesAccepted",
        message: "the initial names have been accepted",
        lastTransitionTime: now(),
      },
    ],
    acceptedNames: (obj.spec as Record<string, unknown>).names,
    storedVersions: [r.versions[0]],
  };

  return r;
}

/** The new served type when a CRD's spec changes (versions, columns, scope...), if any. */
export function crdTypeChange(
  t: ResourceType,
  old: KubeObject,
  next: KubeObject,
): ResourceType | undefined {
  if (t.group !== "apiextensions.k8s.io" || t.kind !== "CustomResourceDefinition") return undefined;
  if (deepEqual(old.spec, next.spec)) return undefined;
  const r = resourceTypeFromCrd(next);
  const before = resourceTypeFromCrd(old);
  if (typeof r === "string") {
    const [field, ...rest] = r.split(": ");
    throw invalid(t.group, t.kind, next.metadata.name, [
      { reason: "FieldValueInvalid", field: field!, message: rest.join(": ") },
    ]);
  }
  if (typeof before !== "string" && (before.group !== r.group || before.resource !== r.resource)) {
    throw invalid(t.group, t.kind, next.metadata.name, [
      {
        reason: "FieldValueInvalid",
        field: "spec",
        message: "Invalid value: the group and plural name of a CRD are immutable",
      },
    ]);
  }
  return r;
}
