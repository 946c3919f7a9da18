import * as grpc from "@grpc/grpc-js";
import type { CertificateProvider } from "@grpc/grpc-js/build/src/certificate-provider.js";

/** How a TLS server treats client certificates. */
export type ClientCertPolicy = "none" | "optional" | "required";

/** TLS material of a server. */
export interface ServerTls {
  /** Server certificate chain in PEM, leaf first. */
  certChainPem: string;
  /** Server private key in PEM. */
  keyPem: string;
  /** CA that issues client certificates; needed unless clientCerts is "none". */
  clientCaPem?: string;
  /** "none": server TLS only. "required": mTLS enforced by the handshake. "optional": a client
   * may present a certificate, which handlers must verify (used where one port serves both
   * enrollment without a certificate and streams that need one). */
  clientCerts?: ClientCertPolicy;
}

function staticProvider(
  identity: { certificate: Buffer; privateKey: Buffer },
  caCertificate: Buffer,
): CertificateProvider {
  // Listeners are called on the next tick: grpc-js registers its own watcher only after
  // adding the listeners, so a synchronous call would be lost.
  return {
    addCaCertificateListener: (listener) => queueMicrotask(() => listener({ caCertificate })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (listener) => queueMicrotask(() => listener(identity)),
    removeIdentityCertificateListener: () => {},
  };
}

/** Server credentials for TLS or mTLS. */
export function serverCredentials(tls: ServerTls): grpc.ServerCredentials {
  const policy = tls.clientCerts ?? "none";
  const pair = { cert_chain: Buffer.from(tls.certChainPem), private_key: Buffer.from(tls.keyPem) };
  if (policy === "none") return grpc.ServerCredentials.createSsl(null, [pair], false);
  if (tls.clientCaPem === undefined)
    throw new Error(`serverCredentials: clientCerts "${policy}" needs clientCaPem`);
  const ca = Buffer.from(tls.clientCaPem);
  if (policy === "required") return grpc.ServerCredentials.createSsl(ca, [pair], true);
  // grpc-js asks for a client certificate without rejecting a handshake that lacks one
  // when given certificate providers with requireClientCertificate = false. (Its exported
  // function names the first two parameters the other way round; the first is the identity.)
  const provider = staticProvider(
    { certificate: pair.cert_chain, privateKey: pair.private_key },
    ca,
  );
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** Plaintext server credentials, for local use behind an explicit insecure flag only. */
export function insecureServerCredentials(): grpc.ServerCredentials {
  return grpc.ServerCredentials.createInsecure();
}

/** TLS material of a client. */
export interface ClientTls {
  /** CA that issued the server certificate, in PEM. */
  caPem: string;
  /** Client certificate chain in PEM, for mTLS. */
  certChainPem?: string;
  /** Client private key in PEM, for mTLS. */
  keyPem?: string;
}

/** Channel credentials for TLS, or mTLS when a client certificate is given. */
export function clientCredentials(tls: ClientTls): grpc.ChannelCredentials {
  const key = tls.keyPem === undefined ? null : Buffer.from(tls.keyPem);
  const cert = tls.certChainPem === undefined ? null : Buffer.from(tls.certChainPem);
  return grpc.credentials.createSsl(Buffer.from(tls.caPem), key, cert);
}

/** Plaintext channel credentials, for local use behind an explicit insecure flag only. */
export function insecureClientCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createInsecure();
}
