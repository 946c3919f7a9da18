// The expiry of the certificates an agent depends on, read when Prometheus scrapes: its own
// client certificate and the hub CA it trusts (from its identity), and the mesh roots Istio
// distributes in its cluster (the istio-ca-root-cert ConfigMap). Expiry is the one failure
// of these that nothing else announces before the mesh or the hub session breaks.
import { type ParsedCertificate, parseCertificatesPem } from "@isthmus/pki";
import { Gauge, type Registry } from "prom-client";

/** A PEM bundle and the role its certificates play (the `certificate` label). */
export interface CertificateSource {
  certificate: "client" | "hub-ca" | "mesh-root" | "mesh-intermediate";
  pem: string;
  /** What the PEM comes from, for the one-line error when it does not parse. */
  source: string;
}

/**
 * Registers `isthmus_agent_certificate_expiry_timestamp_seconds{certificate,subject,serial}`,
 * filled from `sources()` at every scrape (a rotated certificate's series disappears). A bundle
 * that does not parse is left out and reported by `isthmus_agent_certificate_unreadable`.
 */
export function certificateExpiryGauge(
  registry: Registry,
  sources: () => CertificateSource[],
): void {
  // Parsing is the cost of a scrape; the PEMs change once a day at most.
  let parsed = new Map<string, ParsedCertificate[] | Error>();
  const parse = (s: CertificateSource, next: typeof parsed) => {
    let result = parsed.get(s.pem);
    if (result === undefined) {
      try {
        result = parseCertificatesPem(s.pem, s.source);
      } catch (err) {
        result = err instanceof Error ? err : new Error(String(err));
      }
    }
    next.set(s.pem, result);
    return result;
  };
  const unreadable = new Gauge({
    name: "isthmus_agent_certificate_unreadable",
    help: "1 when a certificate bundle the agent exports the expiry of does not parse, by role",
    labelNames: ["certificate"],
    // Registered after the expiry gauge, whose collect() sets it: a scrape reads it after.
    registers: [],
  });
  new Gauge({
    name: "isthmus_agent_certificate_expiry_timestamp_seconds",
    help: "notAfter of each certificate the agent depends on (certificate: client, hub-ca, mesh-root, mesh-intermediate), Unix seconds",
    labelNames: ["certificate", "subject", "serial"],
    registers: [registry],
    collect() {
      this.reset();
      unreadable.reset();
      const next = new Map<string, ParsedCertificate[] | Error>();
      for (const s of sources()) {
        const certificates = parse(s, next);
        if (certificates instanceof Error) {
          unreadable.set({ certificate: s.certificate }, 1);
          continue;
        }
        for (const c of certificates) {
          this.set(
            {
              certificate: s.certificate,
              subject: c.subject,
              serial: c.serialNumber.toLowerCase(),
            },
            Math.floor(c.notAfter.getTime() / 1000),
          );
        }
      }
      parsed = next;
    },
  });
  registry.registerMetric(unreadable);
}
