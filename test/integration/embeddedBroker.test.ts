import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as connectTcp, type Socket } from "node:net";
import mqtt from "mqtt";
import { mergeInputs, type SettingsInput } from "../../src/config/load.js";
import { testSettings } from "../support/settings.js";
import { Gateway } from "../../src/gateway.js";
import { freePort, startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { connectPublishDisconnect } from "../support/rawClient.js";

async function startEmbedded(model: FakeModelServer, overrides: SettingsInput = {}) {
  const port = await freePort();
  const wsPort = await freePort();
  const settings = testSettings(
    mergeInputs(
      {
        projects: ["general"],
        broker: { port, wsPort },
        server: { url: model.url },
        logging: { level: "silent", statsIntervalSec: 0 },
        http: { port: 0 },
      },
      overrides,
    ),
  );
  const gateway = new Gateway(settings);
  await gateway.start();
  return { gateway, tcpUrl: `mqtt://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${wsPort}` };
}

describe("embedded broker", () => {
  test("with no broker configured, games connect over TCP and browsers over WebSocket", async () => {
    const model = await FakeModelServer.start();
    const { gateway, tcpUrl, wsUrl } = await startEmbedded(model);
    try {
      const game = await GameClient.connect(tcpUrl, ["general/assistant_response/#"]);
      await game.publish("general/user_input", { sessionId: "tcp", message: "over tcp" });
      assert.equal((await game.next("general/assistant_response/tcp")).text, "reply to: over tcp");
      await game.close();

      const browser = await GameClient.connect(wsUrl, ["general/assistant_response/#"]);
      await browser.publish("general/user_input", { sessionId: "ws", message: "over websocket" });
      assert.equal((await browser.next("general/assistant_response/ws")).text, "reply to: over websocket");
      await browser.close();
    } finally {
      await gateway.stop();
      await model.stop();
    }
    await assert.rejects(mqtt.connectAsync(tcpUrl, { reconnectPeriod: 0, connectTimeout: 1000 }));
    await assert.rejects(mqtt.connectAsync(wsUrl, { reconnectPeriod: 0, connectTimeout: 1000 }));
  });

  test("a game that connects, publishes and closes its socket at once is answered", async () => {
    const model = await FakeModelServer.start();
    const { gateway, tcpUrl } = await startEmbedded(model);
    try {
      const watcher = await GameClient.connect(tcpUrl, ["general/assistant_response/#"]);
      const port = Number(new URL(tcpUrl).port);
      const payload = JSON.stringify({ sessionId: "loop", message: "fire and forget" });
      await connectPublishDisconnect({
        port,
        topic: "general/user_input",
        payload,
        qos: 0,
        clientId: "game-loop",
      });
      assert.equal((await watcher.next("general/assistant_response/loop")).text, "reply to: fire and forget");
      await watcher.close();
    } finally {
      await gateway.stop();
      await model.stop();
    }
  });

  test("a username and password, when set, are required (and used by the gateway itself)", async () => {
    const model = await FakeModelServer.start();
    const { gateway, tcpUrl } = await startEmbedded(model, {
      broker: { username: "game", password: "s3cret" },
    });
    try {
      await assert.rejects(
        mqtt.connectAsync(tcpUrl, { username: "game", password: "wrong", reconnectPeriod: 0 }),
        /Bad username or password|Not authorized/i,
      );
      const client = await mqtt.connectAsync(tcpUrl, {
        username: "game",
        password: "s3cret",
        reconnectPeriod: 0,
      });
      await client.subscribeAsync("general/assistant_response/#", { qos: 1 });
      const reply = new Promise<string>((resolve) =>
        client.once("message", (_t, payload) => resolve(payload.toString())),
      );
      await client.publishAsync(
        "general/user_input",
        JSON.stringify({ sessionId: "auth", message: "let me in" }),
      );
      assert.equal(await reply, "reply to: let me in");
      await client.endAsync();
    } finally {
      await gateway.stop();
      await model.stop();
    }
  });

  test("when its port is taken by a running broker, the gateway uses that broker", async () => {
    const model = await FakeModelServer.start();
    const existing = await startAedes();
    const settings = testSettings({
      projects: ["general"],
      broker: { port: existing.port, wsPort: 0 },
      server: { url: model.url },
      logging: { level: "silent", statsIntervalSec: 0 },
      http: { port: 0 },
    });
    const gateway = new Gateway(settings);
    await gateway.start();
    try {
      const game = await GameClient.connect(existing.url, ["general/assistant_response/#"]);
      await game.publish("general/user_input", { sessionId: "shared", message: "hi" });
      assert.equal((await game.next("general/assistant_response/shared")).text, "reply to: hi");
      await game.close();
    } finally {
      await gateway.stop();
      await existing.stop();
      await model.stop();
    }
  });

  test("stops at once with connections that never sent CONNECT or finished a WebSocket upgrade", async () => {
    const model = await FakeModelServer.start();
    const { gateway, tcpUrl, wsUrl } = await startEmbedded(model);
    const silent: Socket[] = [];
    const open = (url: string, firstBytes: string) =>
      new Promise<void>((resolve, reject) => {
        const { hostname, port } = new URL(url);
        const socket = connectTcp(Number(port), hostname, () => {
          socket.write(firstBytes);
          resolve();
        });
        socket.on("error", reject);
        silent.push(socket);
      });
    try {
      await open(tcpUrl, ""); // a device that opened the socket and never spoke
      await open(wsUrl, "GET / HTTP/1.1\r\nHost: x\r\n"); // a page whose upgrade request stalled
      const closed = silent.map((socket) => new Promise((resolve) => socket.once("close", resolve)));
      const started = Date.now();
      await gateway.stop();
      // Aedes alone would wait out its 30 s CONNECT timeout, and Node's HTTP server its request timeout.
      assert.ok(Date.now() - started < 5000, `stopped after ${Date.now() - started} ms`);
      await Promise.all(closed);
    } finally {
      for (const socket of silent) socket.destroy();
      await gateway.stop();
      await model.stop();
    }
  });
});
