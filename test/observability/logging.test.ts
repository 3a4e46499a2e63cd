import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { testSettings } from "../support/settings.js";
import { Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observability/logger.js";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { lines, stream };
}

test("one info line per turn with project, session, latency, tokens and outcome — no prompt text, no secrets", async () => {
  const broker = await startAedes();
  const model = await FakeModelServer.start();
  const { lines, stream } = capture();
  const settings = testSettings({
    projects: ["general"],
    mqtt: { url: broker.url, username: "gateway", password: "mqtt-secret" },
    server: { url: model.url, apiKey: "sk-secret-key" },
    logging: { statsIntervalSec: 0 },
    http: { port: 0 },
  });
  const gateway = new Gateway(settings, { logger: createLogger("info", "json", stream) });
  await gateway.start();
  const game = await GameClient.connect(broker.url, ["general/assistant_response/#"]);
  try {
    await game.publish("general/user_input", {
      sessionId: "log",
      message: "a private question",
      requestId: "r7",
    });
    await game.next("general/assistant_response/log");
    gateway.logger.info({ settings: gateway.settings }, "settings for the test");
  } finally {
    await game.close();
    await gateway.stop();
    await model.stop();
    await broker.stop();
  }
  const turns = lines().filter((line) => line.msg === "turn answered");
  assert.equal(turns.length, 1);
  const turn = turns[0]!;
  assert.equal(turn.level, 30, "info");
  assert.equal(turn.project, "general");
  assert.equal(turn.sessionId, "log");
  assert.equal(turn.requestId, "r7");
  assert.equal(turn.outcome, "ok");
  assert.equal(typeof turn.latencyMs, "number");
  assert.equal(typeof turn.promptTokens, "number");
  assert.equal(typeof turn.completionTokens, "number");
  const all = JSON.stringify(lines());
  assert.doesNotMatch(all, /a private question/);
  assert.doesNotMatch(all, /sk-secret-key|mqtt-secret/);
});
