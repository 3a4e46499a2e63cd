import assert from "node:assert/strict";
import { test } from "node:test";
import { Gateway } from "../../src/gateway.js";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { captureLogs } from "../support/logCapture.js";
import { testSettings } from "../support/settings.js";

test("certificates configured for a plain mqtt:// broker: a warning, not a silent plain-text connection", async () => {
  const broker = await startAedes();
  const model = await FakeModelServer.start();
  const logs = captureLogs("warn");
  const gateway = new Gateway(
    testSettings({
      projects: ["general"],
      mqtt: { url: broker.url, tls: { caFile: "/nonexistent/ca.crt" } },
      server: { url: model.url },
      http: { enabled: false },
      bridge: { enabled: false },
    }),
    { logger: logs.logger },
  );
  try {
    await gateway.start();
    const warning = logs
      .lines()
      .find((line) => String(line.msg).startsWith("TLS certificates are configured"));
    assert.ok(warning, logs.text());
  } finally {
    await gateway.stop();
    await model.stop();
    await broker.stop();
  }
});
