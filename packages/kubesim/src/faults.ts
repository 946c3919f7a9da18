/** Which requests a fault applies to; all API requests when empty. */
export interface RequestMatch {
  /** HTTP method, e.g. `GET`. */
  method?: string;
  /** Path prefix, e.g. `/api/v1/namespaces/default/pods`. */
  pathPrefix?: string;
  /** Only watch requests (`true`) or only non-watch requests (`false`). */
  watch?: boolean;
}

export interface FailOptions extends RequestMatch {
  /** 500 (InternalError), 503 (ServiceUnavailable) or 429 (TooManyRequests). Default 500. */
  code?: 500 | 503 | 429;
  /** Sent as `Retry-After` and `details.retryAfterSeconds` with 429 and 503. Default 1. */
  retryAfterSeconds?: number;
}

export interface FaultState {
  failures: { remaining: number; code: number; retryAfterSeconds: number; match: RequestMatch }[];
  latencyMs: number;
  paused: boolean;
  /** Requests currently held by latency or pause. */
  waiting: number;
}

/** Fault injection controls; each is also served under `/kubesim/faults` (see README). */
export interface Faults {
  /** Ends every open watch stream, as when an apiserver restarts or a proxy cuts idle streams. */
  closeWatches(): number;
  /** Fails the next `count` matching requests with a Status of the given code. */
  failNext(count: number, options?: FailOptions): void;
  /** Delays every API request by `ms` before handling it (0 to stop). */
  setLatency(ms: number): void;
  /** Drops the watch history: a watch from any older resourceVersion gets 410 Expired. */
  compact(): void;
  /** Holds every API request until `resume()`. */
  pause(): void;
  resume(): void;
  /** Clears failures, latency and pause. */
  reset(): void;
  state(): FaultState;
}

export interface FaultHooks {
  closeWatches(): number;
  compact(): void;
}

export interface FaultEngine extends Faults {
  /** The failure to inject for this request, if any (consumes one). */
  takeFailure(
    method: string,
    path: string,
    watch: boolean,
  ): { code: number; retryAfterSeconds: number } | undefined;
  /** Resolves once the request may proceed (after latency and pause). */
  gate(): Promise<void>;
}

function matches(m: RequestMatch, method: string, path: string, watch: boolean): boolean {
  if (m.method !== undefined && m.method.toUpperCase() !== method) return false;
  if (m.pathPrefix !== undefined && !path.startsWith(m.pathPrefix)) return false;
  if (m.watch !== undefined && m.watch !== watch) return false;
  return true;
}

export function createFaults(hooks: FaultHooks): FaultEngine {
  const state: FaultState = { failures: [], latencyMs: 0, paused: false, waiting: 0 };
  let waiters: (() => void)[] = [];
  const release = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  return {
    closeWatches: () => hooks.closeWatches(),
    compact: () => hooks.compact(),
    failNext(count, options = {}) {
      const { code = 500, retryAfterSeconds = 1, ...match } = options;
      if (!Number.isInteger(count) || count < 1)
        throw new Error(`fault failNext: count must be a positive integer, got ${count}`);
      state.failures.push({ remaining: count, code, retryAfterSeconds, match });
    },
    setLatency(ms) {
      if (!(ms >= 0)) throw new Error(`fault setLatency: ms must be >= 0, got ${ms}`);
      state.latencyMs = ms;
    },
    pause() {
      state.paused = true;
    },
    resume() {
      state.paused = false;
      release();
    },
    reset() {
      state.failures = [];
      state.latencyMs = 0;
      state.paused = false;
      release();
    },
    state: () => structuredClone(state),
    takeFailure(method, path, watch) {
      const f = state.failures.find((x) => matches(x.match, method, path, watch));
      if (f === undefined) return undefined;
      f.remaining--;
      if (f.remaining === 0) state.failures.splice(state.failures.indexOf(f), 1);
      return { code: f.code, retryAfterSeconds: f.retryAfterSeconds };
    },
    async gate() {
      if (state.latencyMs === 0 && !state.paused) return;
      state.waiting++;
      try {
        if (state.latencyMs > 0) await new Promise((r) => setTimeout(r, state.latencyMs));
        while (state.paused) await new Promise<void>((r) => waiters.push(r));
      } finally {
        state.waiting--;
      }
    },
  };
}
