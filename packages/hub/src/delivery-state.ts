// What the distributor keeps per cluster: the session of its connected agent (what the
// agent holds, what is in flight, what waits) and the history that status shows across
// sessions.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ConfigDeltaSchema,
  DriftRepair,
  Intent,
  NackRecord,
  ResourceError,
} from "@isthmus/proto";

export interface Sender {
  send(delta: MessageInitShape<typeof ConfigDeltaSchema>): Promise<void>;
}

export interface Tracker {
  origin: number;
  remaining: Set<string>;
}

export interface InFlight {
  nonce: string;
  systemVersion: string;
  sentAt: number;
  /** The intents sent, as the delta holds them (the engine replaces an intent, never changes
   * it in place, so their names and versions are those sent): a name -> version copy would
   * cost a map and a pair per intent until the ACK, hundreds of MB across a fleet's first
   * compile. */
  upserted: readonly Intent[];
  removed: string[];
  trackers: Tracker[];
}

export interface Session {
  clusterId: string;
  sender: Sender;
  /** Intent name -> version the agent holds. */
  applied: Map<string, string>;
  /** Intent name -> the version the agent refused (REMOVAL: its removal) and why; not resent
   * until the version changes. The agent may hold objects of a refused intent (an older
   * version, a part), so a refused intent that leaves the desired set is removed. */
  refused: Map<string, Refusal>;
  inFlight: InFlight | undefined;
  /** Intents whose desired version may differ from the agent's ("all": compare every one). */
  dirty: Set<string> | "all";
  dirtySince: number | undefined;
  timer: unknown;
  /** The pending timer is the idle one (0 ms): later changes join it. */
  timerLeading: boolean;
  /** When the last delta was sent. */
  lastSent: number | undefined;
  trackers: Tracker[];
  sentComplete: boolean;
  history: History;
}

export interface Refusal {
  version: string;
  errors: ResourceError[];
}

/** The version of a refused removal. */
export const REMOVAL = "";

/** What status shows of a cluster's deliveries; kept across sessions. */
export interface History {
  ackedVersion: string;
  nacks: NackRecord[];
  /** The refusals of the last session: status shows them while the cluster is away. */
  refused: Map<string, Refusal>;
  driftRepairs: DriftRepair[];
  driftRepairCount: number;
}

export interface SessionView {
  ackedVersion: string;
  pendingNonce: string;
  nacks: NackRecord[];
  /** Intents refused and not applied since: one error per object, by intent name. */
  refused: ResourceError[];
  /** Newest first. */
  driftRepairs: DriftRepair[];
  driftRepairCount: number;
  /** Connected, nothing waiting to be sent, nothing in flight and nothing refused: the
   * agent holds every desired intent at its desired version. */
  inSync: boolean;
}

export const MAX_NACKS = 10;
export const MAX_DRIFT_REPAIRS = 10;

export const newHistory = (): History => ({
  ackedVersion: "",
  nacks: [],
  refused: new Map(),
  driftRepairs: [],
  driftRepairCount: 0,
});
