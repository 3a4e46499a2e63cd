import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import mqtt from "mqtt";
import type { SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observability/logger.js";
import { mosquittoAvailable, startAedes, startMosquitto, type TestBroker } from "../support/brokers.js";
import { FakeModelServer, type FakeModelServerOptions } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { BROKERS } from "../support/harness.js";
import { CLI } from "../support/processes.js";
import { testSettings } from "../support/settings.js";
import { eventually } from "../support/wait.js";

const SHUTTING_DOWN = "Error: The server is shutting down. Please retry in a moment.";
const REPLIES = "general/assistant_response/#";

function uniqueId(label: string): string {
  return `${label}-${randomBytes(3).toString("hex")}`;
}

async function startGateway(
  broker: TestBroker,
  model: FakeModelServer,
  input: SettingsInput,
): Promise<Gateway> {
  const settings = testSettings({
    projects: ["general"],
    mqtt: { url: broker.url, reconnectPeriodMs: 200 },
    server: { url: model.url, probeIntervalSec: 0.2, timeoutSec: 10 },
    logging: { level: process.env.LLMQTT_TEST_LOG ?? "silent", statsIntervalSec: 0 },
    http: { enabled: false },
    bridge: { enabled: false },
    ...input,
  });
  const gateway = new Gateway(settings, { logger: createLogger(settings.logging.level) });
  await gateway.start();
  return gateway;
}

function turn(sessionId: string, n: number): object {
  return { sessionId, message: `turn ${n}`, requestId: `${sessionId}-${n}` };
}

for (const kind of BROKERS) {
  describe(`no lost requests through ${kind.name}`, { skip: kind.skip }, () => {
    test("requests published while llmqtt is away are answered when it returns", async () => {
      const broker = await kind.start();
      const model = await FakeModelServer.start();
      const game = await GameClient.connect(broker.url, [REPLIES]);
      const clientId = uniqueId("llmqtt-away");
      try {
        const first = await startGateway(broker, model, { mqtt: { url: broker.url, clientId } });
        await first.stop();
        for (let n = 0; n < 5; n++) await game.publish("general/user_input", turn("away", n));
        const second = await startGateway(broker, model, { mqtt: { url: broker.url, clientId } });
        try {
          const replies = await game.collect("general/assistant_response/away", 5);
          assert.deepEqual(
            replies.map((r) => r.text),
            [0, 1, 2, 3, 4].map((n) => `reply to: turn ${n}`),
          );
        } finally {
          await second.stop();
        }
      } finally {
        await game.close();
        await model.stop();
        await broker.stop();
      }
    });
  });
}

const mosquittoSkip =
  mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";

describe("broker restarted mid-load", { skip: mosquittoSkip }, () => {
  test("every request is answered exactly once (QoS 2 replies to a QoS 2 subscriber)", async () => {
    const broker = await startMosquitto({ persistenceDir: mkdtempSync(join(tmpdir(), "llmqtt-mosq-data-")) });
    const model = await FakeModelServer.start({ handler: () => ({ delayMs: 5 }) });
    const gateway = await startGateway(broker, model, {
      // QoS 1 would be at least once: a reply whose PUBACK the restart cut off is delivered again.
      mqtt: { url: broker.url, clientId: uniqueId("llmqtt-restart"), qos: 2 },
    });
    // The game keeps its own broker session too, so replies published while it reconnects wait for it.
    const game = await mqtt.connectAsync(broker.url, {
      clientId: uniqueId("game"),
      clean: false,
      reconnectPeriod: 100,
    });
    await game.subscribeAsync(REPLIES, { qos: 2 });
    const answers = new Map<string, string[]>();
    const waiting = new Map<string, () => void>();
    game.on("message", (topic, payload) => {
      const sessionId = topic.split("/")[2]!;
      const list = answers.get(sessionId) ?? [];
      list.push(payload.toString());
      answers.set(sessionId, list);
      waiting.get(sessionId)?.();
    });
    const sessions = Array.from({ length: 8 }, (_, i) => `r${i}`);
    const turnsPerSession = 12;
    let answered = 0;
    const play = async (sessionId: string) => {
      for (let n = 0; n < turnsPerSession; n++) {
        const replied = new Promise<void>((resolve) => waiting.set(sessionId, resolve));
        await game.publishAsync("general/user_input", JSON.stringify(turn(sessionId, n)), { qos: 1 });
        await replied;
        answered++;
      }
    };
    try {
      const players = Promise.all(sessions.map(play));
      await eventually(() => answered >= 30, 20_000);
      await broker.stop();
      await broker.restart();
      await Promise.race([
        players,
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error(`stuck: ${JSON.stringify([...answers].map(([s, a]) => [s, a.length]))}`)),
            20_000,
          ),
        ),
      ]);
      // Any late duplicate would arrive now.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const sent = sessions.length * turnsPerSession;
      let received = 0;
      for (const sessionId of sessions) {
        const expected = Array.from({ length: turnsPerSession }, (_, n) => `reply to: turn ${n}`);
        received += answers.get(sessionId)?.length ?? 0;
        assert.deepEqual(answers.get(sessionId), expected, `session ${sessionId}`);
      }
      console.log(`broker restart: ${sent} requests sent, ${received} replies, 0 lost, 0 duplicated`);
    } finally {
      await game.endAsync(true);
      await gateway.stop();
      await model.stop();
      await broker.stop();
    }
  });
});

