// What the renderer needs to know about the local cluster, as the discovery cache provides
// it.
/** The ready endpoints of one local Service, as the informer cache sees them. */
export interface LocalServiceEndpoints {
  /** Ready pod IPs, sorted. */
  readonly addresses: readonly string[];
  /** Service port name ("" for an unnamed port) -> target port number on the pods. */
  readonly targetPorts: Readonly<Record<string, number>>;
  /** Whether the Service's namespace is in the mesh (its pods carry sidecars). */
  readonly inMesh: boolean;
  /** Service port number -> the port the pods listen on (what a sidecar, and so an
   * AuthorizationPolicy, sees). */
  readonly podPorts: Readonly<Record<number, number>>;
  /** Whether every entry of `podPorts` is known (a named target port is known only from an
   * EndpointSlice); otherwise some are the Service port as a guess. */
  readonly podPortsKnown: boolean;
}

/** What the renderer needs to know about the local cluster. */
export interface LocalFacts {
  /** This cluster's id. */
  readonly clusterId: string;
  /** Trust domain of the local mesh (meshConfig.trustDomain). */
  readonly trustDomain: string;
  /** Istio network of the local cluster; empty when unknown. */
  readonly network: string;
  /** Locality of the local cluster (region/zone); empty when unknown. */
  readonly locality: string;
  /** The ready endpoints of a local Service, undefined when the Service does not exist. */
  endpoints(namespace: string, service: string): LocalServiceEndpoints | undefined;
}
