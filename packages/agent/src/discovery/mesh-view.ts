import { canonicalJson, type KubeObject } from "../kube-object.js";
import type { Informer } from "./informer.js";
import {
  buildMesh,
  EAST_WEST_GATEWAY_LABEL,
  EAST_WEST_GATEWAY_VALUE,
  type MeshView,
} from "./mesh.js";
import type { ServiceView } from "./objects.js";

/** What the mesh facts are built from: the cluster cache's informers and options. */
export interface MeshSources {
  istioNamespace: string;
  /** Cluster locality (region/zone); undefined: from the nodes' topology labels. */
  locality: string | undefined;
  namespaces: Informer<KubeObject>;
  configMaps: Informer<KubeObject>;
  services: Informer<ServiceView>;
  gateways: Informer<KubeObject>;
  nodes: Informer<KubeObject>;
}

/**
 * The mesh facts built from the informers, rebuilt on each change of an object they come
 * from; `onChange` hears only changes of their content (compared as canonical JSON).
 */
export function createMeshView(sources: MeshSources, onChange: (mesh: MeshView) => void) {
  let view: MeshView = compute();
  let key = canonicalJson(view);

  function compute(): MeshView {
    const istioNs = sources.istioNamespace;
    const input: Parameters<typeof buildMesh>[0] = {
      istioNamespace: istioNs,
      istioSystem: sources.namespaces.get(istioNs),
      meshConfig: sources.configMaps.get("istio", istioNs),
      eastWestServices: sources.services
        .list()
        .filter((s) => s.metadata.labels?.[EAST_WEST_GATEWAY_LABEL] === EAST_WEST_GATEWAY_VALUE),
      gateways: sources.gateways.list(),
      nodes: sources.nodes.list(),
    };
    if (sources.locality !== undefined) input.locality = sources.locality;
    return buildMesh(input);
  }

  return {
    current: () => view,
    /** Builds the facts again without telling anyone (once the informers listed). */
    reset(): void {
      view = compute();
      key = canonicalJson(view);
    },
    /** Builds the facts again; tells `onChange` when their content differs. */
    refresh(): void {
      const next = compute();
      const nextKey = canonicalJson(next);
      if (nextKey === key) return;
      view = next;
      key = nextKey;
      onChange(next);
    },
  };
}
