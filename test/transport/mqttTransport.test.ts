import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { MqttTransport } from "../../src/transport/mqttTransport.js";
import { mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import { captureLogs } from "../support/logCapture.js";
import { testSettings } from "../support/settings.js";
import { eventually } from "../support/wait.js";

// CI installs Mosquitto, so there nothing is ever skipped.
const NO_MOSQUITTO = mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";

describe("MqttTransport.publish", { skip: NO_MOSQUITTO }, () => {
  let broker: TestBroker;
  let dir: string;
  before(async () => {
    // Anonymous clients may write under allowed/ only; an MQTT 5 client hears of a refusal in its PUBACK.
    dir = mkdtempSync(join(tmpdir(), "llmqtt-acl-"));
    const aclFile = join(dir, "acl");
    writeFileSync(aclFile, "topic readwrite allowed/#\n");
    // Mosquitto started as root reads it after dropping to its own user.
    chmodSync(dir, 0o755);
    chmodSync(aclFile, 0o644);
    broker = await startMosquitto({ extraConfig: `acl_file ${aclFile}` });
  });
  after(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("reports a publish the broker refuses as false and logs it, without rejecting", async () => {
    const logs = captureLogs("warn");
    const settings = testSettings().mqtt;
    const transport = new MqttTransport(
      { ...settings, protocolVersion: 5 },
      { logger: logs.logger, subscriptions: ["allowed/in"], onMessage: () => undefined },
    );
    await transport.start(broker.url);
    try {
      assert.equal(await transport.publish("allowed/out", "yes"), true);
      assert.equal(await transport.publish("denied/out", "no"), false);
      const failure = logs.lines().find((line) => line.msg === "publish failed");
      assert.equal(failure?.topic, "denied/out", logs.text());
      assert.match(String(failure?.err), /authori[sz]ed/i);
      // The connection serves on after a refusal.
      assert.equal(await transport.publish("allowed/out", "again"), true);
    } finally {
      await transport.stop();
    }
    assert.equal(await transport.publish("allowed/out", "after stop"), false);
  });

  test("send (replies: nothing awaits it) logs a refused message and tells its callback", async () => {
    const logs = captureLogs("warn");
    const transport = new MqttTransport(
      { ...testSettings().mqtt, protocolVersion: 5 },
      { logger: logs.logger, subscriptions: ["allowed/in"], onMessage: () => undefined },
    );
    await transport.start(broker.url);
    const sent = (topic: string) =>
      new Promise<boolean>((resolve) => transport.send(topic, "x", undefined, resolve));
    try {
      assert.deepEqual(await Promise.all([sent("allowed/out"), sent("denied/out")]), [true, false]);
      const failure = logs.lines().find((line) => line.msg === "publish failed");
      assert.equal(failure?.topic, "denied/out", logs.text());
      transport.send("denied/out", "without a callback");
      await eventually(() => logs.lines().filter((line) => line.msg === "publish failed").length === 2);
    } finally {
      await transport.stop();
    }
    assert.equal(await sent("allowed/out"), false);
  });
});

describe("a subscription the broker refuses after start-up", () => {
  test("leaves llmqtt not listening, logged, and is asked for again until the broker agrees", async () => {
    // Aedes's hook stands in for a broker whose ACL changed while llmqtt ran (Mosquitto's acl_file
    // grants every subscription and filters on delivery instead).
    let refuse = false;
    const aedes = await Aedes.createBroker({
      authorizeSubscribe: (_client, subscription, done) => done(null, refuse ? null : subscription),
    });
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      aedes.handle(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const logs = captureLogs("info");
    const received: string[] = [];
    const transport = new MqttTransport(
      { ...testSettings().mqtt, reconnectPeriodMs: 100 },
      {
        logger: logs.logger,
        subscriptions: ["game/in"],
        onMessage: (_topic, payload) => void received.push(payload.toString()),
        resubscribeRetryMs: 300,
      },
    );
    let publisher: MqttClient | undefined;
    try {
      await transport.start(url);
      assert.equal(transport.listening, true);

      refuse = true;
      for (const socket of sockets) socket.destroy(); // the connection drops, and comes back
      await eventually(() => logs.text().includes("subscribe failed: no requests arrive"), 5000, logs.text);
      assert.equal(transport.connected, true);
      assert.equal(transport.listening, false, "connected but deaf");

      refuse = false;
      await eventually(() => transport.listening, 5000, logs.text);
      publisher = await mqtt.connectAsync(url);
      await publisher.publishAsync("game/in", "heard again", { qos: 1 });
      await eventually(() => received.includes("heard again"));
    } finally {
      await publisher?.endAsync();
      await transport.stop();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
