import { test } from "node:test";
import assert from "node:assert/strict";
import { HealthMonitor } from "../../src/backends/health.js";
import type { BackendHealth } from "../../src/backends/types.js";
import { captureLogs } from "../support/logCapture.js";
import { eventually } from "../support/wait.js";

const UP: BackendHealth = { healthy: true, slots: 2 };
const DOWN: BackendHealth = { healthy: false, detail: "unreachable (connection reset)" };

/** A monitor whose probes answer from `script` in turn, then `after` for ever. */
function scripted(script: BackendHealth[], after: BackendHealth) {
  const logs = captureLogs("info");
  let probes = 0;
  const monitor = new HealthMonitor(async () => script[probes++] ?? after, {
    intervalMs: 20,
    logger: logs.logger,
    server: "http://model",
  });
  const seen: boolean[] = [];
  monitor.onChange((health) => seen.push(health.healthy));
  return { monitor, logs, seen, probes: () => probes };
}

test("one failed probe of a server that was up is checked again at once, and a blip changes nothing", async () => {
  const { monitor, logs, seen, probes } = scripted([UP, DOWN], UP);
  try {
    await monitor.start();
    await eventually(() => probes() >= 5);
    assert.deepEqual(seen, [true], "never reported down");
    assert.doesNotMatch(logs.text(), /unavailable/);
  } finally {
    monitor.stop();
  }
});

test("two failed probes in a row make it unavailable, and a server that was down needs no second", async () => {
  const { monitor, seen, probes } = scripted([UP, DOWN, DOWN], UP);
  try {
    await monitor.start();
    await eventually(() => seen.length >= 3);
    assert.deepEqual(seen, [true, false, true]);
    assert.ok(probes() >= 4);
  } finally {
    monitor.stop();
  }

  const down = scripted([DOWN], DOWN);
  try {
    await down.monitor.start();
    assert.equal(down.monitor.health().healthy, false);
    assert.equal(down.probes(), 1, "a server never seen up is reported down after one probe");
  } finally {
    down.monitor.stop();
  }
});
