// The one description of a ConnectionPolicy document: which fields exist, their types and
// their limits. The document reader (policy-document.ts) and proto-level validation
// (policy-validate.ts) check against it; connectionPolicyJsonSchema() and
// connectionPolicyCrd() are generated from it (`npm run generate` writes them to
// schemas/connectionpolicy.schema.json and the hub chart; a test fails when they differ).
//
// What the schema cannot say and only the code checks: glob syntax beyond "contains a glob
// character" (compileGlob), and names unique across a set of policies.

import { MAX_GLOB_LENGTH } from "./glob.js";

/** apiVersion of ConnectionPolicy documents. */
export const POLICY_API_VERSION = "isthmus.dev/v1alpha1";
/** kind of ConnectionPolicy documents. */
export const POLICY_KIND = "ConnectionPolicy";
/** API group and version of the CRD. */
export const POLICY_GROUP = "isthmus.dev";
export const POLICY_VERSION = "v1alpha1";

export const MAX_SELECTORS = 64;
export const MAX_ITEMS = 256;
export const MAX_PORTS = 64;
export const MAX_DESCRIPTION = 1024;
export const MAX_LABELS = 64;

// Patterns carry their length limits, so that one regular expression (valid in ECMAScript
// and in Go's RE2, which the Kubernetes API server uses) says everything.
/** DNS-1123 label: at most 63 characters. */
export const LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/** DNS-1123 subdomain: at most 253 characters. */
export const SUBDOMAIN_PATTERN = "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
/** A string with a glob character (compileGlob checks the rest). */
export const GLOB_PATTERN = "[*?\\[\\]{}()!+@]";
/** Label key: an optional DNS-1123 subdomain prefix and "/", then a name of 63 characters. */
export const LABEL_KEY_PATTERN =
  "^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$";
/** Label value: empty, or 63 characters starting and ending alphanumeric. */
export const LABEL_VALUE_PATTERN = "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";

/** What a selector field holds. */
export type SelectorField =
  | { type: "names"; names: "label" | "subdomain"; what: string }
  | { type: "labels"; what: string }
  | { type: "ports"; what: string };

/** Fields of a source selector, in document order. */
export const SOURCE_FIELDS = {
  clusters: { type: "names", names: "label", what: "Cluster names or globs." },
  clusterLabels: { type: "labels", what: "Cluster labels that must all match." },
  namespaces: { type: "names", names: "label", what: "Namespace names or globs." },
  services: {
    type: "names",
    names: "label",
    what: "Services whose workloads are the source (names or globs).",
  },
  workloadLabels: { type: "labels", what: "Pod labels that must all match." },
  serviceAccounts: {
    type: "names",
    names: "subdomain",
    what: "Service account names or globs.",
  },
} as const satisfies Record<string, SelectorField>;

/** Fields of a destination selector, in document order. */
export const DESTINATION_FIELDS = {
  clusters: {
    type: "names",
    names: "label",
    what: "Cluster names or globs where the destination runs.",
  },
  clusterLabels: { type: "labels", what: "Cluster labels that must all match." },
  namespaces: { type: "names", names: "label", what: "Namespace names or globs." },
  services: { type: "names", names: "label", what: "Service names or globs." },
  ports: { type: "ports", what: "Destination ports; none: every port." },
} as const satisfies Record<string, SelectorField>;

export const TOP_FIELDS = ["apiVersion", "kind", "metadata", "spec"] as const;
export const METADATA_FIELDS = ["name", "labels", "annotations", "resourceVersion"] as const;
export const SPEC_FIELDS = ["priority", "action", "description", "from", "to"] as const;
export const ACTIONS = ["ALLOW", "DENY"] as const;

type Schema = { [key: string]: unknown };

function namesSchema(names: "label" | "subdomain", what: string): Schema {
  return {
    description: what,
    type: "array",
    maxItems: MAX_ITEMS,
    items: {
      type: "string",
      anyOf: [
        { pattern: names === "label" ? LABEL_PATTERN : SUBDOMAIN_PATTERN },
        { pattern: GLOB_PATTERN, maxLength: MAX_GLOB_LENGTH },
      ],
    },
  };
}

function labelsSchema(what: string, crd: boolean): Schema {
  return {
    description: what,
    type: "object",
    // The API server has no propertyNames: a CRD checks label values only.
    ...(crd ? {} : { propertyNames: { pattern: LABEL_KEY_PATTERN }, maxProperties: MAX_LABELS }),
    additionalProperties: { type: "string", pattern: LABEL_VALUE_PATTERN },
  };
}

