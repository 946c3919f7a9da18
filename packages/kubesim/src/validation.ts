// Validation of objects about to be stored: the checks the real API server makes on names,
// labels and the core kinds this repository uses, then Istio's for Istio kinds.

import { show, validateIstio } from "./istio-validation.js";
import type { KubeObject } from "./object.js";
import { isPlainObject } from "./object.js";
import type { ResourceType } from "./resources.js";
import type { StatusCause } from "./status.js";

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const qualifiedName = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function invalidName(name: string, field: string, msg: string): StatusCause[] {
  return [{ reason: "FieldValueInvalid", message: `Invalid value: "${name}": ${msg}`, field }];
}

function nameCauses(kind: string, name: string, field: string): StatusCause[] {
  if (kind === "Namespace") {
    if (name.length > 63 || !dns1123Label.test(name)) {
      return invalidName(
        name,
        field,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
      );
    }
    return [];
  }
  if (kind === "Service") {
    if (name.length > 63 || !dns1035Label.test(name)) {
      return invalidName(
        name,
        field,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
      );
    }
    return [];
  }
  if (name.length > 253 || !dns1123Subdomain.test(name)) {
    return invalidName(
      name,
      field,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  }
  return [];
}

function labelCauses(labels: unknown): StatusCause[] {
  if (labels === undefined) return [];
  if (!isPlainObject(labels)) {
    return [
      {
        reason: "FieldValueInvalid",
        message: "Invalid value: must be a map of strings",
        field: "metadata.labels",
      },
    ];
  }
  const causes: StatusCause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf("/");
    const prefix = slash >= 0 ? k.slice(0, slash) : "";
    const nm = slash >= 0 ? k.slice(slash + 1) : k;
    if (
      nm.length > 63 ||
      !qualifiedName.test(nm) ||
      (slash >= 0 && !dns1123Subdomain.test(prefix))
    ) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
        field: "metadata.labels",
      });
    }
    if (typeof v !== "string" || v.length > 63 || !labelValue.test(v)) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: "${String(v)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
        field: "metadata.labels",
      });
    }
  }
  return causes;
}

function required(cond: boolean, field: string): StatusCause[] {
  return cond ? [] : [{ reason: "FieldValueRequired", message: "Required value", field }];
}

function portCauses(ports: unknown, field: string, key: string): StatusCause[] {
  if (!Array.isArray(ports)) return [];
  const causes: StatusCause[] = [];
  ports.forEach((p: unknown, i) => {
    const n = isPlainObject(p) ? p[key] : undefined;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${show(n)}: must be between 1 and 65535, inclusive`,
        field: `${field}[${i}].${key}`,
      });
    }
  });
  if (ports.length > 1) {
    ports.forEach((p: unknown, i) => {
      if (!isPlainObject(p) || typeof p.name !== "string" || p.name === "") {
        causes.push({
          reason: "FieldValueRequired",
          message: "Required value",
          field: `${field}[${i}].name`,
        });
      }
    });
  }
  return causes;
}

/** The checks the real apiserver makes on core objects that matter to clients of this repo. */
function coreCauses(obj: KubeObject): StatusCause[] {
  const spec = isPlainObject(obj.spec) ? obj.spec : undefined;
  switch (obj.kind) {
    case "Pod": {
      const containers = spec?.containers;
      if (!Array.isArray(containers) || containers.length === 0)
        return required(false, "spec.containers");
      return containers.flatMap((c: unknown, i) => [
        ...required(
          isPlainObject(c) && typeof c.name === "string" && c.name !== "",
          `spec.containers[${i}].name`,
        ),
        ...required(
          isPlainObject(c) && typeof c.image === "string" && c.image !== "",
          `spec.containers[${i}].image`,
        ),
        ...portCauses(
          isPlainObject(c) ? c.ports : undefined,
          `spec.containers[${i}].ports`,
          "containerPort",
        ),
      ]);
    }
    case "Service": {
      const type = spec?.type ?? "ClusterIP";
      const headless = spec?.clusterIP === "None";
      const ports = spec?.ports;
      const needsPorts = type !== "ExternalName" && !headless;
      return [
        ...required(!needsPorts || (Array.isArray(ports) && ports.length > 0), "spec.ports"),
        ...portCauses(ports, "spec.ports", "port"),
        ...(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].includes(String(type))
          ? []
          : [
              {
                reason: "FieldValueNotSupported",
                message: `Unsupported value: ${show(type)}: supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`,
                field: "spec.type",
              },
            ]),
      ];
    }
    case "EndpointSlice":
      return [
        ...required(typeof obj.addressType === "string", "addressType"),
        ...required(Array.isArray(obj.endpoints), "endpoints"),
      ];
    case "ConfigMap":
    case "Secret": {
      const causes: StatusCause[] = [];
      for (const section of ["data", "binaryData", "stringData"]) {
        const data = obj[section];
        if (data !== undefined && !isPlainObject(data)) {
          causes.push({
            reason: "FieldValueInvalid",
            message: "Invalid value: must be a map",
            field: section,
          });
        }
      }
      return causes;
    }
    default:
      return [];
  }
}

/** All validation causes for an object about to be stored (empty if valid). */
export function validateObject(type: ResourceType, obj: KubeObject, istio: boolean): StatusCause[] {
  const name = obj.metadata.name;
  const causes: StatusCause[] = [
    ...(typeof name === "string" && name !== ""
      ? nameCauses(obj.kind, name, "metadata.name")
      : required(false, "metadata.name")),
    ...labelCauses(obj.metadata.labels),
  ];
  if (type.namespaced && obj.metadata.namespace !== undefined) {
    causes.push(...nameCauses("Namespace", obj.metadata.namespace, "metadata.namespace"));
  }
  causes.push(...coreCauses(obj));
  if (istio && (type.group === "networking.istio.io" || type.group === "security.istio.io")) {
    causes.push(...validateIstio(obj));
  }
  return causes;
}
