export {
  applicablePolicies,
  authorizePod,
  DRY_RUN_ANNOTATION,
  hasTargetRef,
  isDryRun,
  type Peer,
  policyMatches,
  ruleMatches,
} from "./authorization.js";
export { admit, attack, authorize, connect, hostFor } from "./connect.js";
export { globMatch, hostMatch, istioMatch } from "./fields.js";
export * from "./mesh.js";
export { peerAuthentication } from "./peer-authentication.js";
export { type Arrival, route } from "./route.js";
export {
  callerHosts,
  destinationTls,
  type Endpoint,
  endpointTarget,
  type HostEntry,
  knownHosts,
  kubeHost,
  type Landing,
  landAt,
  passthrough,
  sidecarAllows,
  sidecarOf,
  TLS_MODE_LABEL,
  type TlsKind,
  type TlsSettings,
} from "./routing.js";
export {
  CLUSTER_LOCAL,
  expandPrincipals,
  namespaceOfPrincipal,
  principalOf,
  type TrustDomainCheck,
  validateTrustDomain,
} from "./trust-domain.js";
export * from "./types.js";
