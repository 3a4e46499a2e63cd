import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { WebSocket } from "ws";
import type { QoS } from "mqtt-packet";
import { EmbeddedBroker } from "../../src/transport/embeddedBroker.js";
import { createLogger } from "../../src/observability/logger.js";
import { freePort, mosquittoAvailable, startMosquitto, type TestBroker } from "../support/brokers.js";
import {
  connectPacket,
  connectPublishDisconnect,
  connectPublishDisconnectBytes,
  halfOpenReplies,
  publishDisconnectAfterConnack,
  sendAndClose,
} from "../support/rawClient.js";
import { eventually } from "../support/wait.js";

const ON_CI = process.env.CI === "true";
const NO_MOSQUITTO = mosquittoAvailable() || ON_CI ? false : "mosquitto is not installed";

let sequence = 0;
const unique = (label: string) => `${label}-${process.pid}-${++sequence}`;

/** Everything published under `ff/`, as the gateway's own subscription would see it. */
class Listener {
  readonly payloads = new Set<string>();

  private constructor(private readonly client: MqttClient) {
    client.on("message", (_topic, payload) => this.payloads.add(payload.toString()));
  }

  static async start(url: string): Promise<Listener> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    await client.subscribeAsync("ff/#", { qos: 2 });
    return new Listener(client);
  }

  async delivered(payload: string): Promise<void> {
    await eventually(
      () => this.payloads.has(payload),
      5000,
      () => `(${payload} never delivered)`,
    );
  }

  /** Call once `payload`'s client was let go: a marker published now arrives after it would have. */
  async neverDelivered(payload: string): Promise<boolean> {
    const marker = unique("marker");
    await this.client.publishAsync("ff/marker", marker, { qos: 1 });
    await this.delivered(marker);
    return !this.payloads.has(payload);
  }

  stop(): Promise<void> {
    return this.client.endAsync();
  }
}

async function startEmbedded(settings: { username?: string; password?: string; wsPort?: number } = {}) {
  const broker = new EmbeddedBroker(
    { host: "127.0.0.1", port: 0, wsPort: 0, ...settings },
    createLogger("silent", "json"),
  );
  const { tcpUrl, wsUrl } = await broker.start();
  return { url: tcpUrl, wsUrl, port: Number(new URL(tcpUrl).port), stop: () => broker.stop() };
}

type Fire = (port: number, qos: QoS, payload: string) => Promise<void>;

const ways: Record<string, Fire> = {
  "CONNECT, PUBLISH and DISCONNECT in one write, socket closed at once": (port, qos, payload) =>
    connectPublishDisconnect({ port, qos, payload, topic: "ff/raw", clientId: payload }),
  "CONNECT, PUBLISH and DISCONNECT in one write, then a FIN": (port, qos, payload) =>
    connectPublishDisconnect({ port, qos, payload, topic: "ff/raw", clientId: payload, leaving: "end" }),
  "after the CONNACK, PUBLISH and DISCONNECT in one write, socket closed at once": (port, qos, payload) =>
    publishDisconnectAfterConnack({ port, qos, payload, topic: "ff/raw", clientId: payload }),
  "MQTT.js: publish, then end() at once": async (port, qos, payload) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    client.publish("ff/mqttjs", payload, { qos });
    client.end();
  },
  "MQTT.js: publish, then its socket destroyed on the next turn": async (port, qos, payload) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    client.on("error", () => undefined);
    client.publish("ff/mqttjs", payload, { qos });
    // In the same turn the packet is still corked inside MQTT.js's socket and dies with it.
    setImmediate(() => client.stream.destroy());
  },
};

