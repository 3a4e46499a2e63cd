import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, test } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { createLogger } from "../../src/observability/logger.js";
import { coalesceWrites } from "../../src/transport/coalesceWrites.js";
import { MqttTransport } from "../../src/transport/mqttTransport.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { testSettings } from "../support/settings.js";

let broker: TestBroker;
before(async () => {
  broker = await startAedes();
});
after(async () => {
  await broker.stop();
});

/** Counts the system-call-level writes (one per flush) the client's socket makes from now on. */
function countFlushes(client: MqttClient): () => number {
  const socket = client.stream as unknown as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (...args: unknown[]) => void;
  };
  let flushes = 0;
  for (const method of ["_write", "_writev"] as const) {
    const original = socket[method];
    socket[method] = function (this: Socket, ...args: unknown[]) {
      flushes++;
      return original.apply(this, args);
    };
  }
  return () => flushes;
}

/** Publishes `count` messages, each from its own callback of one event-loop turn, as replies are. */
async function publishFromSeparateCallbacks(client: MqttClient, topic: string, count: number): Promise<void> {
  const sent: Promise<unknown>[] = [];
  await new Promise<void>((resolve) => {
    for (let i = 0; i < count; i++)
      setImmediate(() => sent.push(client.publishAsync(topic, `m${i}`, { qos: 1 })));
    setImmediate(resolve);
  });
  await Promise.all(sent);
}

async function connect(coalesce: boolean): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  if (coalesce) coalesceWrites(client);
  return client;
}

test("publishes from separate callbacks of one loop turn leave in one write, in order", async () => {
  const listener = await connect(false);
  const received: string[] = [];
  listener.on("message", (_topic, payload) => received.push(payload.toString()));
  await listener.subscribeAsync("coalesce/one", { qos: 1 });
  const client = await connect(true);
  const flushes = countFlushes(client);

  await publishFromSeparateCallbacks(client, "coalesce/one", 5);

  assert.equal(flushes(), 1);
  while (received.length < 5) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(received, ["m0", "m1", "m2", "m3", "m4"]);
  await Promise.all([client.endAsync(), listener.endAsync()]);
});

test("without it, MQTT.js flushes once per callback (what the count above measures)", async () => {
  const client = await connect(false);
  const flushes = countFlushes(client);
  await publishFromSeparateCallbacks(client, "coalesce/plain", 5);
  assert.equal(flushes(), 5);
  await client.endAsync();
});

test("writes in later loop turns are not held back", async () => {
  const client = await connect(true);
  const flushes = countFlushes(client);
  await client.publishAsync("coalesce/later", "a", { qos: 1 });
  await client.publishAsync("coalesce/later", "b", { qos: 1 });
  assert.equal(flushes(), 2);
  await client.endAsync();
});

test("the gateway's MQTT transport writes that way", async () => {
  const transport = new MqttTransport(testSettings().mqtt, {
    logger: createLogger("silent"),
    subscriptions: ["coalesce/transport/in"],
    onMessage: () => undefined,
  });
  await transport.start(broker.url);
  try {
    // The connection is the transport's own; reached into here only to count its writes.
    const flushes = countFlushes(transport["client"]!);
    const sent: Promise<boolean>[] = [];
    await new Promise<void>((resolve) => {
      for (let i = 0; i < 5; i++)
        setImmediate(() => sent.push(transport.publish("coalesce/transport", `m${i}`)));
      setImmediate(resolve);
    });
    assert.deepEqual(await Promise.all(sent), [true, true, true, true, true]);
    assert.equal(flushes(), 1);
  } finally {
    await transport.stop();
  }
});
