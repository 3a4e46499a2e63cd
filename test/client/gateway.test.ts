import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { connect, LlmqttError, type LlmqttClient, type StreamEvent } from "../../src/client/index.js";
import { Gateway } from "../../src/gateway.js";
import { freePort, mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { startRig } from "../support/harness.js";
import { testSettings } from "../support/settings.js";

/**
 * The client library against a real llmqtt: on its embedded broker, and on Mosquitto with the
 * gateway and the client each on MQTT 3.1.1 or 5 (a gateway on 3.1.1 never sees the client's
 * MQTT 5 properties, so the reply topic in the payload must carry the call).
 */

type Message = { role: string; content: string };

interface Running {
  url: string;
  model: FakeModelServer;
  stop(): Promise<void>;
}

async function embeddedGateway(): Promise<Running> {
  const model = await FakeModelServer.start();
  const port = await freePort();
  const gateway = new Gateway(
    testSettings({
      projects: ["general", "maze"],
      broker: { port, wsPort: 0 },
      server: { url: model.url },
      logging: { level: "silent", statsIntervalSec: 0 },
    }),
  );
  await gateway.start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    model,
    stop: async () => {
      await gateway.stop();
      await model.stop();
    },
  };
}

async function mosquittoGateway(gatewayVersion: 4 | 5): Promise<Running> {
  const broker: TestBroker = await startMosquitto();
  const rig = await startRig(broker, {
    projects: ["general", "maze"],
    mqtt: { protocolVersion: gatewayVersion },
  });
  return {
    url: broker.url,
    model: rig.model,
    stop: async () => {
      await rig.stop();
      await broker.stop();
    },
  };
}

const noMosquitto = mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";
const SETUPS = [
  {
    name: "the embedded broker, MQTT 3.1.1",
    start: embeddedGateway,
    client: 4 as const,
    skip: false as const,
  },
  { name: "Mosquitto, MQTT 3.1.1", start: () => mosquittoGateway(4), client: 4 as const, skip: noMosquitto },
  { name: "Mosquitto, MQTT 5", start: () => mosquittoGateway(5), client: 5 as const, skip: noMosquitto },
  {
    name: "Mosquitto, an MQTT 5 client and a gateway on 3.1.1",
    start: () => mosquittoGateway(4),
    client: 5 as const,
    skip: noMosquitto,
  },
];

for (const setup of SETUPS) {
  describe(`client library against llmqtt on ${setup.name}`, { skip: setup.skip }, () => {
    let running: Running;
    let client: LlmqttClient;
    const lastMessages = (): Message[] => running.model.requests.at(-1)?.body.messages ?? [];

    before(async () => {
      running = await setup.start();
      client = await connect(running.url, { protocolVersion: setup.client, timeoutMs: 10_000 });
    });
    afterEach(() => {
      running.model.handler = () => ({});
    });
    after(async () => {
      await client?.close();
      await running?.stop();
    });

    test("ask: the reply with finish reason and usage; the session keeps its history", async () => {
      const first = await client.ask("general", "hello", { sessionId: "kept" });
      assert.equal(first.text, "reply to: hello");
      assert.equal(first.finishReason, "stop");
      assert.ok(first.usage && first.usage.promptTokens > 0 && first.usage.completionTokens > 0);
      const second = await client.ask("general", "again", { sessionId: "kept" });
      assert.equal(second.text, "reply to: again");
      assert.deepEqual(
        lastMessages()
          .slice(1)
          .map((m) => m.content),
        ["hello", "reply to: hello", "again"],
      );
    });

    test("stream: the deltas add up to the reply", async () => {
      running.model.handler = () => ({ text: "one two three four five six seven eight", chunkDelayMs: 5 });
      const deltas: string[] = [];
      let last: StreamEvent | undefined;
      for await (const event of client.stream("general", "count")) {
        if (event.type === "delta") deltas.push(event.text);
        last = event;
      }
      assert.ok(last?.type === "reply");
      assert.equal(deltas.join(""), "one two three four five six seven eight");
      assert.equal(last.reply.text, deltas.join(""));
    });

    test("a failing model is an LlmqttError with the gateway's code", async () => {
      running.model.handler = () => ({ status: 400, errorBody: { error: { code: 400, message: "bad" } } });
      await assert.rejects(client.ask("general", "fail please"), (error: unknown) => {
        assert.ok(error instanceof LlmqttError, String(error));
        assert.equal(error.code, "invalid_request");
        assert.equal(error.retryable, false);
        return true;
      });
    });

    test("setPrompt, clear and deleteSession change the session on the gateway", async () => {
      const sessionId = "commands";
      await client.ask("general", "first", { sessionId });
      await client.setPrompt("general", "You are a pirate.", { sessionId, reset: false });
      await client.ask("general", "second", { sessionId });
      assert.deepEqual(lastMessages()[0], { role: "system", content: "You are a pirate." });
      assert.equal(lastMessages().length, 4);
      await client.clear("general", { sessionId });
      await client.ask("general", "third", { sessionId });
      assert.deepEqual(
        lastMessages().map((m) => m.content),
        ["You are a pirate.", "third"],
      );
      await client.deleteSession("general", { sessionId });
      await client.ask("general", "fourth", { sessionId });
      assert.notEqual(lastMessages()[0]?.content, "You are a pirate.");
      assert.equal(lastMessages().length, 2);
    });

    test("a maze state gets its hint on maze/hint", async () => {
      const hint = '{"hint": "Go right, then down.", "suggestion": "right"}';
      running.model.handler = () => ({ text: hint });
      const reply = await client.askState(
        "maze",
        { player_pos: { x: 1, y: 1 }, exit_pos: { x: 4, y: 4 }, visible_map: [] },
        { sessionId: "player-1" },
      );
      assert.match(reply.topic, /^maze\/hint\/player-1\//);
      assert.equal(reply.text, hint);
      assert.match(lastMessages().at(-1)?.content ?? "", /^\{"player_pos": \[1, 1\], "exit_pos": \[4, 4\]/);
    });

    if (setup.client === 5) {
      test("MQTT 5: the reply echoes the call's correlation data", async () => {
        const sniffer = await mqtt.connectAsync(running.url, { protocolVersion: 5 });
        try {
          await sniffer.subscribeAsync(`general/assistant_response/+/${client.clientId}/#`, { qos: 1 });
          const seen = new Promise<Buffer | undefined>((resolve) =>
            sniffer.on("message", (_topic, _payload, packet) => resolve(packet.properties?.correlationData)),
          );
          const reply = await client.ask("general", "correlate");
          const correlation = await seen;
          // A gateway on 3.1.1 never saw the property, so it has none to echo.
          const gatewayOn5 = setup.name === "Mosquitto, MQTT 5";
          assert.equal(correlation?.toString(), gatewayOn5 ? reply.requestId : undefined);
        } finally {
          await sniffer.endAsync();
        }
      });
    }
  });
}
