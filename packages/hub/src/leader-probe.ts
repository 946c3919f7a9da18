// Fast takeover from a crashed leader. A leader killed outright (kill -9, OOM) keeps its
// election key until its lease runs out (2 s at etcd's minimum TTL, plus etcd's expiry
// sweep), while every agent it served is already without a hub. So a follower holds one idle
// TCP connection to the leader's advertised address. When that connection ends and new ones
// are refused twice in a row, nothing listens there any more: a live leader never closes its
// listener, so the process is gone, and the follower revokes the leader's lease for the
// election to move on at once. A leader that is paused or cut off (connects hang or time out
// rather than being refused) is left to its lease, as is one that advertises no address, and
// one whose port never accepted a connection (a wrong peer address must not make every
// leader lose its lease).
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { errorField, type Logger } from "@isthmus/logging";
import { splitHostPort } from "@isthmus/proto";

/** The leader to watch: its advertised address ("host:port") and its election lease. */
export interface ProbeTarget {
  address: string;
  lease: string;
}

export interface LeaderProbe {
  /** Watches `target` from now on (undefined: nothing); the same target again is a no-op. */
  watch(target: ProbeTarget | undefined): void;
  close(): void;
}

export interface LeaderProbeOptions {
  /** Revokes the lease; errors are logged (another follower may have revoked it first). */
  revoke(lease: string): Promise<void>;
  /** Called just before: the leader is gone (callers are best held until the next one). */
  gone(target: ProbeTarget): void;
  logger: Logger;
  /** Wait between two refused connects (the second confirms the first). Default 50 ms. */
  confirmMs?: number;
  /** Wait after a connect that failed otherwise (timeout, unreachable). Default 1 s. */
  retryMs?: number;
}

export function createLeaderProbe(options: LeaderProbeOptions): LeaderProbe {
  const confirmMs = options.confirmMs ?? 50;
  const retryMs = options.retryMs ?? 1_000;
  const log = options.logger.child({ module: "leader-probe" });
  /** Ends the current watch; each watch owns its socket and timer. */
  let stop: (() => void) | undefined;
  let current: ProbeTarget | undefined;

  const start = (target: ProbeTarget): (() => void) => {
    // Nothing to dial without a host and a port.
    const split = splitHostPort(target.address);
    const endpoint = split !== undefined && split.host !== "" && split.port > 0 ? split : undefined;
    let stopped = false;
    let socket: Socket | undefined;
    let timer: NodeJS.Timeout | undefined;
    let refused = 0;
    /** Whether the leader ever accepted a connection here: a port that never did may be a
     * wrong peerAddress, and revoking every leader for it would make leadership flap. */
    let accepted = false;
    let warned = false;
    /** Connections in a row the leader closed within retryMs of accepting them. */
    let quickCloses = 0;
    const later = (ms: number) => {
      timer = setTimeout(dial, ms);
      timer.unref();
    };
    const dial = () => {
      if (stopped || endpoint === undefined) return;
      const s = connect({ ...endpoint, timeout: retryMs });
      socket = s;
      s.unref();
      let connected = false;
      let connectedAt = 0;
      s.on("connect", () => {
        connected = true;
        accepted = true;
        connectedAt = performance.now();
        refused = 0;
        s.setTimeout(0);
      });
      s.on("timeout", () => s.destroy());
      s.on("data", () => {}); // A TLS server sends nothing before a hello; never read.
      s.on("error", (err: NodeJS.ErrnoException) => {
        if (connected || err.code !== "ECONNREFUSED") return;
        refused++;
      });
      s.on("close", () => {
        if (stopped || s !== socket) return;
        if (refused >= 2 && accepted) {
          log.warn("the leader's port refuses connections; revoking its lease", {
            leader: target.address,
          });
          stopped = true;
          options.gone(target);
          options.revoke(target.lease).catch((err: unknown) => {
            log.warn("cannot revoke the leader's lease", { err: errorField(err) });
          });
          return;
        }
        if (refused >= 2) {
          if (!warned)
            log.warn("the leader's peer address never accepted a connection; check peerAddress", {
              leader: target.address,
            });
          warned = true;
          refused = 0;
          later(retryMs);
          return;
        }
        // Ended after connecting (the leader went away, or its handshake timeout): dial again
        // at once, unless the leader keeps closing at once (then as below); refused once:
        // confirm soon; anything else (timed out, unreachable): retry later.
        if (connected)
          quickCloses = performance.now() - connectedAt < retryMs ? quickCloses + 1 : 0;
        later(refused > 0 ? confirmMs : connected && quickCloses <= 1 ? 0 : retryMs);
      });
    };
    dial();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      socket?.destroy();
    };
  };

  return {
    watch(target) {
      if (target?.address === current?.address && target?.lease === current?.lease) return;
      stop?.();
      stop = undefined;
      current = target;
      if (target !== undefined && target.address !== "") stop = start(target);
    },
    close() {
      stop?.();
      stop = undefined;
      current = undefined;
    },
  };
}
