/**
 * A manual clock for code that takes its time and timers injected: `advance(ms)` runs the
 * timers that fall due, in time order (then creation order), moving `now` to each.
 */
export function manualClock(start = 0) {
  const state = { t: start };
  const timers = new Map<number, { at: number; fn: () => void }>();
  let ids = 0;
  const now = () => state.t;
  const setTimer = (fn: () => void, ms: number): number => {
    timers.set(++ids, { at: state.t + ms, fn });
    return ids;
  };
  const clearTimer = (handle: unknown) => void timers.delete(handle as number);
  const advance = (ms: number) => {
    const end = state.t + ms;
    for (;;) {
      const due = [...timers]
        .filter(([, x]) => x.at <= end)
        .sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (due === undefined) break;
      timers.delete(due[0]);
      state.t = due[1].at;
      due[1].fn();
    }
    state.t = end;
  };
  return { state, now, setTimer, clearTimer, advance, pending: () => timers.size };
}
