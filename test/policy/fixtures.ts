import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { ClusterFacts } from "@isthmus/policy";
import {
  Action,
  type ConnectionPolicy,
  ConnectionPolicySchema,
  type DestinationSelector,
  type Service,
  ServicePortSchema,
  ServiceSchema,
  type SourceSelector,
  Visibility,
  type WorkloadIdentity,
  WorkloadIdentitySchema,
} from "@isthmus/proto";

/** Cluster facts with a per-cluster trust domain unless told otherwise. */
export function cluster(
  id: string,
  options: {
    labels?: Record<string, string>;
    trustDomain?: string;
    network?: string;
    locality?: string;
  } = {},
): ClusterFacts {
  return {
    id,
    labels: options.labels ?? {},
    network: options.network ?? `net-${id}`,
    trustDomain: options.trustDomain ?? `${id}.mesh`,
    gateways: [{ address: `eastwest.${id}.example`, port: 15443 }],
    locality: options.locality ?? "",
  };
}

/** A meshed service selecting app=<name>, backed by service account <name>, one port 8080. */
export function service(
  namespace: string,
  name: string,
  options: {
    ports?: number[];
    serviceAccounts?: string[];
    selector?: Record<string, string>;
    inMesh?: boolean;
    readyEndpoints?: number;
    visibility?: Visibility;
  } = {},
): Service {
  return create(ServiceSchema, {
    namespace,
    name,
    ports: (options.ports ?? [8080]).map((port) =>
      create(ServicePortSchema, {
        name: `http-${port}`,
        port,
        protocol: "TCP",
        targetPort: String(port),
      }),
    ),
    selector: options.selector ?? { app: name },
    inMesh: options.inMesh ?? true,
    readyEndpoints: options.readyEndpoints ?? 2,
    serviceAccounts: options.serviceAccounts ?? [name],
    visibility: options.visibility ?? Visibility.PRIVATE,
  });
}

/** A workload identity whose pods carry the given label sets (default: app=<sa>). */
export function identity(
  namespace: string,
  serviceAccount: string,
  labelSets: Record<string, string>[] = [{ app: serviceAccount }],
): WorkloadIdentity {
  return create(WorkloadIdentitySchema, {
    namespace,
    serviceAccount,
    labelSets: labelSets.map((labels) => ({ labels, podCount: 1 })),
    podCount: labelSets.length,
  });
}

type SourceInit = MessageInitShape<typeof import("@isthmus/proto").SourceSelectorSchema>;
type DestInit = MessageInitShape<typeof import("@isthmus/proto").DestinationSelectorSchema>;

/** A policy in proto form. */
export function policy(
  name: string,
  priority: number,
  action: "ALLOW" | "DENY",
  from: SourceInit[],
  to: DestInit[],
): ConnectionPolicy {
  return create(ConnectionPolicySchema, {
    name,
    priority,
    action: action === "ALLOW" ? Action.ALLOW : Action.DENY,
    from: from as SourceSelector[],
    to: to as DestinationSelector[],
  });
}
