import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeSim, KubeSimOptions } from "@isthmus/kubesim";
import { startKubeSim } from "@isthmus/kubesim";
import { KubeConfig } from "./k8s-client.js";

export interface Harness {
  sim: KubeSim;
  kc: KubeConfig;
  dir: string;
  kubeconfigPath: string;
  close(): Promise<void>;
}

/** Starts a simulator with a kubeconfig on disk and a client-node KubeConfig for it. */
export async function startHarness(options: KubeSimOptions = {}): Promise<Harness> {
  const sim = await startKubeSim(options);
  const dir = await mkdtemp(join(tmpdir(), "kubesim-test-"));
  const kubeconfigPath = await sim.writeKubeconfig(join(dir, "kubeconfig"));
  const kc = new KubeConfig();
  kc.loadFromString(sim.kubeconfig());
  return {
    sim,
    kc,
    dir,
    kubeconfigPath,
    async close() {
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real kubectl against the harness (own discovery cache, no user config). */
export function kubectl(h: Harness, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      "kubectl",
      ["--kubeconfig", h.kubeconfigPath, "--cache-dir", join(h.dir, "cache"), ...args],
      { env: { ...process.env, HOME: h.dir, KUBECONFIG: "" }, timeout: 20000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Resolves when `check` returns true, polling on events rather than on wall-clock deadlines. */
export async function until(check: () => boolean, what: string, attempts = 400): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The Status body of a client-node ApiException. */
export function statusOf(err: unknown): {
  code: number;
  reason: string;
  message: string;
  details?: Record<string, unknown>;
} {
  const body = (err as { body?: unknown }).body;
  const parsed = typeof body === "string" ? JSON.parse(body) : body;
  return parsed as {
    code: number;
    reason: string;
    message: string;
    details?: Record<string, unknown>;
  };
}
