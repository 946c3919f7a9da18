import type { AccessIntent, AccessRule } from "@isthmus/proto";
import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import type { KubeObject } from "../kube-object.js";
import type { LocalFacts, LocalServiceEndpoints } from "../local-facts.js";
import type { IntentHeader } from "./import.js";
import { finish, objectName } from "./meta.js";
import type { ObjectError } from "./types.js";

/**
 * An Istio principal as the hub sends it: `<trust domain>/ns/<namespace>/sa/<service account>`
 * with no wildcard. The trust domain is a DNS name; the namespace a DNS-1123 label; the
 * service account a DNS-1123 subdomain. Anything else (`*`, `td/ns/web/sa/*`, control
 * characters) would widen a policy beyond the identities the hub decided on.
 */
const PRINCIPAL =
  /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/ns\/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/sa\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * A rule's ports are Service ports; the sidecar sees the pods' ports, so the policy names
 * those (the Service's target ports, from the local Service and its EndpointSlices). A rule
 * for every port names every pod port of the Service when all are known: the pods may serve
 * another Service on other ports, which this Service's rules must not reach.
 */
function rule(r: AccessRule, endpoints: LocalServiceEndpoints | undefined): AuthorizationRule {
  const podPorts = endpoints?.podPorts ?? {};
  const out: AuthorizationRule = {
    from: [{ source: { principals: [...new Set(r.principals)].sort() } }],
  };
  const ports =
    r.ports.length > 0
      ? r.ports.map((p) => podPorts[p] ?? p)
      : endpoints?.podPortsKnown === true
        ? Object.values(podPorts)
        : [];
  if (ports.length > 0) {
    out.to = [{ operation: { ports: [...new Set(ports)].sort((a, b) => a - b).map(String) } }];
  }
  return out;
}

/**
 * The default DENY of callers from other trust domains: any mTLS peer (`principals: ["*"]`)
 * whose principal is not of the local trust domain. Plaintext callers have no principal and
 * are left alone (local traffic keeps working); cross-cluster traffic through the east-west
 * gateway is always mTLS. Limited to the service's own pod ports when every one of them is
 * known, so that another service on the same pods keeps the callers its rules allow.
 */
function remoteDefaultDeny(
  trustDomain: string,
  endpoints: LocalServiceEndpoints | undefined,
): AuthorizationRule {
  const out: AuthorizationRule = {
    from: [{ source: { principals: ["*"], notPrincipals: [`${trustDomain}/*`] } }],
  };
  if (endpoints?.podPortsKnown === true) {
    const ports = [...new Set(Object.values(endpoints.podPorts))].sort((a, b) => a - b);
    if (ports.length > 0) out.to = [{ operation: { ports: ports.map(String) } }];
  }
  return out;
}

type AuthorizationRule = NonNullable<NonNullable<IAuthorizationPolicy["spec"]>["rules"]>[number];

/** Why rules cannot be rendered: an empty selector, a rule without principals, a principal
 * that is not one exact identity. */
function problemOf(
  selector: Record<string, string>,
  namespace: string,
  service: string,
  rules: readonly AccessRule[],
  what: string,
): string | undefined {
  if (Object.keys(selector).length === 0)
    return `access intent for ${namespace}/${service} has an empty selector; refusing to write a policy for every workload of the namespace`;
  for (let i = 0; i < rules.length; i++) {
    const principals = rules[i]!.principals;
    if (principals.length === 0)
      return `${what}[${i}] has no principals; refusing to write a rule that matches every caller`;
    const bad = principals.find((p) => !PRINCIPAL.test(p));
    if (bad !== undefined)
      return `${what}[${i}]: principal ${JSON.stringify(bad)} is not <trust domain>/ns/<namespace>/sa/<service account>; refusing to write it`;
  }
  return undefined;
}

/**
 * AccessIntent -> AuthorizationPolicies on the service's pods (selector = the service
 * selector):
 * - an ALLOW policy with one rule per allowed principal set (plus `<localTrustDomain>/*` when
 *   local callers keep access) when the intent allows someone or local callers are denied by
 *   default: Istio then denies every caller no ALLOW rule matches;
 * - otherwise (nobody allowed beyond the local trust domain) no ALLOW policy, but the default
 *   DENY of other trust domains (`remoteDefaultDeny`), so that unnamed services keep their
 *   local callers, plaintext ones included;
 * - a DENY policy with the denied principal sets, and that default DENY.
 * A rule without principals, a principal with a wildcard or an empty selector would widen
 * the policy to every caller or every workload of the namespace: those are errors, never
 * rendered; an ALLOW policy refused so falls back to the default DENY of other trust domains.
 */
export function renderAccess(
  header: IntentHeader,
  intent: AccessIntent,
  facts: LocalFacts,
): { objects: KubeObject[]; errors: ObjectError[] } {
  const { namespace, service } = intent;
  const endpoints = facts.endpoints(namespace, service);
  const toRule = (r: AccessRule) => rule(r, endpoints);
  const allowName = objectName("allow", service);
  const denyName = objectName("deny", service);
  const objects: KubeObject[] = [];
  const errors: ObjectError[] = [];
  const selector = Object.fromEntries(
    Object.entries(intent.selector).sort(([a], [b]) => a.localeCompare(b)),
  );
  const policy = (name: string, action: "ALLOW" | "DENY", rules: AuthorizationRule[]) =>
    finish(
      {
        apiVersion: "security.istio.io/v1",
        kind: "AuthorizationPolicy",
        metadata: { name, namespace },
        spec: {
          selector: { matchLabels: { ...selector } },
          action,
          rules,
        } satisfies IAuthorizationPolicy["spec"],
      },
      header.name,
      header.version,
    );
  const refuse = (name: string, message: string) =>
    errors.push({
      intentName: header.name,
      object: `AuthorizationPolicy ${namespace}/${name}`,
      message,
    });

  // An ALLOW policy that cannot be rendered falls back to the default DENY of other trust
  // domains: a refused intent never leaves the service open to every cluster.
  let remoteDenied = false;
  if (intent.allow.length > 0 || !intent.allowLocalTrustDomain) {
    const allowProblem = problemOf(selector, namespace, service, intent.allow, "allow");
    if (allowProblem !== undefined) refuse(allowName, allowProblem);
    else {
      const rules = intent.allow.map(toRule);
      if (intent.allowLocalTrustDomain) {
        rules.push({ from: [{ source: { principals: [`${facts.trustDomain}/*`] } }] });
      }
      objects.push(policy(allowName, "ALLOW", rules));
      remoteDenied = true;
    }
  }
  if (intent.deny.length > 0 || !remoteDenied) {
    const denyProblem = problemOf(selector, namespace, service, intent.deny, "deny");
    const rules = denyProblem === undefined ? intent.deny.map(toRule) : [];
    if (denyProblem !== undefined) refuse(denyName, denyProblem);
    if (!remoteDenied) rules.push(remoteDefaultDeny(facts.trustDomain, endpoints));
    if (rules.length > 0 && Object.keys(selector).length > 0) {
      objects.push(policy(denyName, "DENY", rules));
    }
  }
  return { objects, errors };
}
