// A sandbox (hub, kubesim clusters, real agents) tuned for tests: short debounce and grace,
// in a fresh temporary folder, converged, with the given policies applied and converged.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  defaultScene,
  type Sandbox,
  type SandboxOptions,
  startSandbox,
  waitConverged,
} from "@isthmus/cli/sandbox";
import type { ApplyPoliciesRequestSchema } from "@isthmus/proto";

type Policies = MessageInitShape<typeof ApplyPoliciesRequestSchema>["policies"];

export interface QuickSandbox {
  sandbox: Sandbox;
  close(): Promise<void>;
}

export async function startQuickSandbox(
  prefix: string,
  options: {
    scene?: ReturnType<typeof defaultScene>;
    policies?: Policies;
    agentRetryIntervalMs?: number;
    /** How long a disconnected cluster's services stay (default 3 s). */
    graceSeconds?: number;
    /** More sandbox options (hub settings are merged over the test ones). */
    extra?: Partial<Omit<SandboxOptions, "scene" | "dir">>;
  } = {},
): Promise<QuickSandbox> {
  const dir = mkdtempSync(join(tmpdir(), `isthmus-${prefix}-`));
  const sandbox = await startSandbox({
    scene: options.scene ?? defaultScene(3),
    dir,
    ...options.extra,
    hub: {
      debounce: { windowMs: 20, maxMs: 200 },
      graceSeconds: options.graceSeconds ?? 3,
      warmupSeconds: 30,
      ...options.extra?.hub,
    },
    agentDebounceMs: 20,
    ...(options.agentRetryIntervalMs === undefined
      ? {}
      : { agentRetryIntervalMs: options.agentRetryIntervalMs }),
  });
  await waitConverged(sandbox);
  if (options.policies !== undefined) {
    const { client, call } = sandbox.admin();
    try {
      await client.applyPolicies({ policies: options.policies }, call);
    } finally {
      client.close();
    }
    await waitConverged(sandbox);
  }
  return {
    sandbox,
    async close() {
      await sandbox.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
