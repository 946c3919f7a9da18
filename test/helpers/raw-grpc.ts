// gRPC calls written by hand over node:http2, for tests that must send what a well-behaved
// client never does: bodies that are not protobuf, messages over the limits, calls from
// another loopback address (127.0.0.0/8 is all loopback on Linux), streams left unread.
import { type ClientHttp2Session, type ClientHttp2Stream, connect } from "node:http2";
import { connect as tlsConnect } from "node:tls";

export interface RawSessionOptions {
  port: number;
  caPem: string;
  /** Source address, e.g. 127.0.0.7 (default: the system's choice, 127.0.0.1). */
  localAddress?: string;
  /** Client certificate and key, for agent calls. */
  certPem?: string;
  keyPem?: string;
}

/** An HTTP/2 session to the hub over TLS, as a gRPC client opens one. */
export function rawSession(options: RawSessionOptions): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${options.port}`, {
      createConnection: () =>
        tlsConnect({
          host: "127.0.0.1",
          port: options.port,
          ca: options.caPem,
          ALPNProtocols: ["h2"],
          servername: "localhost",
          ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
          ...(options.certPem !== undefined ? { cert: options.certPem, key: options.keyPem } : {}),
        }),
    });
    session.once("error", reject);
    session.once("remoteSettings", () => {
      session.off("error", reject);
      session.on("error", () => {});
      resolve(session);
    });
  });
}

/** One length-prefixed gRPC message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export interface RawResult {
  /** grpc-status, or -1 when the stream closed without one. */
  code: number;
  message: string;
  /** Response and trailer headers. */
  headers: Record<string, string>;
  /** Response bytes (gRPC frames, undecoded). */
  data: Buffer;
}

export interface RawCallOptions {
  token?: string;
  /** The request body: gRPC frames, written in chunks until the server answers. */
  body?: Buffer;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Leave the request open (no END_STREAM) after the body. */
  keepOpen?: boolean;
}

/** Starts a call; `result` settles with its status. */
export function rawCall(
  session: ClientHttp2Session,
  path: string,
  options: RawCallOptions = {},
): { stream: ClientHttp2Stream; result: Promise<RawResult> } {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  });
  const headers: Record<string, string> = {};
  const chunks: Buffer[] = [];
  const keep = (h: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(h)) headers[k] = String(v);
  };
  stream.on("response", keep);
  stream.on("trailers", keep);
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const result = new Promise<RawResult>((resolve) => {
    stream.on("error", () => {});
    stream.on("close", () => {
      const status = headers["grpc-status"];
      resolve({
        code: status === undefined ? -1 : Number(status),
        message: decodeURIComponent(headers["grpc-message"] ?? ""),
        headers,
        data: Buffer.concat(chunks),
      });
    });
  });
  void writeBody(stream, options.body ?? Buffer.alloc(0), options.keepOpen === true);
  return { stream, result };
}

async function writeBody(stream: ClientHttp2Stream, body: Buffer, keepOpen: boolean) {
  const chunk = 64 * 1024;
  for (let at = 0; at < body.length; at += chunk) {
    if (stream.closed || stream.destroyed) return;
    if (!stream.write(body.subarray(at, at + chunk))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off("drain", done);
          stream.off("close", done);
          resolve();
        };
        stream.on("drain", done);
        stream.on("close", done);
      });
    }
  }
  if (!keepOpen && !stream.closed && !stream.destroyed) stream.end();
}
