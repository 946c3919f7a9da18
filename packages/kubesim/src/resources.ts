import type { KubeObject } from "./object.js";

/** A column shown by `kubectl get` besides NAME and AGE, read from a JSON path. */
export interface PrinterColumn {
  name: string;
  type: string;
  /** Dotted path into the object, e.g. `.spec.type`; array indexes as `[0]`. */
  jsonPath: string;
  description?: string;
}

/** One served resource type (a REST collection). Versions share one storage. */
export interface ResourceType {
  group: string;
  /** Served versions; the first one is the preferred version. */
  versions: string[];
  /** Plural resource name, as in the URL. */
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Whether the type has a `/status` subresource (status only written there). */
  statusSubresource: boolean;
  /** True for custom resources: Istio, MCS, and types from CRDs. Affects patch types. */
  custom: boolean;
  columns: PrinterColumn[];
  /** The CRD that registered this type, if any. */
  crdName?: string;
}

export function resourceKey(group: string, resource: string): string {
  return group === "" ? resource : `${resource}.${group}`;
}

export function apiVersionOf(group: string, version: string): string {
  return group === "" ? version : `${group}/${version}`;
}

export function parseApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf("/");
  return i < 0
    ? { group: "", version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

interface Def {
  resource: string;
  kind: string;
  namespaced?: boolean;
  shortNames?: string[];
  categories?: string[];
  status?: boolean;
  columns?: PrinterColumn[];
}

const core: Def[] = [
  {
    resource: "namespaces",
    kind: "Namespace",
    namespaced: false,
    shortNames: ["ns"],
    status: true,
  },
  {
    resource: "services",
    kind: "Service",
    shortNames: ["svc"],
    categories: ["all"],
    status: true,
    columns: [
      { name: "Type", type: "string", jsonPath: ".spec.type" },
      { name: "Cluster-IP", type: "string", jsonPath: ".spec.clusterIP" },
    ],
  },
  { resource: "endpoints", kind: "Endpoints", shortNames: ["ep"] },
  {
    resource: "pods",
    kind: "Pod",
    shortNames: ["po"],
    categories: ["all"],
    status: true,
    columns: [
      { name: "Status", type: "string", jsonPath: ".status.phase" },
      { name: "IP", type: "string", jsonPath: ".status.podIP" },
    ],
  },
  { resource: "serviceaccounts", kind: "ServiceAccount", shortNames: ["sa"] },
  { resource: "configmaps", kind: "ConfigMap", shortNames: ["cm"] },
  {
    resource: "secrets",
    kind: "Secret",
    columns: [{ name: "Type", type: "string", jsonPath: ".type" }],
  },
  { resource: "nodes", kind: "Node", namespaced: false, shortNames: ["no"], status: true },
  { resource: "events", kind: "Event", shortNames: ["ev"] },
  {
    resource: "persistentvolumeclaims",
    kind: "PersistentVolumeClaim",
    shortNames: ["pvc"],
    status: true,
  },
];

/** Kinds the charts install, stored as they are (no controllers act on them): so that
 * `kubectl apply --dry-run=server` of a rendered chart reaches the server (test/charts/). */
const chartKinds: [group: string, defs: Def[]][] = [
  [
    "apps",
    [
      // No pods come of them; seeded ones describe an install, e.g. istiod's environment.
      {
        resource: "deployments",
        kind: "Deployment",
        shortNames: ["deploy"],
        categories: ["all"],
        status: true,
        columns: [{ name: "Replicas", type: "integer", jsonPath: ".spec.replicas" }],
      },
    ],
  ],
  [
    "policy",
    [
      {
        resource: "poddisruptionbudgets",
        kind: "PodDisruptionBudget",
        shortNames: ["pdb"],
        status: true,
      },
    ],
  ],
  [
    "networking.k8s.io",
    [{ resource: "networkpolicies", kind: "NetworkPolicy", shortNames: ["netpol"] }],
  ],
  [
    "rbac.authorization.k8s.io",
    [
      { resource: "roles", kind: "Role" },
      { resource: "rolebindings", kind: "RoleBinding" },
      { resource: "clusterroles", kind: "ClusterRole", namespaced: false },
      { resource: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false },
    ],
  ],
];

function build(group: string, versions: string[], defs: Def[], custom: boolean): ResourceType[] {
  return defs.map((d) => ({
    group,
    versions,
    resource: d.resource,
    singular: d.kind.toLowerCase(),
    kind: d.kind,
    listKind: `${d.kind}List`,
    namespaced: d.namespaced ?? true,
    shortNames: d.shortNames ?? [],
    categories: d.categories ?? [],
    statusSubresource: d.status ?? false,
    custom,
    columns: d.columns ?? [],
  }));
}

const istioCategories = ["istio-io", "networking-istio-io"];

/** The types a fresh simulated cluster serves: core, apps (Deployments), Istio, MCS, leases, CRDs. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: a table of the served types, one entry per type
export function builtinResourceTypes(): ResourceType[] {
  return [
    ...build("", ["v1"], core, false),
    ...chartKinds.flatMap(([group, defs]) => build(group, ["v1"], defs, false)),
    ...build(
      "discovery.k8s.io",
      ["v1"],
      [
        {
          resource: "endpointslices",
          kind: "EndpointSlice",
          columns: [{ name: "AddressType", type: "string", jsonPath: ".addressType" }],
        },
      ],
      false,
    ),
    ...build(
      "coordination.k8s.io",
      ["v1"],
      [
        {
          resource: "leases",
          kind: "Lease",
          columns: [{ name: "Holder", type: "string", jsonPath: ".spec.holderIdentity" }],
        },
      ],
      false,
    ),
    ...build(
      "events.k8s.io",
      ["v1"],
      [
        {
          resource: "events",
          kind: "Event",
          shortNames: ["ev"],
          columns: [{ name: "Reason", type: "string", jsonPath: ".reason" }],
        },
      ],
      false,
    ),
    ...build(
      "apiextensions.k8s.io",
      ["v1"],
      [
        {
          resource: "customresourcedefinitions",
          kind: "CustomResourceDefinition",
          namespaced: false,
          shortNames: ["crd", "crds"],
          categories: ["api-extensions"],
          status: true,
        },
      ],
      false,
    ),
    ...build(
      "networking.istio.io",
      ["v1", "v1beta1", "v1alpha3"],
      [
        {
          resource: "serviceentries",
          kind: "ServiceEntry",
          shortNames: ["se"],
          status: true,
          columns: [
            { name: "Hosts", type: "string", jsonPath: ".spec.hosts" },
            { name: "Location", type: "string", jsonPath: ".spec.location" },
            { name: "Resolution", type: "string", jsonPath: ".spec.resolution" },
          ],
        },
        {
          resource: "destinationrules",
          kind: "DestinationRule",
          shortNames: ["dr"],
          status: true,
          columns: [{ name: "Host", type: "string", jsonPath: ".spec.host" }],
        },
        { resource: "gateways", kind: "Gateway", shortNames: ["gw"], status: true },
        {
          resource: "virtualservices",
          kind: "VirtualService",
          shortNames: ["vs"],
          status: true,
          columns: [
            { name: "Gateways", type: "string", jsonPath: ".spec.gateways" },
            { name: "Hosts", type: "string", jsonPath: ".spec.hosts" },
          ],
        },
        {
          resource: "workloadentries",
          kind: "WorkloadEntry",
          shortNames: ["we"],
          status: true,
          columns: [{ name: "Address", type: "string", jsonPath: ".spec.address" }],
        },
        { resource: "sidecars", kind: "Sidecar", status: true },
      ].map((d) => ({ ...d, categories: istioCategories })),
      true,
    ),
    ...build(
      "security.istio.io",
      ["v1", "v1beta1"],
      [
        {
          resource: "authorizationpolicies",
          kind: "AuthorizationPolicy",
          shortNames: ["ap"],
          status: true,
          columns: [{ name: "Action", type: "string", jsonPath: ".spec.action" }],
        },
        {
          resource: "peerauthentications",
          kind: "PeerAuthentication",
          shortNames: ["pa"],
          status: true,
          columns: [{ name: "Mode", type: "string", jsonPath: ".spec.mtls.mode" }],
        },
      ].map((d) => ({ ...d, categories: ["istio-io", "security-istio-io"] })),
      true,
    ),
    ...build(
      "multicluster.x-k8s.io",
      ["v1alpha1"],
      [
        { resource: "serviceexports", kind: "ServiceExport", shortNames: ["svcex"], status: true },
        { resource: "serviceimports", kind: "ServiceImport", shortNames: ["svcim"], status: true },
      ],
      true,
    ),
  ];
}

/**
 * The resource type a CustomResourceDefinition declares, or an error message naming the
 * offending field. Only served versions are exposed; all share one storage (no conversion).
 */
export function resourceTypeFromCrd(crd: KubeObject): ResourceType | string {
  const spec = crd.spec as Record<string, unknown> | undefined;
  if (spec === undefined) return "spec: Required value";
  const names = spec.names as Record<string, unknown> | undefined;
  const group = spec.group;
  if (typeof group !== "string" || group === "") return "spec.group: Required value";
  if (names === undefined || typeof names.plural !== "string" || typeof names.kind !== "string") {
    return "spec.names: Required value: plural and kind are required";
  }
  if (crd.metadata.name !== `${names.plural}.${group}`) {
    return `metadata.name: Invalid value: "${crd.metadata.name}": must be spec.names.plural+"."+spec.group`;
  }
  const versions = Array.isArray(spec.versions) ? (spec.versions as Record<string, unknown>[]) : [];
  const served = versions.filter((v) => v.served !== false && typeof v.name === "string");
  if (served.length === 0)
    return "spec.versions: Invalid value: must have at least one served version";
  const storage = served.find((v) => v.storage === true) ?? served[0]!;
  const ordered = [storage, ...served.filter((v) => v !== storage)];
  const columns: PrinterColumn[] = [];
  const extra = storage.additionalPrinterColumns;
  if (Array.isArray(extra)) {
    for (const c of extra as Record<string, unknown>[]) {
      if (typeof c.name === "string" && typeof c.jsonPath === "string" && c.name !== "Age") {
        columns.push({ name: c.name, type: String(c.type ?? "string"), jsonPath: c.jsonPath });
      }
    }
  }
  const subresources = storage.subresources as Record<string, unknown> | undefined;
  const kind = names.kind;
  return {
    group,
    versions: ordered.map((v) => v.name as string),
    resource: names.plural,
    singular: typeof names.singular === "string" ? names.singular : kind.toLowerCase(),
    kind,
    listKind: typeof names.listKind === "string" ? names.listKind : `${kind}List`,
    namespaced: spec.scope !== "Cluster",
    shortNames: Array.isArray(names.shortNames) ? (names.shortNames as string[]) : [],
    categories: Array.isArray(names.categories) ? (names.categories as string[]) : [],
    statusSubresource: subresources?.status !== undefined,
    custom: true,
    columns,
    crdName: crd.metadata.name,
  };
}
