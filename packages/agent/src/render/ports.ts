import type { ServicePort } from "@isthmus/proto";

/** Istio protocols the renderer emits. */
export type IstioProtocol = "HTTP" | "HTTP2" | "HTTPS" | "GRPC" | "TLS" | "TCP" | "UDP";

const byName: Record<string, IstioProtocol> = {
  http: "HTTP",
  http2: "HTTP2",
  https: "HTTPS",
  grpc: "GRPC",
  tls: "TLS",
  tcp: "TCP",
  // Kubernetes' standard appProtocol values (KEP-3726), as Istio reads them.
  "kubernetes.io/h2c": "HTTP2",
  "kubernetes.io/ws": "HTTP",
  "kubernetes.io/wss": "HTTPS",
};

/**
 * The Istio protocol of a port, as Istio's own protocol selection does: appProtocol first,
 * then the port name prefix (`http`, `http-web`, `grpc-api`…); TCP when neither says.
 * UDP ports stay UDP. Returns undefined for SCTP, which Istio cannot carry.
 */
export function istioProtocol(port: ServicePort): IstioProtocol | undefined {
  const transport = port.protocol || "TCP";
  if (transport === "UDP") return "UDP";
  if (transport !== "TCP") return undefined;
  const app = port.appProtocol.toLowerCase();
  if (app !== "" && byName[app] !== undefined) return byName[app];
  const prefix = port.name.toLowerCase().split("-")[0] ?? "";
  return byName[prefix] ?? "TCP";
}

/** The port name used in rendered objects: the Service's, or `<protocol>-<port>` when unnamed. */
export function renderedPortName(port: ServicePort, protocol: IstioProtocol): string {
  return port.name !== "" ? port.name : `${protocol.toLowerCase()}-${port.port}`;
}

export interface RenderedPort {
  /** Name in the Service ("" when unnamed), to look up local target ports. */
  serviceName: string;
  name: string;
  number: number;
  protocol: IstioProtocol;
  /** Numeric target port of the intent, if it is numeric. */
  numericTarget: number | undefined;
}

/** The ports Istio can carry, sorted by number, with their rendered names. */
export function renderPorts(ports: readonly ServicePort[]): RenderedPort[] {
  const out: RenderedPort[] = [];
  for (const p of ports) {
    const protocol = istioProtocol(p);
    if (protocol === undefined) continue;
    const target = /^[0-9]+$/.test(p.targetPort) ? Number(p.targetPort) : undefined;
    out.push({
      serviceName: p.name,
      name: renderedPortName(p, protocol),
      number: p.port,
      protocol,
      numericTarget: target !== undefined && target > 0 && target < 65536 ? target : undefined,
    });
  }
  return out.sort((a, b) => a.number - b.number || a.name.localeCompare(b.name));
}
