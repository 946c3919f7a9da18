// The agent's certificate expiry gauge as a scrape sees it: one series per certificate, read
// anew at each scrape (a rotated certificate's series goes), unreadable bundles flagged.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { certificateExpiryGauge } from "@isthmus/agent";
import { createHubCa, issueServerCertificate } from "@isthmus/pki";
import { Registry } from "prom-client";

const series = (text: string, name: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`))
    .sort();

describe("agent certificate expiry gauge", () => {
  it("exports each certificate of the current sources, and flags what it cannot read", async () => {
    const root = await createHubCa();
    const first = await issueServerCertificate(root, { dnsNames: ["a"] });
    const second = await issueServerCertificate(root, { dnsNames: ["b"] });
    const registry = new Registry();
    let chain = first.certPem + root.certPem;
    let failing = false;
    certificateExpiryGauge(registry, async () => [
      { certificate: "mesh-intermediate", pem: chain, source: "chain", issuedOnly: true },
      { certificate: "mesh-root", pem: root.certPem, source: "root" },
      ...(failing
        ? [
            { certificate: "client" as const, pem: "not a certificate", source: "identity" },
            { certificate: "hub-ca" as const, error: "forbidden" },
          ]
        : []),
    ]);
    const name = "isthmus_agent_certificate_expiry_timestamp_seconds";
    const serial = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();

    let text = await registry.metrics();
    assert.deepEqual(
      series(text, name).map((l) => /certificate="([\w-]+)".*serial="(\w+)"/.exec(l)!.slice(1)),
      [
        ["mesh-intermediate", serial(first.certPem)],
        ["mesh-root", serial(root.certPem)],
      ],
    );
    assert.deepEqual(series(text, "isthmus_agent_certificate_unreadable"), []);

    // Rotated: the old intermediate's series is gone at the next scrape.
    chain = second.certPem + root.certPem;
    failing = true;
    text = await registry.metrics();
    assert.deepEqual(
      series(text, name).map((l) => /serial="(\w+)"/.exec(l)![1]),
      [serial(second.certPem), serial(root.certPem)],
    );
    assert.deepEqual(series(text, "isthmus_agent_certificate_unreadable"), [
      'isthmus_agent_certificate_unreadable{certificate="client"} 1',
      'isthmus_agent_certificate_unreadable{certificate="hub-ca"} 1',
    ]);
  });
});
