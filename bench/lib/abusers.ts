// The abusive clients of bench/abuse.ts, in a process of their own so that their work does
// not slow the well-behaved admin the benchmark times. Started with fork() and a JSON
// argument { port, caPem, count, viewerToken }; opens every client's connection, sends
// { ready: <connected> }, abuses until the parent sends "stop", then sends back how its calls
// were answered ({ answered: { "<kind> <grpc-status>": n } }).
//
// Client i uses the loopback address 127.1.<i / 256>.<i % 256 + 1> and is one of:
// - 40% slow readers: WatchCatalog with the viewer token, never read (HTTP/2 flow control
//   blocks the hub's sends); a new watch a second after one ends;
// - 30% unauthenticated ApplyPolicies of 13.6 MiB, one after another;
// - 30% token guessers: GetStatus with a new random token, one after another.
import type { ClientHttp2Session } from "node:http2";
import { grpcFrame, rawCall, rawSession } from "../../test/helpers/raw-grpc.js";
import { createRandom } from "../harness.js";

interface Args {
  port: number;
  caPem: string;
  count: number;
  viewerToken: string;
}

const MiB = 1024 * 1024;
const large = grpcFrame(Buffer.alloc(Math.round(13.6 * MiB), 0x0a));
const empty = grpcFrame(new Uint8Array());
const answered = new Map<string, number>();
const count = (what: string) => answered.set(what, (answered.get(what) ?? 0) + 1);
let stopAll: () => void = () => {};
const stopped = new Promise<undefined>((resolve) => {
  stopAll = () => resolve(undefined);
});
let stopping = false;
const pause = (ms: number) => Promise.race([new Promise((r) => setTimeout(r, ms)), stopped]);

async function slowReader(session: ClientHttp2Session, args: Args): Promise<void> {
  while (!stopping && !session.closed) {
    const { stream, result } = rawCall(session, "/isthmus.v1.AdminService/WatchCatalog", {
      token: args.viewerToken,
      body: empty,
    });
    stream.pause();
    const r = await Promise.race([result, stopped]);
    if (r === undefined) {
      stream.close();
      return;
    }
    count(`watch ${r.code}`);
    await pause(1000);
  }
}

async function caller(session: ClientHttp2Session, kind: "large" | "guess", index: number) {
  const random = createRandom(index);
  while (!stopping && !session.closed) {
    const token =
      kind === "guess" ? `guess-${random().toString(36).slice(2)}-0123456789` : undefined;
    const path = `/isthmus.v1.AdminService/${kind === "large" ? "ApplyPolicies" : "GetStatus"}`;
    const r = await rawCall(session, path, {
      body: kind === "large" ? large : empty,
      ...(token !== undefined ? { token } : {}),
    }).result;
    count(`${kind} ${r.code}`);
  }
}

async function connectFrom(index: number, args: Args): Promise<ClientHttp2Session | undefined> {
  const localAddress = `127.1.${index >> 8}.${(index & 255) + 1}`;
  try {
    return await rawSession({ port: args.port, caPem: args.caPem, localAddress });
  } catch {
    count("connect failed");
    return undefined;
  }
}

async function abuse(index: number, session: ClientHttp2Session, args: Args): Promise<void> {
  try {
    const slot = index % 10;
    if (slot < 4) await slowReader(session, args);
    else await caller(session, slot < 7 ? "large" : "guess", index);
  } finally {
    session.destroy();
  }
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
process.on("message", (m) => {
  if (m === "stop") {
    stopping = true;
    stopAll();
  }
});
// Connected first, then all at once: the parent times its admin from the "ready" message.
const sessions = await Promise.all(
  Array.from({ length: args.count }, (_, i) => connectFrom(i, args)),
);
process.send!({ ready: sessions.filter((s) => s !== undefined).length });
await Promise.all(sessions.map((s, i) => (s === undefined ? undefined : abuse(i, s, args))));
process.send!({ answered: Object.fromEntries(answered) }, () => process.exit(0));