function fieldSchema(field: SelectorField, crd: boolean): Schema {
  if (field.type === "names") return namesSchema(field.names, field.what);
  if (field.type === "labels") return labelsSchema(field.what, crd);
  return {
    description: field.what,
    type: "array",
    maxItems: MAX_PORTS,
    items: { type: "integer", minimum: 1, maximum: 65535 },
  };
}

/** A selector: the fields, and at least one of them not empty. */
function selectorSchema(fields: Record<string, SelectorField>, what: string, crd: boolean): Schema {
  const properties: Schema = {};
  for (const [name, field] of Object.entries(fields)) properties[name] = fieldSchema(field, crd);
  return {
    description: what,
    type: "object",
    ...(crd ? {} : { additionalProperties: false }),
    properties,
    anyOf: Object.entries(fields).map(([name, field]) => ({
      required: [name],
      properties: { [name]: field.type === "labels" ? { minProperties: 1 } : { minItems: 1 } },
    })),
  };
}

function specSchema(crd: boolean): Schema {
  return {
    type: "object",
    ...(crd ? {} : { additionalProperties: false }),
    required: ["action", "from", "to"],
    properties: {
      priority: {
        description: "Lower priorities are evaluated first; ties are ordered by name.",
        type: "integer",
        minimum: -(2 ** 31),
        maximum: 2 ** 31 - 1,
      },
      action: { description: "What a matching rule does.", type: "string", enum: [...ACTIONS] },
      description: {
        description: "Free-form description shown by list and explain.",
        type: "string",
        maxLength: MAX_DESCRIPTION,
      },
      from: {
        description: "Sources: any entry matches (OR).",
        type: "array",
        minItems: 1,
        maxItems: MAX_SELECTORS,
        items: selectorSchema(
          SOURCE_FIELDS,
          "Selects source workload identities; fields AND.",
          crd,
        ),
      },
      to: {
        description: "Destinations: any entry matches (OR).",
        type: "array",
        minItems: 1,
        maxItems: MAX_SELECTORS,
        items: selectorSchema(DESTINATION_FIELDS, "Selects destination services; fields AND.", crd),
      },
    },
  };
}

const DESCRIPTION =
  "An ordered connection rule of Isthmus: sources, destinations and ALLOW or DENY.";

/** JSON Schema (draft-07) of a ConnectionPolicy document, for editors and kubeconform. */
export function connectionPolicyJsonSchema(): Schema {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "https://isthmus.dev/schemas/connectionpolicy.schema.json",
    title: POLICY_KIND,
    description: DESCRIPTION,
    type: "object",
    additionalProperties: false,
    required: ["apiVersion", "kind", "metadata", "spec"],
    properties: {
      apiVersion: { type: "string", enum: [POLICY_API_VERSION] },
      kind: { type: "string", enum: [POLICY_KIND] },
      metadata: {
        type: "object",
        additionalProperties: false,
        required: ["name"],
        properties: {
          name: {
            description: "Unique name (DNS-1123 subdomain).",
            type: "string",
            pattern: SUBDOMAIN_PATTERN,
          },
          labels: labelsSchema("Labels, e.g. for `policy apply --prune -l`.", false),
          annotations: {
            type: "object",
            propertyNames: { pattern: LABEL_KEY_PATTERN },
            additionalProperties: { type: "string" },
          },
          resourceVersion: {
            description: "Version set by the hub; when given, apply fails unless it matches.",
            type: "string",
          },
        },
      },
      spec: specSchema(false),
    },
  };
}

/**
 * CustomResourceDefinition of ConnectionPolicy (cluster-scoped). Its openAPIV3Schema is the
 * JSON Schema made structural: no $schema, no additionalProperties beside properties, no
 * propertyNames, metadata left to the API server.
 */
export function connectionPolicyCrd(): Schema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `connectionpolicies.${POLICY_GROUP}` },
    spec: {
      group: POLICY_GROUP,
      names: {
        kind: POLICY_KIND,
        listKind: `${POLICY_KIND}List`,
        plural: "connectionpolicies",
        singular: "connectionpolicy",
        shortNames: ["cpol"],
      },
      scope: "Cluster",
      versions: [
        {
          name: POLICY_VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: "Priority", type: "integer", jsonPath: ".spec.priority" },
            { name: "Action", type: "string", jsonPath: ".spec.action" },
          ],
          schema: {
            openAPIV3Schema: {
              description: DESCRIPTION,
              type: "object",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: specSchema(true),
              },
            },
          },
        },
      ],
    },
  };
}
