import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import type { MqttClient } from "mqtt";
import { MqttTransport } from "../../src/transport/mqttTransport.js";
import { TakeoverBackoff } from "../../src/transport/takeover.js";
import { mosquittoAvailable, startAedes, startMosquitto, type TestBroker } from "../support/brokers.js";
import { captureLogs, type LogCapture } from "../support/logCapture.js";
import { testSettings } from "../support/settings.js";
import { eventually } from "../support/wait.js";

const NO_MOSQUITTO = mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";
const TAKEOVER = /most likely another client uses the same client id "llmqtt-twin-[\w-]+".*--mqtt-client-id/;

function takeoverLines(logs: LogCapture): Record<string, unknown>[] {
  return logs.lines().filter((line) => line.level === 50 && TAKEOVER.test(String(line.msg)));
}

/**
 * Two gateways' connections with one client id on one broker: each takes the session from the
 * other. Both must say so, naming the client id and the flag, with a growing retry delay.
 */
async function assertTwinsBackOff(broker: TestBroker, protocolVersion: 4 | 5, reason: RegExp): Promise<void> {
  const clientId = `llmqtt-twin-${randomBytes(3).toString("hex")}`;
  const settings = { ...testSettings().mqtt, clientId, protocolVersion, reconnectPeriodMs: 100 };
  const twins = [captureLogs("info"), captureLogs("info")].map((logs) => ({
    logs,
    transport: new MqttTransport(settings, {
      logger: logs.logger,
      subscriptions: ["twin/in"],
      onMessage: () => {},
    }),
  }));
  try {
    for (const { transport } of twins) await transport.start(broker.url);
    for (const { logs } of twins) {
      await eventually(
        () => takeoverLines(logs).length >= 3,
        30_000,
        () => logs.text(),
      );
      const lines = takeoverLines(logs);
      assert.match(String(lines[0]!.reason), reason);
      const delays = lines.map((line) => Number(line.retryInSec));
      assert.ok(
        delays.every((delay, i) => i === 0 || delay > delays[i - 1]!),
        `growing delays: ${delays.join(", ")}`,
      );
      const afterFirst = logs.lines().slice(logs.lines().indexOf(lines[0]!));
      assert.ok(
        afterFirst.every((line) => line.msg !== "MQTT broker unreachable; retrying"),
        "once recognised, a takeover is not reported as an unreachable broker",
      );
    }
  } finally {
    for (const { transport } of twins) await transport.stop();
  }
}

describe("two connections with one client id back off instead of flapping", () => {
  describe("Mosquitto", { skip: NO_MOSQUITTO }, () => {
    // Mosquitto 2.0.11 closes the connection without the DISCONNECT reason 0x8E (unit test below).
    test("MQTT 5", async () => {
      const broker = await startMosquitto();
      try {
        await assertTwinsBackOff(broker, 5, /session taken over|closed right after connecting/);
      } finally {
        await broker.stop();
      }
    });

    test("MQTT 3.1.1: closes right after connecting, again and again", async () => {
      const broker = await startMosquitto();
      try {
        await assertTwinsBackOff(broker, 4, /closed right after connecting, \d+ times in a row/);
      } finally {
        await broker.stop();
      }
    });
  });

  test("Aedes (MQTT 3.1.1)", async () => {
    const broker = await startAedes();
    try {
      await assertTwinsBackOff(broker, 4, /closed right after connecting/);
    } finally {
      await broker.stop();
    }
  });
});

/** Just what TakeoverBackoff uses of MQTT.js's client. */
class FakeClient extends EventEmitter {
  options = { clientId: "llmqtt-twin-unit", reconnectPeriod: 1000 };
  disconnecting = false;
}

describe("TakeoverBackoff", () => {
  const setUp = () => {
    const client = new FakeClient();
    const logs = captureLogs("info");
    new TakeoverBackoff(client as unknown as MqttClient, 1000, logs.logger);
    const connectAndClose = (reasonCode?: number) => {
      client.emit("connect");
      if (reasonCode !== undefined) client.emit("disconnect", { reasonCode });
      client.emit("close");
    };
    return { client, logs, connectAndClose };
  };

  test("MQTT 5 reason 0x8E: backs off at once, doubling the delay each time", () => {
    const { client, logs, connectAndClose } = setUp();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      connectAndClose(0x8e);
      delays.push(client.options.reconnectPeriod);
    }
    assert.deepEqual(delays, [2000, 4000, 8000, 16000]);
    assert.match(String(takeoverLines(logs)[0]!.reason), /session taken over \(MQTT 5 reason 0x8E\)/);
  });

  test("other early closes back off only from the third in a row; failed attempts and our own end do not count", () => {
    const { client, logs, connectAndClose } = setUp();
    client.emit("close"); // a connection attempt that failed
    connectAndClose();
    connectAndClose(0x8b); // server shutting down
    assert.equal(client.options.reconnectPeriod, 1000);
    assert.equal(takeoverLines(logs).length, 0);
    connectAndClose();
    assert.equal(client.options.reconnectPeriod, 2000);
    client.disconnecting = true;
    connectAndClose();
    assert.equal(client.options.reconnectPeriod, 2000);
  });
});