function deliveryTests(
  name: string,
  start: () => Promise<TestBroker>,
  levels: QoS[],
  skip: string | false = false,
) {
  describe(`fire-and-forget publishes through ${name}`, { skip }, () => {
    let broker: TestBroker;
    let listener: Listener;
    before(async () => {
      broker = await start();
      listener = await Listener.start(broker.url);
    });
    after(async () => {
      await listener.stop();
      await broker.stop();
    });

    for (const [way, fire] of Object.entries(ways)) {
      test(`${way}: delivered at QoS ${levels.join(", ")}`, async () => {
        const payloads = levels.map((qos) => unique(`qos${qos}`));
        await Promise.all(levels.map((qos, i) => fire(broker.port, qos, payloads[i]!)));
        for (const payload of payloads) await listener.delivered(payload);
      });
    }
  });
}

deliveryTests(
  "the embedded broker",
  () => startEmbedded().then((b) => ({ name: "embedded", ...b })),
  [0, 1, 2],
);
// Mosquitto passes a QoS 2 message on at PUBREL, which a client gone after PUBLISH never sends.
deliveryTests("Mosquitto", () => startMosquitto(), [0, 1], NO_MOSQUITTO);

describe("the embedded broker's connections", () => {
  test("a refused CONNECT delivers nothing of what followed it", async () => {
    const broker = await startEmbedded({ username: "game", password: "s3cret" });
    const listener = await Listener.start(`mqtt://game:s3cret@127.0.0.1:${broker.port}`);
    try {
      const refused = unique("refused");
      const packets = (payload: string, password: string) =>
        connectPublishDisconnectBytes({
          topic: "ff/raw",
          payload,
          qos: 1,
          clientId: payload,
          username: "game",
          password,
        });
      await sendAndClose(broker.port, packets(refused, "wrong"));
      assert.ok(await listener.neverDelivered(refused));
      const accepted = unique("accepted");
      await sendAndClose(broker.port, packets(accepted, "s3cret"));
      await listener.delivered(accepted);
    } finally {
      await listener.stop();
      await broker.stop();
    }
  });

  test(
    "a client that leaves before its CONNECT is complete is let go at once",
    { timeout: 15_000 },
    async () => {
      const broker = await startEmbedded();
      try {
        // Aedes would wait 30 s for the rest of this CONNECT; the broker closes when the peer leaves.
        await sendAndClose(broker.port, connectPacket({ clientId: "partial" }).subarray(0, 6));
        await sendAndClose(broker.port, Buffer.alloc(0));
      } finally {
        await broker.stop();
      }
    },
  );

  test("over WebSocket too: CONNECT, PUBLISH and DISCONNECT in one message, then gone", async () => {
    const broker = await startEmbedded({ wsPort: await freePort() });
    const listener = await Listener.start(broker.url);
    try {
      const payloads = ([0, 1, 2] as const).map((qos) => ({ qos, payload: unique(`ws${qos}`) }));
      for (const { qos, payload } of payloads) {
        const socket = new WebSocket(broker.wsUrl!, "mqtt");
        await once(socket, "open");
        socket.send(connectPublishDisconnectBytes({ topic: "ff/ws", payload, qos, clientId: payload }));
        socket.terminate();
      }
      for (const { payload } of payloads) await listener.delivered(payload);
    } finally {
      await listener.stop();
      await broker.stop();
    }
  });

  test("a client that shut only its sending side still gets its CONNACK and PUBACK", async () => {
    const broker = await startEmbedded();
    try {
      assert.deepEqual(await halfOpenReplies(broker.port, unique("half")), ["connack", "puback"]);
    } finally {
      await broker.stop();
    }
  });
});

/**
 * What src/transport/wholeConnection.ts works around, shown on Aedes as it comes. When this
 * fails, Aedes handles such clients itself and the wrapper can go.
 */
describe("Aedes without llmqtt's wrapper", () => {
  test("drops a PUBLISH sent with the CONNECT when the client closes at once", async () => {
    const aedes = await Aedes.createBroker();
    const server = createServer((socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const url = `mqtt://127.0.0.1:${port}`;
    const listener = await Listener.start(url);
    try {
      const payload = unique("bare");
      await sendAndClose(
        port,
        connectPublishDisconnectBytes({ topic: "ff/raw", payload, qos: 0, clientId: payload }),
      );
      assert.ok(await listener.neverDelivered(payload));
    } finally {
      await listener.stop();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
