// What the HTTP layer of one simulated cluster is given by kubesim.ts.
import type { FaultEngine } from "../faults.js";
import type { KubeObject } from "../object.js";
import type { Store } from "../store.js";

export interface ServerContext {
  store: Store;
  faults: FaultEngine;
  token: string | undefined;
  now: () => Date;
  serverAddress: () => string;
  watchTimeoutSeconds: number;
  bookmarkIntervalMs: number;
  /** A watch whose unsent output exceeds this many bytes is ended (a client not reading). */
  watchBufferBytes: number;
  /** Loads multi-document YAML into the store (admin `/kubesim/seed`). */
  seed: (yaml: string) => KubeObject[];
}
