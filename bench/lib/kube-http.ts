// Plain node:http clients of a kubesim API server for the benchmarks: a watch read line by
// line, and one server-side apply as the agent writes.
import { type Agent, get, type IncomingMessage, request } from "node:http";

/** Opens a watch and calls `onLine` for each event line; resolves once the stream is open. */
export function openWatch(url: string, onLine: (line: string) => void): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      resolve(res);
    }).on("error", reject);
  });
}

/** One server-side apply (`application/apply-patch+yaml` with a JSON body, as the agent
 * sends) of the ConfigMap isthmus-system/floor-write over `agent` (keep-alive), until the
 * response's end. */
export function applyOverHttp(agent: Agent, baseUrl: string, round: number): Promise<void> {
  const body = JSON.stringify({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "floor-write", namespace: "isthmus-system" },
    data: { round: String(round) },
  });
  const url = `${baseUrl}/api/v1/namespaces/isthmus-system/configmaps/floor-write?fieldManager=bench&force=true`;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent,
        method: "PATCH",
        headers: {
          "content-type": "application/apply-patch+yaml",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          res.statusCode === 200 || res.statusCode === 201
            ? resolve()
            : reject(new Error(`apply: HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
