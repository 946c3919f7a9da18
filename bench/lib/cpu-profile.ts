// CPU profiles of a part of a benchmark (ISTHMUS_BENCH_CPU_PROF=<dir>), through node:inspector
// in the process itself: only what runs between start and stop, without module loading and
// set-up (which `--cpu-prof` would include from the process's start).
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

/** The folder profiles go to, from ISTHMUS_BENCH_CPU_PROF; undefined: no profiling. */
export const profileDir = (): string | undefined => process.env.ISTHMUS_BENCH_CPU_PROF || undefined;

/** Starts profiling this process; the returned function stops and writes
 * `<dir>/<name>.<pid>.cpuprofile`. */
export async function startCpuProfile(dir: string): Promise<(name: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return async (name) => {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(join(dir, `${name}.${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}
