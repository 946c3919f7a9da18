/**
 * A keyed work queue in the style of client-go's: a key is queued at most once, a key being
 * processed is not processed concurrently (it is re-queued once if it is added meanwhile),
 * and `enqueue` returns a promise that settles when a run that started after the call ends.
 */
export interface WorkQueue<R> {
  enqueue(key: string): Promise<R>;
  /** Resolves when nothing is queued or running. */
  idle(): Promise<void>;
  /** Number of queued and running keys. */
  depth(): number;
  /** Whether `key` is queued, running or due to run again. */
  pending(key: string): boolean;
  stop(): void;
}

export function createWorkQueue<R>(
  process: (key: string) => Promise<R>,
  options: { concurrency?: number; onError?: (key: string, err: unknown) => R } = {},
): WorkQueue<R> {
  const concurrency = options.concurrency ?? 16;
  const queue: string[] = [];
  const queued = new Set<string>();
  const running = new Set<string>();
  const dirty = new Set<string>();
  const waiters = new Map<string, ((r: R) => void)[]>();
  let idleWaiters: (() => void)[] = [];
  let workers = 0;
  let stopped = false;

  const checkIdle = () => {
    if (queue.length === 0 && running.size === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  const pump = () => {
    while (!stopped && workers < concurrency && queue.length > 0) {
      const key = queue.shift()!;
      queued.delete(key);
      running.add(key);
      const mine = waiters.get(key) ?? [];
      waiters.delete(key);
      workers++;
      void (async () => {
        let result: R;
        try {
          result = await process(key);
        } catch (err) {
          if (options.onError === undefined) throw err;
          result = options.onError(key, err);
        }
        return result;
      })()
        .then((result) => {
          for (const w of mine) w(result);
        })
        .finally(() => {
          workers--;
          running.delete(key);
          if (dirty.delete(key)) add(key);
          pump();
          checkIdle();
        });
    }
  };

  const add = (key: string) => {
    if (running.has(key)) {
      dirty.add(key);
      return;
    }
    if (queued.has(key)) return;
    queued.add(key);
    queue.push(key);
  };

  return {
    enqueue(key) {
      const p = new Promise<R>((resolve) => {
        const list = waiters.get(key);
        if (list === undefined) waiters.set(key, [resolve]);
        else list.push(resolve);
      });
      add(key);
      pump();
      return p;
    },
    idle() {
      if (queue.length === 0 && running.size === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    depth: () => queue.length + running.size,
    pending: (key) => queued.has(key) || running.has(key) || dirty.has(key),
    stop() {
      stopped = true;
    },
  };
}
