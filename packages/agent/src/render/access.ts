import type { AccessIntent, AccessRule } from "@isthmus/proto";
import type { IntentHeader } from "./import.js";
import { finish, objectName } from "./meta.js";
import type { KubeObject, LocalFacts, ObjectError } from "./types.js";

/** A rule's ports are Service ports; the sidecar sees the pods' ports, so the policy names
 * those (the Service's target ports, from the local Service and its EndpointSlices). */
function rule(r: AccessRule, podPorts: Readonly<Record<number, number>>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    from: [{ source: { principals: [...new Set(r.principals)].sort() } }],
  };
  if (r.ports.length > 0) {
    const ports = [...new Set(r.ports.map((p) => podPorts[p] ?? p))]
      .sort((a, b) => a - b)
      .map(String);
    out.to = [{ operation: { ports } }];
  }
  return out;
}

/**
 * AccessIntent -> an ALLOW AuthorizationPolicy on the service's pods (selector = the service
 * selector) with one rule per allowed principal set (plus `<localTrustDomain>/*` when local
 * callers keep access), and a DENY AuthorizationPolicy when the intent denies principals.
 * A rule without principals or an empty selector would widen the policy to every caller or
 * every workload of the namespace: those are errors, never rendered.
 */
export function renderAccess(
  header: IntentHeader,
  intent: AccessIntent,
  facts: LocalFacts,
): { objects: KubeObject[]; errors: ObjectError[] } {
  const { namespace, service } = intent;
  const podPorts = facts.endpoints(namespace, service)?.podPorts ?? {};
  const toRule = (r: AccessRule) => rule(r, podPorts);
  const allowName = objectName("allow", service);
  const denyName = objectName("deny", service);
  const objects: KubeObject[] = [];
  const errors: ObjectError[] = [];
  const selector = Object.fromEntries(
    Object.entries(intent.selector).sort(([a], [b]) => a.localeCompare(b)),
  );
  const problem = (rules: AccessRule[], what: string): string | undefined => {
    if (Object.keys(selector).length === 0)
      return `access intent for ${namespace}/${service} has an empty selector; refusing to write a policy for every workload of the namespace`;
    const i = rules.findIndex((r) => r.principals.length === 0);
    if (i >= 0)
      return `${what}[${i}] has no principals; refusing to write a rule that matches every caller`;
    return undefined;
  };
  const policy = (name: string, action: "ALLOW" | "DENY", rules: Record<string, unknown>[]) =>
    finish(
      {
        apiVersion: "security.istio.io/v1",
        kind: "AuthorizationPolicy",
        metadata: { name, namespace },
        spec: { selector: { matchLabels: { ...selector } }, action, rules },
      },
      header.name,
      header.version,
    );

  const allowProblem = problem(intent.allow, "allow");
  if (allowProblem !== undefined) {
    errors.push({
      intentName: header.name,
      object: `AuthorizationPolicy ${namespace}/${allowName}`,
      message: allowProblem,
    });
  } else {
    const rules = intent.allow.map(toRule);
    if (intent.allowLocalTrustDomain) {
      rules.push({ from: [{ source: { principals: [`${facts.trustDomain}/*`] } }] });
    }
    objects.push(policy(allowName, "ALLOW", rules));
  }
  if (intent.deny.length > 0) {
    const denyProblem = problem(intent.deny, "deny");
    if (denyProblem !== undefined) {
      errors.push({
        intentName: header.name,
        object: `AuthorizationPolicy ${namespace}/${denyName}`,
        message: denyProblem,
      });
    } else {
      objects.push(policy(denyName, "DENY", intent.deny.map(toRule)));
    }
  }
  return { objects, errors };
}
