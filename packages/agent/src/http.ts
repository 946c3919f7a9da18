import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { splitHostPort } from "@isthmus/proto";
import type { Registry } from "prom-client";

export interface HealthSource {
  /** Liveness: false once the agent stopped. */
  live(): boolean;
  /** Readiness and its reasons: caches synced and every informer healthy. */
  readiness(): { ready: boolean; details: Record<string, unknown> };
}

/** `/healthz`, `/readyz` and `/metrics` on a small node:http server. */
export async function startHealthServer(
  address: string,
  health: HealthSource,
  registry: Registry,
): Promise<{ address: string; close(): Promise<void> }> {
  // A bare port ("9090") listens on every address, as ":9090" does.
  const split = splitHostPort(address.includes(":") ? address : `:${address}`);
  if (split === undefined)
    throw new Error(`invalid listen address "${address}": expected host:port`);
  const host = split.host === "" ? "0.0.0.0" : split.host;
  const { port } = split;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      const ok = health.live();
      res
        .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
        .end(ok ? "ok\n" : "stopped\n");
    } else if (path === "/readyz") {
      const r = health.readiness();
      res
        .writeHead(r.ready ? 200 : 503, { "content-type": "application/json" })
        .end(`${JSON.stringify({ ready: r.ready, ...r.details })}\n`);
    } else if (path === "/metrics") {
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
