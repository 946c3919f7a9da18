// How status and explain print a conflict: a foreign object that changes what Istio enforces
// for an Isthmus decision (the agent finds them, docs/conflicts.md).
import type { Conflict } from "@isthmus/proto";

/** One conflict on one line: what the foreign object does, where, to whom. */
export function conflictLine(c: Conflict): string {
  const what =
    c.kind === "widens-access"
      ? "allows callers Isthmus denies"
      : c.kind === "breaks-allow"
        ? "denies callers Isthmus allows"
        : "accepts plaintext where only principal rules guard (callers without mTLS pass)";
  const who = c.principals.length > 0 ? ` (${c.principals.join(", ")})` : "";
  return `${c.object} (not managed by Isthmus) ${what} at ${c.service} port ${c.ports.join(",")}${who}: ${c.kind}`;
}
