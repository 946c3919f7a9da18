// The DefaultAccessIntent: one per cluster while a default denies, which the agent expands
// into the access of every local service no AccessIntent of its own covers.
import { Decision, type Intent } from "@isthmus/proto";
import { buildDefaultAccess, DEFAULT_ACCESS_NAME } from "../intent-builder.js";
import { type Batch, setIntent } from "./batch.js";
import { type EngineState, sameClusterAllowed } from "./engine-state.js";

/** The DefaultAccessIntent every cluster holds while a default denies, else null. */
export function defaultAccess(state: EngineState): Intent | null {
  const denies =
    state.defaults.sameCluster === Decision.DENY || state.defaults.crossCluster === Decision.DENY;
  return denies ? buildDefaultAccess(sameClusterAllowed(state)) : null;
}

/** Sets (or removes) a cluster's DefaultAccessIntent from the defaults. */
export function finalizeDefaultAccess(state: EngineState, batch: Batch, clusterId: string): void {
  setIntent(state, batch, clusterId, DEFAULT_ACCESS_NAME, defaultAccess(state));
}
