// What the reconciler does on its own, gathered for the hub as ApplyReport messages.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApplyReportSchema } from "@isthmus/proto";
import type { DriftRepair } from "./apply/drift.js";
import type { ReconcilerEvent } from "./apply/reconciler.js";

/** Drift repairs kept for the hub while no session is open. */
const MAX_PENDING_REPAIRS = 100;
/** Most entries of each list in one ApplyReport (the contract allows 1,000 drift repairs). */
const REPORT_CHUNK = 1_000;

export type ApplyReportInit = MessageInitShape<typeof ApplyReportSchema>;

/**
 * NACKed intents applied or removed on the agent's retries, and drift repairs, until a
 * session sends them. Applied and removed intents need no keeping across sessions (Hello
 * reports the applied set: `startSession` drops them); drift repairs are kept, the last
 * MAX_PENDING_REPAIRS.
 */
export function createApplyReports() {
  const applied = new Map<string, string>();
  const removed = new Set<string>();
  let repairs: DriftRepair[] = [];
  return {
    add(e: ReconcilerEvent): void {
      if (e.type === "applied") {
        applied.set(e.intentName, e.version);
        removed.delete(e.intentName);
      } else if (e.type === "removed") {
        removed.add(e.intentName);
        applied.delete(e.intentName);
      } else {
        repairs.push(e.repair);
        if (repairs.length > MAX_PENDING_REPAIRS) repairs.shift();
      }
    },
    /** Hello is about to report what is applied and what failed. */
    startSession(): void {
      applied.clear();
      removed.clear();
    },
    /** Everything gathered, in messages within the contract's limits; empties the buffer. */
    take(): ApplyReportInit[] {
      const names = [...applied];
      const gone = [...removed];
      const done = repairs;
      applied.clear();
      removed.clear();
      repairs = [];
      const out: ApplyReportInit[] = [];
      const count = Math.max(names.length, gone.length, done.length);
      for (let i = 0; i < count; i += REPORT_CHUNK) {
        out.push({
          applied: Object.fromEntries(names.slice(i, i + REPORT_CHUNK)),
          removed: gone.slice(i, i + REPORT_CHUNK),
          driftRepairs: done.slice(i, i + REPORT_CHUNK).map((r) => ({
            intentName: r.intentName,
            object: r.object,
            change: r.change,
            time: timestampFromDate(r.time),
          })),
        });
      }
      return out;
    },
  };
}
