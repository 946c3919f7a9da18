// The garbage collector's pauses of this process (PerformanceObserver "gc" entries: the main
// thread's stop of each collection, young or full), for the benchmarks that run several
// processes and report where their latency goes.
import { PerformanceObserver } from "node:perf_hooks";

export interface GcPauses {
  /** Pause time of every collection since the watch started, in ms. */
  totalMs: number;
  /** The longest pause since the previous `take()`, in ms. */
  maxMs: number;
}

/** Starts summing this process's GC pauses; `take()` reads them and starts a new maximum. */
export function watchGcPauses(): { take(): GcPauses; stop(): void } {
  let totalMs = 0;
  let maxMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      totalMs += e.duration;
      if (e.duration > maxMs) maxMs = e.duration;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return {
    take() {
      const out = { totalMs, maxMs };
      maxMs = 0;
      return out;
    },
    stop: () => observer.disconnect(),
  };
}
