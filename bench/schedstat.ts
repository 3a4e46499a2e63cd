import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time a process has used so far, all its threads, microseconds; NaN where Linux's per-task
 * schedstat is not there. Reads the scheduler's own nanosecond counts, as getrusage is only for
 * the process itself and /proc's stat counts in 10 ms ticks, too coarse for a batch of a second.
 */
export function processCpuMicros(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    let nanos = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      nanos += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    }
    return nanos / 1000;
  } catch {
    return NaN;
  }
}
