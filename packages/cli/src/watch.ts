// `--watch` for lists the hub has no watch stream for (status, cluster list): ask again every
// interval and print each object whose state changed, as `kubectl get -w` prints one row per
// change after the first table. The catalog has a real stream (catalog list --watch).
import { setTimeout as sleep } from "node:timers/promises";

export interface PollWatch<T> {
  /** The current objects. */
  list(): Promise<T[]>;
  /** Stable name of an object (cluster id). */
  id(item: T): string;
  /** Its state: a change of this string prints the object again. */
  state(item: T): string;
  /** Prints the first list (with headers), then every changed object (`first` false). */
  print(items: T[], first: boolean): void;
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Runs until `signal` aborts (Ctrl-C ends the process itself) or `list` fails. */
export async function pollWatch<T>(watch: PollWatch<T>): Promise<void> {
  const seen = new Map<string, string>();
  let first = true;
  while (!watch.signal?.aborted) {
    const items = await watch.list();
    const changed = items.filter((item) => seen.get(watch.id(item)) !== watch.state(item));
    for (const item of items) seen.set(watch.id(item), watch.state(item));
    if (first || changed.length > 0) watch.print(first ? items : changed, first);
    first = false;
    try {
      await sleep(watch.intervalMs ?? 1000, undefined, { signal: watch.signal });
    } catch {
      return; // aborted
    }
  }
}
