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
export { exportName, importBackendName, importName } from "./intent-builder.js";
export { type LabelSelector, parseLabelSelector } from "./label-selector.js";
export {
  comparePolicies,
  freezePolicy,
  normalizePolicy,
  samePolicy,
  sortPolicies,
} from "./policy-canonical.js";
export {
  type DocumentProblem,
  type Json,
  policyFromObject,
  policyListObject,
  policyToObject,
  type ReadPolicy,
} from "./policy-document.js";
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
  connectionPolicyCrd,
  connectionPolicyJsonSchema,
  POLICY_API_VERSION,
  POLICY_GROUP,
  POLICY_KIND,
  POLICY_VERSION,
} from "./policy-schema.js";
export {
  formatPath,
  isGlob,
  policyViolations,
  type Violation,
  validatePolicies,
  validatePolicy,
} from "./policy-validate.js";
export {
  type LocatedPolicy,
  parsePolicyYaml,
  policyToYaml,
  problemsError,
  type ReadPolicies,
  readPolicyText,
  type TextProblem,
} from "./policy-yaml.js";
export { type KnownObjects, type SelectorWarning, selectorWarnings } from "./selector-warnings.js";
