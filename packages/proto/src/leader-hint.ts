// The `isthmus-leader` trailer: a follower of a highly available hub refuses every call with
// UNAVAILABLE and names the leader's address in it (docs/high-availability.md). The hub sets
// it; the agent and the CLI follow it.
import { Code, isGrpcError } from "./errors.js";

export const LEADER_HINT = "isthmus-leader";

/**
 * The leader address a follower's refusal names; "" when the follower names none (no leader
 * elected yet, or one that advertises no address); undefined when `err` is no follower's
 * refusal, or names something that is not "host:port".
 */
export function leaderHint(err: unknown): string | undefined {
  if (!isGrpcError(err) || err.code !== Code.UNAVAILABLE || err.metadata === undefined)
    return undefined;
  const value = err.metadata.get(LEADER_HINT)[0];
  if (value === "") return "";
  return typeof value === "string" && /^[^\s,]+:[0-9]{1,5}$/.test(value) ? value : undefined;
}
