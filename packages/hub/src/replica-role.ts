// What a hub replica does in its role (docs/high-availability.md). The leader serves every
// gRPC call; a follower answers each with UNAVAILABLE and the leader's address in the
// `isthmus-leader` trailer, so that agents and the CLI go to the leader. A call that arrives
// while no replica leads (a failover) waits for the election up to a bound first.
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { errorField, type Logger } from "@isthmus/logging";
import { AdminService, AgentService, Code, GrpcError, LEADER_HINT } from "@isthmus/proto";
import { stopReading } from "./gate.js";
import type { LeaderInfo, Leadership } from "./leadership.js";

/** The answer of a replica that does not lead: UNAVAILABLE, with the leader's address when
 * another replica leads and advertises one. */
export function notLeader(leadership: Leadership): GrpcError {
  const { leader, problem } = leadership.view();
  const other = leader !== undefined && leader.id !== leadership.id ? leader : undefined;
  const metadata = new grpc.Metadata();
  // Always present, empty when there is no address to give: it says "a follower", so that
  // an agent retries soon instead of backing off as from a failure.
  metadata.set(LEADER_HINT, other?.address ?? "");
  const message =
    other === undefined
      ? `this hub replica does not lead and no leader is elected yet in ${leadership.where}${problem === undefined ? "" : ` (${problem})`}; retry`
      : other.address === ""
        ? "this hub replica does not lead; the leader advertises no address, connect again"
        : `this hub replica does not lead; the leader is at ${other.address}`;
  return new GrpcError(Code.UNAVAILABLE, message, { metadata });
}

/**
 * The role gate, a grpc-js server interceptor placed first: calls of the hub's services on a
 * replica that does not lead are answered with `notLeader` before their request is read.
 * `waitMs`: how long a call waits for an election when no replica leads.
 */
export function createRoleGate(
  current: () => Leadership,
  paths: ReadonlySet<string>,
  waitMs: number,
): grpc.ServerInterceptor {
  return (descriptor, call) => {
    if (!paths.has(descriptor.path)) return new grpc.ServerInterceptingCall(call);
    const leadership = current();
    const refuse = () => {
      const e = notLeader(leadership);
      intercepting.sendStatus({ code: e.code, details: e.message, metadata: e.metadata! });
      stopReading(call);
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (leadership.leading()) return next(metadata);
        if (leadership.view().leader !== undefined) return refuse();
        leadership.leaderWithin(waitMs).then(() => {
          if (leadership.leading()) next(metadata);
          else refuse();
        }, refuse);
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    const intercepting = new grpc.ServerInterceptingCall(call, responder);
    return intercepting;
  };
}

/** The hub's gRPC methods: every one goes to the leader. */
export const HUB_PATHS: ReadonlySet<string> = new Set(
  [AgentService, AdminService].flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)),
);

/** A replica whose election has not started (before its port is bound): it never leads. */
export function notStarted(self: LeaderInfo): Leadership {
  return {
    id: self.id,
    where: "",
    leading: () => false,
    view: () => ({ leading: false, term: 0n, leader: undefined }),
    leaderWithin: async () => undefined,
    onChange: () => () => {},
    resign: () => {},
    close: async () => {},
  };
}

/** /readyz: the leader, and a follower that knows a leader to send callers to. */
export function readiness(leadership: Leadership): { ready: boolean; detail: string } {
  const { leading, term, leader } = leadership.view();
  if (leading) return { ready: true, detail: `leader (term ${term})` };
  if (leader !== undefined && leader.id !== leadership.id)
    return { ready: true, detail: `follower of ${leader.address || leader.id}` };
  return { ready: false, detail: "no leader elected" };
}

/** The address followers send callers to: the listen address with the bound port, unless its
 * host is a wildcard (then the replica advertises none). */
export function advertisedAddress(listen: string, port: number): string {
  const host = listen.slice(0, listen.lastIndexOf(":"));
  if (host === "" || host === "0.0.0.0" || host === "[::]" || host === "::") return "";
  return `${host}:${port}`;
}

export interface RoleHooks {
  /** Re-reads the registry from the store and brings the engine up to it. */
  resync(): Promise<void>;
  /** Starts the warm-up: no removals until known clusters reconnect or the grace passes. */
  beginWarmup(): void;
  /** Ends every agent stream (with `reason`) and forgets the soft state they brought. */
  dropAgents(reason: GrpcError): void;
}

/**
 * Follows the election: on winning, the replica re-reads the store (so that it holds every
 * write acknowledged before, whichever replica took it) and starts a warm-up before it serves;
 * on losing, it ends its agent streams with the leader hint. The returned Leadership leads only
 * once the re-read of its term is done: calls and pushes wait for it.
 */
export function followElection(elected: Leadership, hooks: RoleHooks, logger: Logger): Leadership {
  let servingTerm = 0n;
  let wasLeading = false;
  /** Calls held for this replica's re-read to end (it was just elected). */
  const servingWaiters = new Set<() => void>();
  const serving = () => elected.leading() && elected.view().term === servingTerm;
  const role: Leadership = {
    ...elected,
    leading: serving,
    view: () => {
      const v = elected.view();
      return serving() ? v : { leading: false, term: 0n, leader: v.leader };
    },
    // Elected but still re-reading the store: wait for that too, rather than refuse.
    async leaderWithin(ms) {
      const since = performance.now();
      const leader = await elected.leaderWithin(ms);
      if (leader?.id !== elected.id || serving()) return leader;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          servingWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms - (performance.now() - since)));
        servingWaiters.add(done);
      });
      return leader;
    },
  };
  elected.onChange((v) => {
    if (v.leading && v.term !== servingTerm) {
      const term = v.term;
      hooks.resync().then(
        () => {
          if (elected.view().term !== term) return;
          hooks.beginWarmup();
          servingTerm = term;
          wasLeading = true;
          logger.info("serving as leader", { term: String(term) });
          for (const done of [...servingWaiters]) done();
        },
        (err: unknown) => {
          logger.error("cannot re-read the store on takeover; resigning", {
            err: errorField(err),
          });
          // Campaigning again is the retry: another replica may read the store better.
          elected.resign("cannot re-read the store on takeover");
        },
      );
    } else if (!v.leading && wasLeading) {
      wasLeading = false;
      servingTerm = 0n;
      hooks.dropAgents(notLeader(role));
    }
  });
  return role;
}
