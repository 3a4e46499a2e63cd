import type { LastWill, MqttTransport } from "./mqttTransport.js";

/** How long a clean shutdown waits for the broker to take the retained `offline`. */
export const OFFLINE_WAIT_MS = 2000;

/**
 * The original gateway's service status (PROTOCOL A7): retained `online` on connect and on a
 * timer, retained `offline` on clean shutdown and, through the last-will, on a lost connection.
 */
export class StatusReporter {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly transport: MqttTransport,
    private readonly topic: string,
    private readonly service: string,
    private readonly intervalSec: number,
  ) {}

  static lastWill(topic: string, service: string): LastWill {
    return { topic, payload: JSON.stringify({ service, status: "offline" }), retain: true };
  }

  /** Call on every (re)connect: a reconnect may follow a last-will `offline`. */
  announce(): void {
    // publish() never rejects: it logs a failure and resolves to false.
    void this.transport.publish(this.topic, this.onlinePayload(), { retain: true });
    if (!this.timer) {
      this.timer = setInterval(() => {
        if (this.transport.connected)
          void this.transport.publish(this.topic, this.onlinePayload(), { retain: true });
      }, this.intervalSec * 1000);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.transport.connected) {
      const { payload } = StatusReporter.lastWill(this.topic, this.service);
      await this.transport.publishWithin(this.topic, payload, { retain: true }, OFFLINE_WAIT_MS);
    }
  }

  private onlinePayload(): string {
    return JSON.stringify({ service: this.service, status: "online", ts: Date.now() / 1000 });
  }
}
