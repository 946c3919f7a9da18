// Istio objects checked as a cluster with Istio installed checks them: against Istio's CRD
// schemas (as compiled by @kubernetes-models/istio), then a few of the checks of Istio's
// validating webhook.
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { Gateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import { Sidecar } from "@kubernetes-models/istio/networking.istio.io/v1/Sidecar";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
import { WorkloadEntry } from "@kubernetes-models/istio/networking.istio.io/v1/WorkloadEntry";
import { DestinationRule as DestinationRuleV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/DestinationRule";
import { Gateway as GatewayV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/Gateway";
import { ServiceEntry as ServiceEntryV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/ServiceEntry";
import { Sidecar as SidecarV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/Sidecar";
import { VirtualService as VirtualServiceV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/VirtualService";
import { WorkloadEntry as WorkloadEntryV1alpha3 } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/WorkloadEntry";
import { DestinationRule as DestinationRuleV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule";
import { Gateway as GatewayV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway";
import { ServiceEntry as ServiceEntryV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/ServiceEntry";
import { Sidecar as SidecarV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/Sidecar";
import { VirtualService as VirtualServiceV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService";
import { WorkloadEntry as WorkloadEntryV1beta1 } from "@kubernetes-models/istio/networking.istio.io/v1beta1/WorkloadEntry";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication";
import { AuthorizationPolicy as AuthorizationPolicyV1beta1 } from "@kubernetes-models/istio/security.istio.io/v1beta1/AuthorizationPolicy";
import { PeerAuthentication as PeerAuthenticationV1beta1 } from "@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication";
import type { KubeObject } from "./object.js";
import { isPlainObject } from "./object.js";
import type { StatusCause } from "./status.js";

interface Validatable {
  validate(): void;
}
type ModelCtor = new (data: never) => Validatable;

/** Istio's CRD schemas (as compiled by @kubernetes-models/istio), by apiVersion and kind. */
const istioModels: Record<string, ModelCtor> = {
  "networking.istio.io/v1/ServiceEntry": ServiceEntry,
  "networking.istio.io/v1/DestinationRule": DestinationRule,
  "networking.istio.io/v1/Gateway": Gateway,
  "networking.istio.io/v1/VirtualService": VirtualService,
  "networking.istio.io/v1/WorkloadEntry": WorkloadEntry,
  "networking.istio.io/v1/Sidecar": Sidecar,
  "networking.istio.io/v1beta1/ServiceEntry": ServiceEntryV1beta1,
  "networking.istio.io/v1beta1/DestinationRule": DestinationRuleV1beta1,
  "networking.istio.io/v1beta1/Gateway": GatewayV1beta1,
  "networking.istio.io/v1beta1/VirtualService": VirtualServiceV1beta1,
  "networking.istio.io/v1beta1/WorkloadEntry": WorkloadEntryV1beta1,
  "networking.istio.io/v1beta1/Sidecar": SidecarV1beta1,
  "networking.istio.io/v1alpha3/ServiceEntry": ServiceEntryV1alpha3,
  "networking.istio.io/v1alpha3/DestinationRule": DestinationRuleV1alpha3,
  "networking.istio.io/v1alpha3/Gateway": GatewayV1alpha3,
  "networking.istio.io/v1alpha3/VirtualService": VirtualServiceV1alpha3,
  "networking.istio.io/v1alpha3/WorkloadEntry": WorkloadEntryV1alpha3,
  "networking.istio.io/v1alpha3/Sidecar": SidecarV1alpha3,
  "security.istio.io/v1/AuthorizationPolicy": AuthorizationPolicy,
  "security.istio.io/v1/PeerAuthentication": PeerAuthentication,
  "security.istio.io/v1beta1/AuthorizationPolicy": AuthorizationPolicyV1beta1,
  "security.istio.io/v1beta1/PeerAuthentication": PeerAuthenticationV1beta1,
};

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

function fieldPath(instancePath: string): string {
  return instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : acc === "" ? s : `${acc}.${s}`), "");
}

function valueAtPointer(obj: unknown, instancePath: string): unknown {
  let cur = obj;
  for (const s of instancePath.split("/").slice(1)) {
    const k = s.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) cur = cur[Number(k)];
    else if (isPlainObject(cur)) cur = cur[k];
    else return undefined;
  }
  return cur;
}

export function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `"array"`;
  if (isPlainObject(v)) return `"object"`;
  return String(v);
}

/** Turns schema errors into causes worded like the apiserver's CRD validation. */
function toCause(obj: unknown, e: AjvError): StatusCause {
  let field = fieldPath(e.instancePath);
  const value = valueAtPointer(obj, e.instancePath);
  switch (e.keyword) {
    case "required": {
      const missing = String(e.params.missingProperty);
      field = field === "" ? missing : `${field}.${missing}`;
      return { reason: "FieldValueRequired", message: "Required value", field };
    }
    case "enum": {
      const allowed = (e.params.allowedValues as unknown[])
        .map((v) => JSON.stringify(v))
        .join(", ");
      return {
        reason: "FieldValueNotSupported",
        message: `Unsupported value: ${show(value)}: supported values: ${allowed}`,
        field,
      };
    }
    case "type":
      return {
        reason: "FieldValueTypeInvalid",
        message: `Invalid value: ${show(value)}: ${field} in body must be of type ${String(e.params.type)}: ${show(value)}`,
        field,
      };
    default:
      return {
        reason: "FieldValueInvalid",
        message: `Invalid value: ${show(value)}: ${field} in body ${e.message ?? "is invalid"}`,
        field,
      };
  }
}

/** Whether a JSON-like value holds `undefined` anywhere (an in-process object can; one parsed
 * from a request body cannot). */
function holdsUndefined(v: unknown): boolean {
  if (v === undefined) return true;
  if (typeof v !== "object" || v === null) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (holdsUndefined(v[i])) return true;
    return false;
  }
  for (const k in v) {
    if (holdsUndefined((v as Record<string, unknown>)[k])) return true;
  }
  return false;
}

/** Validates an Istio object against Istio's CRD schema; returns the causes (empty if valid). */
export function validateIstio(obj: KubeObject): StatusCause[] {
  const ctor = istioModels[`${obj.apiVersion}/${obj.kind}`];
  if (ctor === undefined) return [];
  try {
    // The model's constructor copies the object without its `undefined` fields (which the
    // schema must not see); an object without any is validated as it is, without the copy.
    if (holdsUndefined(obj)) new ctor(obj as never).validate();
    else ctor.prototype.validate.call(obj);
  } catch (err: unknown) {
    const errors = (err as { errors?: AjvError[] }).errors;
    if (!Array.isArray(errors)) throw err;
    return errors.map((e) => toCause(obj, e));
  }
  return istioSemantics(obj);
}

function invalidField(field: string, value: unknown, why: string): StatusCause {
  return { reason: "FieldValueInvalid", message: `Invalid value: ${show(value)}: ${why}`, field };
}

function portNumberCauses(ports: unknown, field: string): StatusCause[] {
  if (!Array.isArray(ports)) return [];
  return ports.flatMap((p: unknown, i) => {
    const n = isPlainObject(p) ? p.number : undefined;
    return typeof n === "number" && (n < 1 || n > 65535)
      ? [invalidField(`${field}[${i}].number`, n, "port number must be in the range 1..65535")]
      : [];
  });
}

/**
 * A few of the checks Istio's validating webhook makes beyond the CRD schema (the ones a
 * policy layer is most likely to get wrong); the webhook makes many more.
 */
function istioSemantics(obj: KubeObject): StatusCause[] {
  const spec = isPlainObject(obj.spec) ? obj.spec : {};
  switch (obj.kind) {
    case "ServiceEntry": {
      const hosts = Array.isArray(spec.hosts) ? spec.hosts : [];
      return [
        ...hosts.flatMap((h: unknown, i) =>
          h === "*"
            ? [
                invalidField(
                  `spec.hosts[${i}]`,
                  h,
                  "a ServiceEntry host cannot be the bare wildcard *",
                ),
              ]
            : [],
        ),
        ...portNumberCauses(spec.ports, "spec.ports"),
        ...(spec.workloadSelector !== undefined && spec.endpoints !== undefined
          ? [
              invalidField(
                "spec.workloadSelector",
                "object",
                "only one of workloadSelector or endpoints can be set",
              ),
            ]
          : []),
      ];
    }
    case "Gateway": {
      const servers = Array.isArray(spec.servers) ? spec.servers : [];
      if (servers.length === 0)
        return [
          {
            reason: "FieldValueRequired",
            message: "Required value: gateway must have at least one server",
            field: "spec.servers",
          },
        ];
      return servers.flatMap((srv: unknown, i) => {
        const server = isPlainObject(srv) ? srv : {};
        const port = isPlainObject(server.port) ? server.port : {};
        const hosts = Array.isArray(server.hosts) ? server.hosts : [];
        return [
          ...(hosts.length === 0
            ? [
                {
                  reason: "FieldValueRequired",
                  message: "Required value: server config must contain at least one host",
                  field: `spec.servers[${i}].hosts`,
                },
              ]
            : []),
          ...portNumberCauses([port], `spec.servers[${i}].port`).map((c) => ({
            ...c,
            field: `spec.servers[${i}].port.number`,
          })),
        ];
      });
    }
    case "VirtualService": {
      // Without hosts it is a delegate, which Istio accepts only without gateways.
      const hosts = Array.isArray(spec.hosts) ? spec.hosts : [];
      const gateways = Array.isArray(spec.gateways) ? spec.gateways : [];
      return hosts.length === 0 && gateways.length > 0
        ? [
            invalidField(
              "spec.gateways",
              gateways,
              "delegate virtual service must have no gateways specified",
            ),
          ]
        : [];
    }
    case "WorkloadEntry":
      return (spec.address === undefined || spec.address === "") &&
        (spec.network === undefined || spec.network === "")
        ? [
            {
              reason: "FieldValueRequired",
              message: "Required value: address is required unless network is set",
              field: "spec.address",
            },
          ]
        : [];
    default:
      return [];
  }
}
