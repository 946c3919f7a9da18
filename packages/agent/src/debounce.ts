/** Timers as a debouncer needs them; injected so that tests control time. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface Debouncer {
  /** Something changed: run `fn` after `windowMs` of quiet, at most `maxMs` after the first. */
  trigger(): void;
  cancel(): void;
}

/** Trailing debounce with a bounded maximum wait. */
export function createDebouncer(
  fn: () => void,
  options: { windowMs: number; maxMs: number; clock?: Clock },
): Debouncer {
  const clock = options.clock ?? realClock;
  let handle: unknown;
  let first: number | undefined;
  const fire = () => {
    handle = undefined;
    first = undefined;
    fn();
  };
  return {
    trigger() {
      const t = clock.now();
      first ??= t;
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = clock.setTimeout(
        fire,
        Math.max(0, Math.min(options.windowMs, first + options.maxMs - t)),
      );
    },
    cancel() {
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = undefined;
      first = undefined;
    },
  };
}
