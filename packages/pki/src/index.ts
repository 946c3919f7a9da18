export {
  assertClusterName,
  type CertificateSummary,
  CLUSTER_CA_FILES,
  CLUSTERS_FOLDER,
  type ClusterCaResult,
  DEFAULT_CA_KEY_SIZE,
  DEFAULT_CA_VALIDITY_YEARS,
  DEFAULT_ORGANIZATION,
  DEFAULT_ROOT_KEY_SIZE,
  DEFAULT_ROOT_VALIDITY_YEARS,
  type KeyRole,
  type MeshCaOptions,
  type MeshCaResult,
  type PkiProgressEvent,
  PLUGIN_CA_FILES,
  type PluginCaFile,
  type ValidateOptions,
} from "./ca-files.js";
export { CACERTS_SECRET_FILES, type CacertsSecret, renderCacertsSecret } from "./cacerts-secret.js";
export { type ParsedCertificate, parseCertificatesPem } from "./certificate.js";
export {
  type AgentCsr,
  type CertifiedKey,
  CLUSTER_SPIFFE_PREFIX,
  clusterIdFromCertificate,
  clusterIdFromX509,
  clusterSpiffeId,
  createAgentCsr,
  createHubCa,
  DEFAULT_CLIENT_VALIDITY_SECONDS,
  DEFAULT_HUB_CA_VALIDITY_DAYS,
  DEFAULT_SERVER_VALIDITY_DAYS,
  type HubCaOptions,
  type IssuedCertificate,
  issueServerCertificate,
  type ServerCertificateOptions,
  type SignAgentCsrOptions,
  signAgentCsr,
} from "./control-plane.js";
export { isPkiError, PkiError, type PkiErrorCode } from "./errors.js";
export {
  generateRsaKeyPair,
  generateRsaKeyPairWebCrypto,
  type KeyPair,
  RSA_KEY_SIZES,
  type RsaKeySize,
} from "./keys.js";
export { ensureClusterCa, ensureMeshCa, validateMeshCa } from "./mesh-ca.js";
