import type { KubeObject } from "@isthmus/agent";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";

/** Validates an object against Istio's CRD schema; throws with the schema errors. */
export function validateIstio(obj: KubeObject): void {
  const input = obj as never;
  const key = `${obj.apiVersion}/${obj.kind}`;
  switch (key) {
    case "networking.istio.io/v1/ServiceEntry":
      new ServiceEntry(input).validate();
      return;
    case "networking.istio.io/v1/DestinationRule":
      new DestinationRule(input).validate();
      return;
    case "security.istio.io/v1/AuthorizationPolicy":
      new AuthorizationPolicy(input).validate();
      return;
    default:
      throw new Error(`no Istio schema for ${key}`);
  }
}
