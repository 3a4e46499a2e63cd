import { test } from "node:test";
import assert from "node:assert/strict";
import { Gateway } from "../../src/gateway.js";
import { freePort } from "../support/brokers.js";
import { captureLogs } from "../support/logCapture.js";
import { testSettings } from "../support/settings.js";

test("a first start without a model says how to get one, the downloadable alias included", async () => {
  const [brokerPort, closedPort] = [await freePort(), await freePort()];
  const logs = captureLogs("info");
  const gateway = new Gateway(
    testSettings({
      broker: { port: brokerPort, wsPort: 0 },
      server: { url: `http://127.0.0.1:${closedPort}` },
      http: { enabled: false },
      bridge: { enabled: false },
      logging: { statsIntervalSec: 0 },
    }),
    { logger: logs.logger },
  );
  await gateway.start();
  try {
    const advice = logs.lines().find((line) => String(line["msg"]).startsWith("No model available"));
    assert.ok(advice, "the advice is logged");
    assert.match(String(advice["msg"]), /--model qwen3-0\.6b/);
    assert.match(String(advice["msg"]), /--server-url/);
  } finally {
    await gateway.stop();
  }
});
