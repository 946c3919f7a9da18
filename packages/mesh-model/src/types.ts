/** A Kubernetes object as JSON, as read from the API server. */
export interface KubeObject {
  apiVersion?: string;
  kind: string;
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    [key: string]: unknown;
  };
  spec?: unknown;
  [key: string]: unknown;
}

/** Every object of one cluster. */
export interface ClusterInput {
  id: string;
  objects: readonly KubeObject[];
}

export type Labels = Readonly<Record<string, string>>;

/** A workload identity that opens a connection. */
export interface Caller {
  cluster: string;
  namespace: string;
  serviceAccount: string;
  /** Labels of the calling pod (for a Sidecar's workloadSelector); none by default. */
  labels?: Labels;
  /** The caller sends plaintext (no sidecar, or mTLS off): it has no principal. */
  plaintext?: boolean;
}

/** One pod at one port, as the pod's sidecar sees the connection. */
export interface PodTarget {
  cluster: string;
  namespace: string;
  pod: string;
  /** The port the pod listens on (a Service's target port). */
  port: number;
}

/** Every pod of a Kubernetes Service at one Service port. */
export interface ServiceTarget {
  cluster: string;
  namespace: string;
  service: string;
  /** A Service port (mapped to each pod's target port). */
  port: number;
}

/** `Kind namespace/name` of an object that took part in a verdict. */
export type ObjectRef = string;

export type AuthzVerdict = "ALLOW" | "DENY" | "UNKNOWN";

export interface AuthzResult {
  verdict: AuthzVerdict;
  /** The deciding AuthorizationPolicy (`AuthorizationPolicy ns/name`), or `default`. */
  by: ObjectRef | "default";
  reason: string;
  /** Every policy that applied to the workload, in evaluation order. */
  objects: ObjectRef[];
}

export type MtlsMode = "STRICT" | "PERMISSIVE" | "DISABLE";

export interface PeerAuthnResult {
  mode: MtlsMode;
  /** The PeerAuthentication that set the mode (`default` when none did). */
  by: ObjectRef | "default";
  /** Whether a plaintext caller is accepted. */
  plaintextAccepted: boolean;
  /** Whether an Istio mTLS caller is accepted (DISABLE: the sidecar does not terminate it). */
  mtlsAccepted: boolean;
}

export type Outcome = "ALLOW" | "DENY" | "UNROUTABLE" | "TLS_FAILED" | "UNKNOWN";

export type Stage =
  | "routing"
  | "client-tls"
  | "gateway"
  | "peer-authentication"
  | "trust-domain"
  | "authorization";

export interface ConnectResult {
  outcome: Outcome;
  /** The stage that decided; `authorization` for an ALLOW that passed every stage. */
  stage: Stage;
  reason: string;
  /** Objects that took part, `Kind ns/name` (cluster-qualified as `cluster: Kind ns/name`). */
  objects: string[];
}

/** Errors of the model's input: they name the cluster and object. */
export class MeshModelError extends Error {
  override readonly name = "MeshModelError";
}
