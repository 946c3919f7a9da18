import type { ExportIntent } from "@isthmus/proto";
import type { KubeObject } from "../kube-object.js";
import type { LocalFacts } from "../local-facts.js";
import type { IntentHeader } from "./import.js";
import { clusterHost, clustersetHost, finish, objectName } from "./meta.js";
import { renderPorts } from "./ports.js";
import { localEndpoints, seSpec } from "./service-entry.js";

/**
 * ExportIntent -> a ServiceEntry whose endpoints are the local ready pods, for the clusterset
 * host and for this cluster's own `<cluster>.<svc>.<ns>.svc.clusterset.local` host, so that
 * the east-west gateway (AUTO_PASSTHROUGH, hosts `*.local`) routes the SNI of both to them.
 */
export function renderExport(
  header: IntentHeader,
  intent: ExportIntent,
  facts: LocalFacts,
): KubeObject[] {
  const { namespace, service } = intent;
  const ports = renderPorts(intent.ports);
  const endpoints = localEndpoints(facts, facts.endpoints(namespace, service), ports);
  return [
    finish(
      {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name: objectName("export", service), namespace },
        spec: seSpec(
          [clustersetHost(namespace, service), clusterHost(facts.clusterId, namespace, service)],
          ports,
          endpoints,
        ),
      },
      header.name,
      header.version,
      header.primaryAnnotations,
    ),
  ];
}
