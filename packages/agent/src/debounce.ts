/** Timers as a debouncer needs them; injected so that tests control time. */
export interface Clock {
  now(): number;
  /** `ms` 0 means the next turn of the event loop (realClock: `setImmediate`). */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** realClock's handle for a 0 ms timer: an Immediate, which clearTimeout cannot clear. */
interface NextTick {
  immediate: NodeJS.Immediate;
}

const isNextTick = (h: unknown): h is NextTick =>
  typeof h === "object" && h !== null && "immediate" in h;

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms): unknown =>
    ms <= 0 ? ({ immediate: setImmediate(fn) } satisfies NextTick) : setTimeout(fn, ms),
  clearTimeout: (h) => {
    if (isNextTick(h)) clearImmediate(h.immediate);
    else clearTimeout(h as NodeJS.Timeout);
  },
};

export interface Debouncer {
  /** Something changed. When `fn` has not run within the last `windowMs` (idle), it runs on
   * the next turn of the event loop, with every change of this turn. Otherwise (a burst) it
   * runs after `windowMs` without changes, at most `maxMs` after the first change. */
  trigger(): void;
  cancel(): void;
}

/** Debounce that answers a lone change at once and gathers bursts: leading edge when idle,
 * then a trailing window with a bounded maximum wait. */
export function createDebouncer(
  fn: () => void,
  options: { windowMs: number; maxMs: number; clock?: Clock },
): Debouncer {
  const clock = options.clock ?? realClock;
  let handle: unknown;
  /** The pending run is the idle one (next tick): later changes of this tick join it. */
  let leading = false;
  let first = 0;
  let lastRun: number | undefined;
  const fire = () => {
    handle = undefined;
    leading = false;
    lastRun = clock.now();
    fn();
  };
  return {
    trigger() {
      const t = clock.now();
      if (handle !== undefined) {
        if (leading) return;
        clock.clearTimeout(handle);
      } else {
        first = t;
        if (lastRun === undefined || t - lastRun >= options.windowMs) {
          leading = true;
          handle = clock.setTimeout(fire, 0);
          return;
        }
      }
      handle = clock.setTimeout(
        fire,
        Math.max(0, Math.min(options.windowMs, first + options.maxMs - t)),
      );
    },
    cancel() {
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = undefined;
      leading = false;
    },
  };
}
