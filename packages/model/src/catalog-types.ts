// The catalog's data: what a cluster reports about itself (facts), its services and workload
// identities as records, the changes agents send, and the catalog's read and write interfaces.
import type { Service, WorkloadIdentity } from "@isthmus/proto";

/** Istio's trust domain when a mesh does not set one. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

/** An east-west gateway address (the proto `GatewayAddress` init shape). */
export interface GatewayAddressInit {
  address: string;
  port: number;
}

/** What the hub knows about one cluster: its registered labels and its agent's mesh facts. */
export interface ClusterFacts {
  /** Cluster id (DNS-1123 label). */
  id: string;
  /** Labels used by policy selectors (env, region...). */
  labels: Record<string, string>;
  /** Istio network of the cluster. */
  network: string;
  /** Trust domain of the cluster's mesh; empty means cluster.local. */
  trustDomain: string;
  /** East-west gateway addresses. */
  gateways: GatewayAddressInit[];
  /** Locality as region/zone, may be empty. */
  locality: string;
}

/** One change of the catalog, as the hub learns it from agents and registrations. */
export type CatalogChange =
  | { kind: "cluster"; cluster: ClusterFacts }
  | { kind: "cluster-removed"; clusterId: string }
  | { kind: "service"; clusterId: string; service: Service }
  | { kind: "service-removed"; clusterId: string; namespace: string; name: string }
  | { kind: "identity"; clusterId: string; identity: WorkloadIdentity }
  | { kind: "identity-removed"; clusterId: string; namespace: string; serviceAccount: string }
  | {
      kind: "cluster-services-replaced";
      clusterId: string;
      services: Service[];
      identities: WorkloadIdentity[];
    };

/** A service of one cluster. Records are immutable: an update replaces the record. */
export interface ServiceRecord {
  /** `cluster/namespace/name`. */
  readonly key: string;
  readonly clusterId: string;
  /** `namespace/name`: the logical service across clusters. */
  readonly logicalKey: string;
  readonly service: Service;
}

/** A workload identity of one cluster. Records are immutable: an update replaces the record. */
export interface IdentityRecord {
  /** `cluster/namespace/serviceAccount`. */
  readonly key: string;
  readonly clusterId: string;
  readonly identity: WorkloadIdentity;
  /** Istio principal `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
  readonly principal: string;
}

/** Read access to the catalog, with the indexes policy compilation needs. */
export interface Catalog {
  cluster(id: string): ClusterFacts | undefined;
  /** Cluster ids, sorted. */
  clusterIds(): string[];
  /** Ids of the clusters whose mesh uses this trust domain. */
  clustersWithTrustDomain(trustDomain: string): ReadonlySet<string>;
  /**
   * Number of trust domains used by more than one cluster. While it is 0, every principal
   * names the identity of one cluster only.
   */
  readonly sharedTrustDomains: number;

  service(clusterId: string, namespace: string, name: string): ServiceRecord | undefined;
  /** Services of one cluster by `namespace/name`. */
  servicesIn(clusterId: string): ReadonlyMap<string, ServiceRecord>;
  allServices(): IterableIterator<ServiceRecord>;
  /** Backing services of a logical service, by cluster id. */
  logicalService(namespace: string, name: string): ReadonlyMap<string, ServiceRecord>;
  /** Ids of the clusters backing a logical service, sorted. */
  backingClusters(namespace: string, name: string): string[];
  /** Keys (`namespace/name`) of every logical service. */
  logicalServiceKeys(): IterableIterator<string>;
  servicesInNamespace(namespace: string): ReadonlySet<ServiceRecord>;
  servicesNamed(name: string): ReadonlySet<ServiceRecord>;
  serviceNamespaces(): IterableIterator<string>;
  serviceNames(): IterableIterator<string>;
  /** Services of a cluster and namespace whose pods run as this service account. */
  servicesWithServiceAccount(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): readonly ServiceRecord[];

  identity(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): IdentityRecord | undefined;
  /** Identities of one cluster by `namespace/serviceAccount`. */
  identitiesIn(clusterId: string): ReadonlyMap<string, IdentityRecord>;
  allIdentities(): IterableIterator<IdentityRecord>;
  identitiesInNamespace(namespace: string): ReadonlySet<IdentityRecord>;
  identitiesWithServiceAccount(serviceAccount: string): ReadonlySet<IdentityRecord>;
  /** Identities of one namespace and service account, in every cluster. */
  identitiesWithNamespaceAndAccount(
    namespace: string,
    serviceAccount: string,
  ): ReadonlySet<IdentityRecord>;
  identityNamespaces(): IterableIterator<string>;
  serviceAccountNames(): IterableIterator<string>;
  /** Identities holding a principal: more than one only when clusters share a trust domain. */
  identitiesWithPrincipal(principal: string): readonly IdentityRecord[];

  readonly serviceCount: number;
  readonly identityCount: number;
}

/** The catalog with its mutations; the policy engine owns the only mutable instance. */
export interface MutableCatalog extends Catalog {
  /** Inserts or replaces a cluster's facts; returns the previous facts. */
  upsertCluster(facts: ClusterFacts): ClusterFacts | undefined;
  /** Removes a cluster with its services and identities; returns its facts. */
  removeCluster(id: string): ClusterFacts | undefined;
  upsertService(clusterId: string, service: Service): ServiceRecord | undefined;
  removeService(clusterId: string, namespace: string, name: string): ServiceRecord | undefined;
  upsertIdentity(clusterId: string, identity: WorkloadIdentity): IdentityRecord | undefined;
  removeIdentity(
    clusterId: string,
    namespace: string,
    serviceAccount: string,
  ): IdentityRecord | undefined;
}
