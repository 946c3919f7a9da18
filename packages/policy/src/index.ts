export type {
  Catalog,
  CatalogChange,
  ClusterFacts,
  GatewayAddressInit,
  IdentityRecord,
  ServiceRecord,
} from "@isthmus/model";
export { contentJson, contentVersion, Hash64, hash64 } from "./content-hash.js";
export { isPolicyError, PolicyError, type PolicyErrorCode } from "./errors.js";
export {
  compileGlob,
  type Glob,
  MAX_GLOB_ALTERNATIVES,
  MAX_GLOB_LENGTH,
  MAX_GLOB_WILDCARDS,
} from "./glob.js";
export { accessName, exportName, importBackendName, importName } from "./intent-builder.js";
export {
  type ClusterDelta,
  createPolicyEngine,
  type Deltas,
  type DestinationRefLike,
  type PolicyDefaults,
  type PolicyEngine,
  type PolicyEngineOptions,
  type SourceRefLike,
} from "./policy-engine.js";
export {
  comparePolicies,
  formatPath,
  freezePolicy,
  normalizePolicy,
  policyViolations,
  sortPolicies,
  type Violation,
  validatePolicies,
  validatePolicy,
} from "./policy-validate.js";
export {
  POLICY_API_VERSION,
  POLICY_KIND,
  parsePolicyYaml,
  policyToYaml,
} from "./policy-yaml.js";
