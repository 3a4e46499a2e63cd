import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { processCpuMicros } from "../../bench/schedstat.js";
import { mosquittoAvailable, startMosquitto } from "../support/brokers.js";

const NO_SCHEDSTAT = existsSync(`/proc/${process.pid}/task`) ? false : "no /proc task list";
// CI installs Mosquitto, so there nothing is ever skipped.
const NO_MOSQUITTO = mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";

/** Keeps this thread busy until getrusage has counted `micros` of CPU. */
function spin(micros: number): void {
  const start = process.cpuUsage();
  let sink = 0;
  while (process.cpuUsage(start).user < micros) for (let i = 0; i < 10_000; i++) sink += Math.sqrt(i);
  assert.ok(sink > 0);
}

describe("processCpuMicros (bench)", { skip: NO_SCHEDSTAT }, () => {
  test("counts the CPU a process uses, as getrusage does", () => {
    const [rusage0, sched0] = [process.cpuUsage(), processCpuMicros(process.pid)];
    spin(100_000);
    const [rusage, sched] = [process.cpuUsage(rusage0), processCpuMicros(process.pid) - sched0];
    const used = rusage.user + rusage.system;
    assert.ok(sched > 0.5 * used && sched < 2 * used, `schedstat ${sched} us, getrusage ${used} us`);
  });

  test("is NaN for no process, or one that has ended", { skip: NO_MOSQUITTO }, async () => {
    assert.ok(Number.isNaN(processCpuMicros(undefined)));
    const broker = await startMosquitto();
    const pid = broker.pid;
    assert.ok(pid !== undefined && processCpuMicros(pid) > 0, "a running broker has used some CPU");
    await broker.stop();
    assert.equal(broker.pid, undefined);
    assert.ok(Number.isNaN(processCpuMicros(pid)));
  });
});
