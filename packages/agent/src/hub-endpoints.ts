// Which hub address the agent dials next, and how long it waits first: the reconnection rules
// (docs/high-availability.md), kept apart from the session so that they read in one place and
// the failover benchmark's simulated agents follow the very same ones.
//
// - Configured addresses (`--hub a,b,c`) are tried in turn; with one address (a Service in
//   front of the replicas) it is dialed again.
// - A follower's refusal names the leader (leaderHint): it is dialed at once, after 0 ..
//   hintDelayMs of jitter, which spreads a failover's reconnections.
// - A redirect run begins at such a refusal, at a hinted address that does not answer, or when
//   a session that was welcomed ends while there are other addresses (the leader went away:
//   the replicas share their state, and a follower holds the call while its election runs).
//   During the run, for at most REDIRECT_WINDOW_MS, every failure moves to the next address
//   after 2 .. 4 × hintDelayMs: no growing backoff while replicas answer that a leader is due.
// - Anything else backs off exponentially with full jitter.
import { leaderHint } from "@isthmus/proto";

/** How long a redirect run retries without backoff: a crashed leader's lease (2 s at etcd's
 * minimum) plus an election, with room. */
export const REDIRECT_WINDOW_MS = 15_000;

/** Full-jitter exponential backoff: a random wait in [initial/2, min(max, initial * 2^attempt)]. */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number,
): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(initialMs / 2, Math.floor(random() * cap));
}

export interface HubEndpointsOptions {
  /** The configured addresses, comma-separated ("a:443,b:443"). */
  addresses: string;
  /** Randomness for jitter, in [0, 1). */
  random: () => number;
  /** Monotonic or wall-clock milliseconds. */
  nowMs: () => number;
  /** Jitter of following a hint (default 100 ms). */
  hintDelayMs?: number;
  /** Backoff outside redirects: initial and maximum, in ms (default 500 ms .. 30 s). */
  backoff?: { initialMs: number; maxMs: number };
}

/** What to do after a session ended. */
export interface NextDial {
  /** Milliseconds to wait before dialing `target()`. */
  waitMs: number;
  /** Part of a redirect run (else a backoff). */
  redirect: boolean;
  /** The leader a follower named ("" for none), when the failure was such a refusal. */
  hint: string | undefined;
  /** Failed attempts in a row outside redirects. */
  attempt: number;
}

export interface HubEndpoints {
  /** The address to dial now. */
  target(): string;
  /** After the session dialed at `target()` ended: whether it was welcomed, and the error
   * that ended it, if any. */
  ended(welcomed: boolean, failure: unknown): NextDial;
}

export function createHubEndpoints(options: HubEndpointsOptions): HubEndpoints {
  const addresses = options.addresses
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  if (addresses.length === 0) throw new Error("hub address: no address given");
  const { random, nowMs } = options;
  const hintDelayMs = options.hintDelayMs ?? 100;
  const initialMs = options.backoff?.initialMs ?? 500;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  let next = 0;
  let hinted: string | undefined;
  let dialed = addresses[0]!;
  let attempt = 0;
  /** When the current redirect run began; undefined outside one. */
  let redirectedSince: number | undefined;
  /** A hinted address that did not answer: followers may name it until the dead leader's
   * lease expires, so it is not followed again for a while. */
  let deadHint: { address: string; until: number } | undefined;
  const configured = () => addresses[next % addresses.length]!;
  /** Moves past the address that failed, unless it was a hint (then the position stays). */
  const advance = () => {
    if (dialed === configured()) next++;
  };

  return {
    target() {
      dialed = hinted ?? configured();
      return dialed;
    },
    ended(welcomed, failure) {
      const t = nowMs();
      const followed = hinted;
      hinted = undefined;
      const hint = leaderHint(failure);
      if (welcomed) {
        attempt = 0;
        redirectedSince = addresses.length > 1 && hint === undefined ? t : undefined;
      }
      const redirecting =
        hint !== undefined ||
        followed !== undefined ||
        (redirectedSince !== undefined && t - redirectedSince <= REDIRECT_WINDOW_MS);
      if (redirecting) {
        redirectedSince ??= t;
        if (t - redirectedSince <= REDIRECT_WINDOW_MS) {
          if (hint === undefined && followed !== undefined)
            deadHint = { address: followed, until: t + REDIRECT_WINDOW_MS / 3 };
          const usable =
            hint !== undefined &&
            hint !== "" &&
            !(deadHint !== undefined && deadHint.address === hint && t < deadHint.until);
          if (usable) {
            hinted = hint;
            return { waitMs: Math.floor(random() * hintDelayMs), redirect: true, hint, attempt };
          }
          advance();
          // A welcomed session's end: the next replica at once, as if a hint named it.
          const waitMs = welcomed
            ? Math.floor(random() * hintDelayMs)
            : hintDelayMs * 2 + Math.floor(random() * hintDelayMs * 2);
          return { waitMs, redirect: true, hint, attempt };
        }
      }
      redirectedSince = undefined;
      advance();
      attempt = welcomed ? 0 : attempt + 1;
      return {
        waitMs: backoffDelay(attempt, initialMs, maxMs, random),
        redirect: false,
        hint,
        attempt,
      };
    },
  };
}
