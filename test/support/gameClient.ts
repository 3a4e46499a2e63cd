import type { Socket } from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";

/** What a game trusts and presents on an mqtts:// or wss:// connection, PEM. */
export type GameClientTls = Pick<IClientOptions, "ca" | "cert" | "key">;

export interface ReceivedMessage {
  topic: string;
  text: string;
  retain: boolean;
}

/** A plain MQTT client that behaves like a game: subscribe, publish, wait for replies. */
export class GameClient {
  readonly messages: ReceivedMessage[] = [];
  private waiters: { match: (m: ReceivedMessage) => boolean; resolve: (m: ReceivedMessage) => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      const message = { topic, text: payload.toString("utf8"), retain: packet.retain };
      this.messages.push(message);
      this.waiters = this.waiters.filter((waiter) => {
        if (!waiter.match(message)) return true;
        waiter.resolve(message);
        return false;
      });
    });
  }

  static async connect(
    url: string,
    subscriptions: string[] = [],
    tls: GameClientTls = {},
  ): Promise<GameClient> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, ...tls });
    (client.stream as unknown as Socket).setNoDelay?.(true);
    const game = new GameClient(client);
    if (subscriptions.length > 0) await client.subscribeAsync(subscriptions, { qos: 1 });
    return game;
  }

  async publish(topic: string, payload: string | object): Promise<void> {
    const text = typeof payload === "string" ? payload : JSON.stringify(payload);
    await this.client.publishAsync(topic, text, { qos: 1 });
  }

  /** Resolves with the first message (already received or future) whose topic matches. */
  next(topic: string | ((t: string) => boolean), timeoutMs = 10_000): Promise<ReceivedMessage> {
    const match = (m: ReceivedMessage) => (typeof topic === "string" ? m.topic === topic : topic(m.topic));
    const seen = this.messages.find(match);
    if (seen) {
      this.messages.splice(this.messages.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no message on ${String(topic)} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          this.messages.splice(this.messages.indexOf(m), 1);
          resolve(m);
        },
      });
    });
  }

  /** Waits until `count` messages match, in arrival order. */
  async collect(
    topic: string | ((t: string) => boolean),
    count: number,
    timeoutMs = 10_000,
  ): Promise<ReceivedMessage[]> {
    const out: ReceivedMessage[] = [];
    for (let i = 0; i < count; i++) out.push(await this.next(topic, timeoutMs));
    return out;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
