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
  /** Leave out self-issued certificates (a chain's root, exported as mesh-root elsewhere). */
  issuedOnly?: boolean;
}

/** The sources of a scrape; a source that could not be read at all is an Error. */
export type CertificateSources = () =>
  | (CertificateSource | UnreadableSource)[]
  | Promise<(CertificateSource | UnreadableSource)[]>;

/** A source that could not be read (an API error): reported as unreadable. */
export interface UnreadableSource {
  certificate: CertificateSource["certificate"];
  error: string;
}

/**
 * Registers `isthmus_agent_certificate_expiry_timestamp_seconds{certificate,subject,serial}`,
 * filled from `sources()` at every scrape (a rotated certificate's series disappears). A bundle
 * that does not parse is left out and reported by `isthmus_agent_certificate_unreadable`.
 */
export function certificateExpiryGauge(registry: Registry, sources: CertificateSources): void {
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
  type Labels = { certificate: string; subject: string; serial: string };
  /** One read of the sources, shared by both gauges of a scrape (prom-client collects the
   * metrics of a registry concurrently). */
  const read = async () => {
    const expiry: [Labels, number][] = [];
    const unreadable = new Set<string>();
    const next = new Map<string, ParsedCertificate[] | Error>();
    for (const s of await sources()) {
      const certificates = "error" in s ? undefined : parse(s, next);
      if ("error" in s || certificates === undefined || certificates instanceof Error) {
        unreadable.add(s.certificate);
        continue;
      }
      for (const c of certificates) {
        if (s.issuedOnly === true && c.subject === c.issuer) continue;
        const labels = {
          certificate: s.certificate,
          subject: c.subject,
          serial: c.serialNumber.toLowerCase(),
        };
        expiry.push([labels, Math.floor(c.notAfter.getTime() / 1000)]);
      }
    }
    parsed = next;
    return { expiry, unreadable };
  };
  let scrape: ReturnType<typeof read> | undefined;
  const current = () => {
    scrape ??= read().finally(() => {
      scrape = undefined;
    });
    return scrape;
  };
  new Gauge({
    name: "isthmus_agent_certificate_expiry_timestamp_seconds",
    help: "notAfter of each certificate the agent depends on (certificate: client, hub-ca, mesh-root, mesh-intermediate), Unix seconds",
    labelNames: ["certificate", "subject", "serial"],
    registers: [registry],
    async collect() {
      const { expiry } = await current();
      this.reset();
      for (const [labels, value] of expiry) this.set(labels, value);
    },
  });
  new Gauge({
    name: "isthmus_agent_certificate_unreadable",
    help: "1 when a certificate bundle the agent exports the expiry of cannot be read or parsed, by role",
    labelNames: ["certificate"],
    registers: [registry],
    async collect() {
      const { unreadable } = await current();
      this.reset();
      for (const certificate of unreadable) this.set({ certificate }, 1);
    },
  });
}