describe("graceful drain", () => {
  async function rigFor(modelOptions: FakeModelServerOptions, graceSec: number) {
    const broker = await startAedes();
    const model = await FakeModelServer.start(modelOptions);
    const gateway = await startGateway(broker, model, {
      server: { url: model.url, slots: 2, probeIntervalSec: 0.2, timeoutSec: 30 },
      shutdown: { graceSec },
    });
    const game = await GameClient.connect(broker.url, [REPLIES]);
    return { broker, model, gateway, game };
  }

  test("turns in flight and queued finish within the grace period; later requests are refused", async () => {
    const { broker, model, gateway, game } = await rigFor({ handler: () => ({ delayMs: 300 }) }, 10);
    try {
      for (let i = 0; i < 6; i++) await game.publish("general/user_input", turn(`d${i}`, 0));
      await eventually(() => model.inFlight === 2 && gateway.scheduler.queued === 4);
      const stopped = gateway.stop();
      await game.publish("general/user_input", turn("late", 0));
      const late = await game.next("general/assistant_response/late");
      assert.equal(late.text, SHUTTING_DOWN);
      await stopped;
      const replies = await game.collect((t) => /\/d\d$/.test(t), 6);
      assert.deepEqual(
        replies.map((r) => r.text),
        Array(6).fill("reply to: turn 0"),
      );
    } finally {
      await game.close();
      await model.stop();
      await broker.stop();
    }
  });

  test("after the grace period, queued turns and calls still running are answered 'shutting down'", async () => {
    const { broker, model, gateway, game } = await rigFor({ handler: () => ({ hang: true }) }, 0.5);
    try {
      for (let i = 0; i < 4; i++) await game.publish("general/user_input", turn(`h${i}`, 0));
      await eventually(() => model.inFlight === 2 && gateway.scheduler.queued === 2);
      await gateway.stop();
      const replies = await game.collect((t) => /\/h\d$/.test(t), 4);
      assert.deepEqual(
        replies.map((r) => r.text),
        Array(4).fill(SHUTTING_DOWN),
      );
      await eventually(() => model.inFlight === 0, 2000);
    } finally {
      await game.close();
      await model.stop();
      await broker.stop();
    }
  });

  test("SIGTERM to the real process: every turn in flight answered before it exits 0", async () => {
    const broker = await startAedes();
    const model = await FakeModelServer.start({ handler: () => ({ delayMs: 400 }) });
    const game = await GameClient.connect(broker.url, [REPLIES, "general/status"]);
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: {
        ...process.env,
        LLMQTT_MQTT_URL: broker.url,
        LLMQTT_SERVER_URL: model.url,
        LLMQTT_SERVER_SLOTS: "4",
        LLMQTT_PROJECTS: "general",
        LLMQTT_MQTT_CLIENT_ID: uniqueId("llmqtt-sigterm"),
        LLMQTT_SESSION_STORE: "memory",
        LLMQTT_HTTP: "false",
        LLMQTT_SHUTDOWN_GRACE: "10",
      },
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      assert.equal(JSON.parse((await game.next("general/status")).text).status, "online");
      for (let i = 0; i < 4; i++) await game.publish("general/user_input", turn(`t${i}`, 0));
      await eventually(() => model.inFlight === 4);
      const started = Date.now();
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      const replies = await game.collect((t) => /\/t\d$/.test(t), 4);
      assert.ok(replies.every((r) => r.text === "reply to: turn 0"));
      assert.equal(JSON.parse((await game.next("general/status")).text).status, "offline");
      console.log(`SIGTERM with 4 turns in flight: all answered, exit 0 after ${Date.now() - started} ms`);
    } finally {
      child.kill("SIGKILL");
      await game.close();
      await model.stop();
      await broker.stop();
    }
  });
});
