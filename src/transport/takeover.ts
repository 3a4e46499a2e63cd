import type { MqttClient } from "mqtt";
import type { Logger } from "../observability/logger.js";

/** MQTT 5 DISCONNECT reason: another connection with the same client id took the session. */
const SESSION_TAKEN_OVER = 0x8e;
/** MQTT 3.1.1 has no reason: this many closes in a row, each right after connecting, look like one. */
const EARLY_CLOSES_FOR_TAKEOVER = 3;
/** A connection closed by the broker sooner than this (or twice the retry delay) counts as early. */
const EARLY_CLOSE_MS = 10_000;
const MAX_DELAY_MS = 5 * 60_000;

/**
 * Two clients with one client id take the broker session from each other on every reconnect:
 * forever, every reconnect period. This notices the broker closing connections it has just
 * accepted, says what most likely causes it, and doubles the reconnect delay each time, back to
 * normal once a connection lasts.
 */
export class TakeoverBackoff {
  private connectedAt?: number;
  private sessionTakenOver = false;
  private earlyCloses = 0;
  private backoffs = 0;
  /** Whether the last close was taken for a takeover (and logged as one). */
  lastCloseWasTakeover = false;

  constructor(
    private readonly client: MqttClient,
    private readonly basePeriodMs: number,
    private readonly log: Logger,
  ) {
    client.on("connect", () => (this.connectedAt = Date.now()));
    client.on("disconnect", (packet) => {
      if (packet.reasonCode === SESSION_TAKEN_OVER) this.sessionTakenOver = true;
    });
    // First in line: MQTT.js's own close listener schedules the reconnect with the period set here.
    client.prependListener("close", () => this.closed());
  }

  private closed(): void {
    const connectedAt = this.connectedAt;
    const takenOver = this.sessionTakenOver;
    this.connectedAt = undefined;
    this.sessionTakenOver = false;
    this.lastCloseWasTakeover = false;
    // A connection attempt that failed, or our own end: nothing was taken from us.
    if (connectedAt === undefined || this.client.disconnecting) return;
    const lasted = Date.now() - connectedAt;
    if (lasted >= Math.max(EARLY_CLOSE_MS, 2 * this.client.options.reconnectPeriod!)) {
      this.earlyCloses = this.backoffs = 0;
      this.client.options.reconnectPeriod = this.basePeriodMs;
      return;
    }
    this.earlyCloses++;
    if (!takenOver && this.earlyCloses < EARLY_CLOSES_FOR_TAKEOVER) return;
    this.backoffs++;
    const delayMs = Math.min(this.basePeriodMs * 2 ** this.backoffs, MAX_DELAY_MS);
    this.client.options.reconnectPeriod = delayMs;
    this.lastCloseWasTakeover = true;
    const clientId = this.client.options.clientId;
    this.log.error(
      {
        clientId,
        reason: takenOver
          ? "session taken over (MQTT 5 reason 0x8E)"
          : `closed right after connecting, ${this.earlyCloses} times in a row`,
        retryInSec: delayMs / 1000,
      },
      `the MQTT broker keeps closing llmqtt's connection: most likely another client uses the same client id "${clientId}" ` +
        "(the default, llmqtt-<hostname>, is the same for every llmqtt on one host); " +
        "give each instance its own --mqtt-client-id. Retrying with a growing delay",
    );
  }
}
